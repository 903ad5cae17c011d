"""Data made ready for a model: loaded once per directory, tokenised once, labels checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset

from mtl_registry.data.records import load_splits, split_path
from mtl_registry.encoder.backbone import Encoded, SharedEncoder
from mtl_registry.errors import DataError
from mtl_registry.heads.base import HeadType


@dataclass
class Split:
    """One split file with its tokenised texts."""

    path: Path
    data: Dataset
    encoded: list[Encoded]

    def values(self, field_name: str) -> list[Any]:
        return self.data[field_name] if field_name in self.data.column_names else [None] * len(self)

    def lines(self) -> list[int]:
        return self.data["line"]

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class DataDir:
    """A data directory read for a set of head types (one per field)."""

    path: Path
    splits: dict[str, Split] = field(default_factory=dict)


def load_data_dirs(
    encoder: SharedEncoder,
    tasks: dict[str, tuple[HeadType, Path]],
    required: tuple[str, ...] = ("train", "dev"),
) -> dict[Path, DataDir]:
    """Each distinct directory is read and tokenised once, whatever number of tasks use it."""
    by_dir: dict[Path, dict[str, HeadType]] = {}
    for head_type, data_dir in tasks.values():
        by_dir.setdefault(Path(data_dir).resolve(), {})[head_type.field] = head_type
    out = {}
    for path, fields in by_dir.items():
        parsers = {f: ht.parse for f, ht in fields.items()}
        splits = load_splits(path, parsers, required)
        out[path] = DataDir(
            path,
            {
                name: Split(split_path(path, name), ds, encoder.tokenize(ds["text"]))
                for name, ds in splits.items()
            },
        )
    return out


def check_labels(split: Split, head_type: HeadType, labels: list[str]) -> None:
    """Unknown labels are an error that points at the record."""
    for value, line in zip(split.values(head_type.field), split.lines()):
        if value is not None:
            try:
                head_type.check_labels(value, labels)
            except ValueError as exc:
                raise DataError(
                    str(exc), path=split.path, line=line, field=head_type.field
                ) from exc


def targets(split: Split, head_type: HeadType, labels: list[str]) -> list[torch.Tensor | None]:
    """Training targets per record (None where the record lacks this task's labels)."""
    out: list[torch.Tensor | None] = []
    for value, enc, line in zip(split.values(head_type.field), split.encoded, split.lines()):
        if value is None:
            out.append(None)
            continue
        try:
            out.append(head_type.target(value, labels, enc))
        except ValueError as exc:
            raise DataError(str(exc), path=split.path, line=line, field=head_type.field) from exc
    return out
