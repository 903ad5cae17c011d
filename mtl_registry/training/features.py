"""Frozen-encoder features, computed once and cached on disk.

Retraining a head on a frozen encoder needs the encoder's output for every text only
once: pooled vectors for sentence heads, token states for token heads. They are cached
under the registry, keyed by encoder fingerprint, the data file's hash and the
tokenisation settings, so a second retrain on the same data never runs the encoder.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mtl_registry.data.prepared import Split
from mtl_registry.encoder.backbone import SharedEncoder, pool
from mtl_registry.fileio import sha256_file

CACHE_FORMAT = 1


class FeatureCache:
    """Per-record features of one split; `encoder_batches` counts real encoder passes."""

    def __init__(self, root: Path, encoder: SharedEncoder, batch_size: int = 64) -> None:
        self.root = root
        self.encoder = encoder
        self.batch_size = batch_size
        self.encoder_batches = 0

    def key(self, split: Split, level: str, pooling: str) -> str:
        settings = {
            "format": CACHE_FORMAT,
            "encoder": self.encoder.fingerprint,
            "data": sha256_file(split.path),
            "max_length": self.encoder.max_length,
            "level": level,
            "pooling": pooling if level == "sentence" else None,
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]

    def features(self, split: Split, level: str, pooling: str) -> list[torch.Tensor]:
        """One tensor per record: [hidden] for sentence heads, [tokens, hidden] for token heads."""
        path = self.root / f"{self.key(split, level, pooling)}.safetensors"
        if path.is_file():
            stored = load_file(str(path))
            if level == "sentence":
                return list(stored["features"])
            return list(torch.split(stored["features"], stored["lengths"].tolist()))
        rows = self._compute(split, level, pooling)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        if level == "sentence":
            save_file({"features": torch.stack(rows).contiguous()}, str(tmp))
        else:
            save_file(
                {
                    "features": torch.cat(rows).contiguous(),
                    "lengths": torch.tensor([len(r) for r in rows]),
                },
                str(tmp),
            )
        os.replace(tmp, path)
        return rows

    def _compute(self, split: Split, level: str, pooling: str) -> list[torch.Tensor]:
        encoded = split.encoded
        out: list[torch.Tensor | None] = [None] * len(encoded)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
        self.encoder.eval()
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                ids, mask = self.encoder.collate([encoded[i] for i in idx])
                hidden = self.encoder(ids, mask)
                self.encoder_batches += 1
                if level == "sentence":
                    rows = pool(hidden, mask, pooling)
                    for i, row in zip(idx, rows):
                        out[i] = row.clone()
                else:
                    for i, row in zip(idx, hidden):
                        out[i] = row[: len(encoded[i].input_ids)].clone()
        return out  # type: ignore[return-value]
