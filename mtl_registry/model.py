"""One encoder pass, many heads: the model shared by training, evaluation and serving."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mtl_registry.encoder.backbone import Encoded, SharedEncoder, pool
from mtl_registry.errors import FingerprintMismatch, RegistryError
from mtl_registry.heads.base import HeadConfig, HeadType
from mtl_registry.registry import HEAD_WEIGHTS, HeadManifest, PluginRef, Registry


@dataclass(frozen=True)
class Task:
    """A named use of a head type with a fixed label list."""

    name: str
    head_type: HeadType
    plugin: PluginRef
    labels: list[str]
    config: HeadConfig

    def build(self, hidden_size: int) -> nn.Module:
        return self.head_type.build(hidden_size, self.labels, self.config)


class MultiTaskModel(nn.Module):
    """The shared encoder and one head module per task."""

    def __init__(
        self,
        encoder: SharedEncoder,
        tasks: dict[str, Task],
        heads: dict[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.tasks = dict(tasks)
        self.heads = nn.ModuleDict(
            heads
            if heads is not None
            else {name: t.build(encoder.hidden_size) for name, t in tasks.items()}
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        rows: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Logits per task. `rows` limits a task to the batch rows that carry its labels."""
        hidden = self.encoder(input_ids, attention_mask)
        pooled: dict[str, torch.Tensor] = {}
        out = {}
        for name, task in self.tasks.items():
            if rows is not None and name not in rows:
                continue
            if task.head_type.level == "token":
                x = hidden
            else:
                kind = task.config.pooling
                if kind not in pooled:
                    pooled[kind] = pool(hidden, attention_mask, kind)
                x = pooled[kind]
            if rows is not None:
                x = x[rows[name]]
            out[name] = self.heads[name](x)
        return out

    def batches(
        self, encoded: list[Encoded], batch_size: int = 64
    ) -> Iterator[tuple[list[tuple[int, Encoded]], dict[str, torch.Tensor]]]:
        """Logits for many texts, in batches, without autograd. Sorted by length to pad less."""
        with torch.inference_mode():
            for idx in length_batches(encoded, batch_size):
                chunk = [encoded[i] for i in idx]
                logits = self(*self.encoder.collate(chunk))
                yield list(zip(idx, chunk)), logits

    def predict(self, encoded: list[Encoded], batch_size: int = 64) -> list[dict[str, Any]]:
        """Decoded predictions per text, in input order."""
        return decode_batches(
            self.tasks, self.heads, self.batches(encoded, batch_size), len(encoded)
        )

    def logits(self, encoded: list[Encoded], task: str, batch_size: int = 64) -> torch.Tensor:
        """One task's raw logits in input order (token heads padded), for calibration."""
        rows: list[torch.Tensor | None] = [None] * len(encoded)
        for pairs, logits in self.batches(encoded, batch_size):
            for (i, e), row in zip(pairs, logits[task]):
                rows[i] = row[: len(e.input_ids)] if row.dim() > 1 else row
        return nn.utils.rnn.pad_sequence(rows, batch_first=True)  # type: ignore[arg-type]


Batches = Iterator[tuple[list[tuple[int, Encoded]], dict[str, torch.Tensor]]]


# What one more model call costs, in padded tokens: the fixed part of a forward pass
# (per-op dispatch, per-layer set-up). Measured on 2 cores, 32 mixed MangaAssist messages:
# 17% (PyTorch) and 25% (INT8 ONNX Runtime) faster than one padded batch of 32.
CALL_COST_TOKENS = 64


def length_batches(
    encoded: list[Encoded], batch_size: int, call_cost: int = CALL_COST_TOKENS
) -> Iterator[list[int]]:
    """Indices of texts sorted by length, cut into batches of at most `batch_size` where the
    padded tokens plus `call_cost` per batch are fewest.

    Dynamic padding pads each batch to its longest text, so one batch of mixed lengths
    spends most of its time on padding, and batches of one spend it on call overhead.
    On sorted lengths the best cut is a small dynamic programme (n × batch_size steps).
    """
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    lengths = [len(encoded[i].input_ids) for i in order]
    best = [0] * (len(order) + 1)  # best[j]: cheapest cost of the first j texts
    start = [0] * (len(order) + 1)  # where the last batch of that cut starts
    for j in range(1, len(order) + 1):
        # the batch i..j-1 is padded to lengths[j - 1], its longest
        best[j], start[j] = min(
            (best[i] + (j - i) * lengths[j - 1] + call_cost, i)
            for i in range(max(0, j - batch_size), j)
        )
    cuts = []
    j = len(order)
    while j > 0:
        cuts.append((start[j], j))
        j = start[j]
    for i, j in reversed(cuts):
        yield order[i:j]


def decode_batches(
    tasks: dict[str, Task], heads: Mapping[str, nn.Module], batches: Batches, n: int
) -> list[dict[str, Any]]:
    """Each head type's own `decode` on each batch's logits, back in input order.

    Shared by every backend (PyTorch, ONNX Runtime), so decoding never differs between them.
    """
    results: list[dict[str, Any]] = [{} for _ in range(n)]
    for pairs, logits in batches:
        chunk = [e for _, e in pairs]
        for name, task in tasks.items():
            decoded = task.head_type.decode(heads[name], logits[name], chunk, task.labels)
            for (i, _), pred in zip(pairs, decoded):
                results[i][name] = pred
    return results


def save_head(module: nn.Module, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(folder / HEAD_WEIGHTS))


def load_head(
    registry: Registry,
    manifest: HeadManifest,
    encoder: SharedEncoder,
    head_type: HeadType,
    plugin: PluginRef,
) -> tuple[Task, nn.Module]:
    """Rebuild a published head; refuses a head trained on another encoder or with bad files."""
    if encoder.fingerprint != manifest.encoder_fingerprint:
        raise FingerprintMismatch(
            f"head {manifest.task} v{manifest.version} was trained on encoder "
            f"{manifest.encoder_fingerprint}, but the loaded encoder is {encoder.fingerprint}"
        )
    folder = registry.head_dir(manifest.task, manifest.version)
    problems = registry.verify_files(folder, manifest.files, reuse=True)
    if problems:
        raise RegistryError("; ".join(problems))
    task = Task(
        manifest.task, head_type, plugin, list(manifest.labels), HeadConfig(**manifest.head_config)
    )
    module = task.build(encoder.hidden_size)
    module.load_state_dict(load_file(str(folder / HEAD_WEIGHTS)))
    module.eval()
    return task, module


def load_encoder(registry: Registry, fingerprint: str, max_length: int = 128) -> SharedEncoder:
    """An encoder artifact, its files checked against the manifest first."""
    manifest = registry.encoder_manifest(fingerprint)
    problems = registry.verify_files(registry.encoder_dir(fingerprint), manifest.files, reuse=True)
    if problems:
        raise RegistryError("; ".join(problems))
    return SharedEncoder.load(
        registry.encoder_dir(fingerprint), max_length, fingerprint=fingerprint
    ).eval()


def load_active_encoder(registry: Registry, max_length: int = 128) -> SharedEncoder:
    fingerprint = registry.require().active().encoder
    if fingerprint is None:
        raise RegistryError(f"{registry.root}: no active encoder; run `mtlreg init`")
    return load_encoder(registry, fingerprint, max_length)
