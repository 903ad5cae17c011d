"""Exports of registry releases, cached under `REGISTRY/exports/<key>`.

The key names the encoder, the exact head versions and files, the precision and the gate
settings, so `--backend onnx` and `mtlreg export` build a release's graph once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

from mtl_registry.export.build import FORMAT, Echo, export_model, replace_dir
from mtl_registry.export.manifest import ExportError, ExportManifest, read_manifest
from mtl_registry.registry import HeadManifest, Registry


def cache_key(
    fingerprint: str,
    manifests: dict[str, HeadManifest],
    int8: bool,
    max_drop: float,
    data: dict[str, Path] | None,
    max_length: int = 128,
) -> str:
    """Everything an export depends on: change any of it and the release is exported anew."""
    spec = {
        "format": FORMAT,
        "encoder": fingerprint,
        "int8": int8,
        "max_length": max_length,
        "max_drop": max_drop if int8 else None,
        "data": {k: str(Path(v).resolve()) for k, v in sorted((data or {}).items())},
        "heads": {t: [m.version, m.files] for t, m in sorted(manifests.items())},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def ensure_export(
    registry: Registry,
    fingerprint: str,
    manifests: dict[str, HeadManifest],
    *,
    int8: bool = False,
    max_drop: float = 0.01,
    data: dict[str, Path] | None = None,
    max_length: int = 128,
    echo: Echo = lambda _: None,
) -> Path:
    """The cached export of one release, built from the registry on first use."""
    key = cache_key(fingerprint, manifests, int8, max_drop, data, max_length)
    path = registry.root / "exports" / key
    wanted = {t: m.version for t, m in sorted(manifests.items())}
    if path.is_dir():
        try:
            found = read_manifest(path)
            if found.encoder_fingerprint == fingerprint and found.head_versions == wanted:
                return path
        except ExportError as exc:
            echo(f"rebuilding a damaged cached export: {exc}")
    from mtl_registry.model import load_encoder
    from mtl_registry.runtime.predictor import load_heads

    encoder = load_encoder(registry, fingerprint, max_length)
    heads = load_heads(registry, encoder, manifests)
    export_model(heads.model, manifests, path, int8=int8, max_drop=max_drop, data=data, echo=echo)
    return path


def export_active(
    registry: Registry,
    out: Path | None = None,
    *,
    int8: bool = False,
    max_drop: float = 0.01,
    data: dict[str, Path] | None = None,
    echo: Echo = lambda _: None,
) -> tuple[Path, ExportManifest]:
    """Export the active encoder and heads (cached in the registry), copied to `out` if given."""
    active = registry.require().active()
    if active.encoder is None:
        raise ExportError(f"{registry.root}: no active encoder; run `mtlreg init`")
    if not active.heads:
        raise ExportError(f"{registry.root}: no active heads to export; run `mtlreg train` first")
    manifests = {t: registry.head_manifest(t, v) for t, v in active.heads.items()}
    path = ensure_export(
        registry, active.encoder, manifests, int8=int8, max_drop=max_drop, data=data, echo=echo
    )
    if out is not None and out.resolve() != path.resolve():
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = out.parent / f".{out.name}.staging-{uuid.uuid4().hex[:8]}"
        try:
            shutil.copytree(path, stage)
            replace_dir(stage, out)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        path = out
    return path, read_manifest(path)
