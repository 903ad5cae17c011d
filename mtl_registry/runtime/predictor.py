"""Serving-side model: the active encoder loaded once, the active heads, one pass per batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mtl_registry.encoder.backbone import SharedEncoder
from mtl_registry.errors import RegistryError
from mtl_registry.model import MultiTaskModel, load_head
from mtl_registry.plugins import host
from mtl_registry.registry import HeadManifest, Registry


@dataclass(frozen=True)
class HeadSet:
    """An immutable set of heads on one encoder. A request uses one HeadSet from start to end."""

    model: MultiTaskModel
    manifests: dict[str, HeadManifest]

    @property
    def versions(self) -> dict[str, Any]:
        return {
            "encoder": self.model.encoder.fingerprint,
            "heads": {t: m.version for t, m in sorted(self.manifests.items())},
        }


def load_heads(registry: Registry, encoder: SharedEncoder,
               manifests: dict[str, HeadManifest]) -> HeadSet:
    plugins = host()
    tasks, modules = {}, {}
    for name, manifest in manifests.items():
        head_type, plugin = plugins.head_type(manifest.head_type, manifest.plugin)
        tasks[name], modules[name] = load_head(registry, manifest, encoder, head_type, plugin)
    return HeadSet(MultiTaskModel(encoder, tasks, modules).eval(), dict(manifests))


class Predictor:
    """Predictions from the registry's active encoder and heads."""

    def __init__(self, registry: Registry, max_length: int = 128) -> None:
        self.registry = registry.require()
        active = registry.active()
        if active.encoder is None:
            raise RegistryError(f"{registry.root}: no active encoder; run `mtlreg init`")
        if not active.heads:
            raise RegistryError(f"{registry.root}: no active heads; run `mtlreg train` first")
        manifest = registry.encoder_manifest(active.encoder)
        problems = registry.verify_files(registry.encoder_dir(active.encoder), manifest.files)
        if problems:
            raise RegistryError("; ".join(problems))
        self.encoder = SharedEncoder.load(
            registry.encoder_dir(active.encoder), max_length, fingerprint=active.encoder
        ).eval()
        self.heads = load_heads(
            registry, self.encoder,
            {t: registry.head_manifest(t, v) for t, v in active.heads.items()},
        )

    def predict(self, texts: list[str], batch_size: int = 64) -> list[dict[str, Any]]:
        heads = self.heads  # one consistent set for the whole call
        preds = heads.model.predict(self.encoder.tokenize(texts), batch_size)
        versions = heads.versions
        return [{"text": t, "predictions": p, "versions": versions} for t, p in zip(texts, preds)]
