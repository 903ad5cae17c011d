"""The active encoder and heads as one ONNX graph (fp32 or INT8 behind a quality gate)."""

from mtl_registry.export.build import export_model
from mtl_registry.export.manifest import ExportError, ExportManifest, read_manifest
from mtl_registry.export.release import ensure_export, export_active

__all__ = [
    "ExportError",
    "ExportManifest",
    "ensure_export",
    "export_active",
    "export_model",
    "read_manifest",
]
