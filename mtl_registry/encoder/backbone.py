"""The shared transformer encoder: tokenisation with offsets, one forward pass, pooling."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # encoders come from folders, never from a hub

import torch  # noqa: E402
from torch import nn  # noqa: E402
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerFast  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from mtl_registry.encoder.files import TOKENIZER_FILES, encoder_files  # noqa: E402
from mtl_registry.errors import RegistryError  # noqa: E402

hf_logging.disable_progress_bar()
hf_logging.set_verbosity_error()

MODELS_WITH_POOLER = {"bert", "roberta", "xlm-roberta"}


@dataclass(frozen=True)
class Word:
    """One word as the tokenizer splits it: its first sub-token and its characters."""

    first_token: int
    start: int
    end: int


@dataclass(frozen=True)
class Encoded:
    """One tokenised text, keeping what span alignment and decoding need."""

    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None] = field(repr=False)

    @cached_property
    def words(self) -> list[Word]:
        spans: dict[int, list[int]] = {}
        for token, (word, (start, end)) in enumerate(zip(self.word_ids, self.offsets)):
            if word is None:
                continue
            if word not in spans:
                spans[word] = [token, start, end]
            else:
                spans[word][2] = end
        return [Word(*spans[w]) for w in sorted(spans)]


def pool(hidden: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """Sentence vector from token states. 'mean' suits sentence-transformer encoders."""
    if kind == "cls":
        return hidden[:, 0]
    if kind == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    raise ValueError(f"unknown pooling '{kind}' (use 'mean' or 'cls')")


class SharedEncoder(nn.Module):
    """A Hugging Face encoder and its fast tokenizer, loaded from a local folder."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerFast,
        source: Path,
        max_length: int = 128,
        fingerprint: str | None = None,
    ) -> None:
        super().__init__()
        if not tokenizer.is_fast:
            raise RegistryError(f"{source}: a fast tokenizer is needed for character offsets")
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.max_length = max_length
        self.fingerprint = fingerprint

    @classmethod
    def load(
        cls, folder: str | Path, max_length: int = 128, fingerprint: str | None = None
    ) -> SharedEncoder:
        folder = Path(folder)
        encoder_files(folder)  # clear error for a folder that is not a safetensors HF model
        tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=True)
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
        # The pooler is never used (heads pool themselves); skip it so it gets no optimiser state.
        extra = {"add_pooling_layer": False} if model_type in MODELS_WITH_POOLER else {}
        model = AutoModel.from_pretrained(folder, use_safetensors=True, **extra)
        return cls(model, tokenizer, folder, max_length, fingerprint)

    @property
    def hidden_size(self) -> int:
        config = self.model.config
        return int(getattr(config, "hidden_size", None) or config.dim)

    def tokenize(self, texts: list[str]) -> list[Encoded]:
        batch = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [
            Encoded(text, ids, [tuple(o) for o in offsets], batch.word_ids(i))
            for i, (text, ids, offsets) in enumerate(
                zip(texts, batch["input_ids"], batch["offset_mapping"])
            )
        ]

    def collate(self, encoded: list[Encoded]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad to the longest text in this batch only (dynamic padding)."""
        width = max(len(e.input_ids) for e in encoded)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, e in enumerate(encoded):
            ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
            mask[row, : len(e.input_ids)] = 1
        return ids, mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    @property
    def last_layer(self) -> nn.Module:
        """The top transformer block: where GradNorm measures gradient norms by default."""
        for path in ("encoder.layer", "transformer.layer", "layers", "encoder.layers"):
            module: object = self.model
            for name in path.split("."):
                module = getattr(module, name, None)
            if isinstance(module, nn.ModuleList) and len(module):
                return module[-1]
        raise RegistryError(f"{self.source}: cannot find the encoder's transformer layers")

    def save(self, folder: Path) -> None:
        """Weights as safetensors, plus the tokenizer files of the source folder unchanged."""
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder, safe_serialization=True)
        for name in TOKENIZER_FILES:
            if (self.source / name).is_file():
                shutil.copy2(self.source / name, folder / name)
