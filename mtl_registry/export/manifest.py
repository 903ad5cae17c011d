"""What an export directory holds and promises: `export.json`, read and checked on load.

model.onnx                 one graph: input_ids, attention_mask -> logits_<task> per head
model.onnx.data            its weights, page-aligned, which ONNX Runtime maps rather than copies
heads/<task>.safetensors   each head's module state, for `HeadType.decode` (thresholds...)
config.json, tokenizer.*   the encoder's tokenizer, so the export tokenises on its own
export.json                this manifest, with a checksum of every file above
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mtl_registry.errors import MtlRegError
from mtl_registry.fileio import file_checksums
from mtl_registry.registry.manifests import PluginRef, utcnow

EXPORT_SCHEMA = 1
MANIFEST = "export.json"
GRAPH = "model.onnx"
WEIGHTS = "model.onnx.data"


class ExportError(MtlRegError):
    """An export cannot be made, is refused by its quality gate, or is damaged."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExportedHead(_Model):
    """One head in the graph: the registry version it came from and how to decode it."""

    task: str
    version: int
    head_type: str
    plugin: PluginRef
    level: Literal["sentence", "token"]
    labels: list[str]
    head_config: dict[str, Any]
    output: str
    state: str


class Quantisation(_Model):
    """What was made INT8 and what was kept fp32, and why."""

    method: str = "onnxruntime dynamic (int8 weights, activations quantised per call)"
    weight_type: str = "int8"
    per_channel: bool = True
    op_types: list[str]
    int8_rows: list[str] = Field(
        default_factory=list,
        description="lookup tables stored as int8 rows with one scale per row",
    )
    kept_fp32: list[str] = Field(default_factory=list, description="node groups left in fp32")
    excluded_nodes: list[str] = Field(default_factory=list)
    reason: str = ""
    search: list[dict[str, Any]] = Field(default_factory=list, description="tried candidates")


class ExportManifest(_Model):
    schema_version: int = EXPORT_SCHEMA
    created_at: datetime = Field(default_factory=utcnow)
    encoder_fingerprint: str
    model_type: str
    hidden_size: int
    max_length: int
    precision: Literal["fp32", "int8"]
    inputs: list[str]
    heads: list[ExportedHead]
    fused_ops: dict[str, int] = Field(default_factory=dict)
    quantisation: Quantisation | None = None
    quality: dict[str, Any] | None = Field(
        None, description="held-out scores per head, fp32 vs int8, from the quality gate"
    )
    versions: dict[str, str] = Field(default_factory=dict, description="torch, onnxruntime...")
    files: dict[str, str] = Field(default_factory=dict)

    @property
    def head_versions(self) -> dict[str, int]:
        return {h.task: h.version for h in sorted(self.heads, key=lambda h: h.task)}


def write_manifest(folder: Path, manifest: ExportManifest) -> ExportManifest:
    """Checksums every file in `folder`, then writes the manifest beside them."""
    sealed = manifest.model_copy(
        update={"files": {k: v for k, v in file_checksums(folder).items() if k != MANIFEST}}
    )
    (folder / MANIFEST).write_text(sealed.model_dump_json(indent=2), encoding="utf-8")
    return sealed


def read_manifest(folder: Path, verify: bool = True) -> ExportManifest:
    """The manifest of an export; with `verify`, every file must match its checksum."""
    path = folder / MANIFEST
    try:
        manifest = ExportManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ExportError(f"{folder}: not an export (no {MANIFEST}); run `mtlreg export`") from exc
    except (ValidationError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: not a valid export manifest: {exc}") from exc
    if verify:
        actual = {k: v for k, v in file_checksums(folder, reuse=True).items() if k != MANIFEST}
        bad = sorted(k for k in manifest.files if actual.get(k) != manifest.files[k])
        if bad:
            raise ExportError(f"{folder}: files missing or changed since export: {', '.join(bad)}")
    return manifest
