"""The shared encoder: loading from a local Hugging Face folder, tokenising, pooling."""

from mtl_registry.encoder.backbone import Encoded, SharedEncoder, Word, pool
from mtl_registry.encoder.files import encoder_files, packaged_encoder_path

__all__ = ["Encoded", "SharedEncoder", "Word", "encoder_files", "packaged_encoder_path", "pool"]
