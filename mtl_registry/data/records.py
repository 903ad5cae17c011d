"""Canonical JSONL data: read line by line, validated, into `datasets.Dataset` splits.

Every problem is a DataError naming the file, the line and the field, raised before
anything is trained or stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from datasets import Dataset
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from mtl_registry.errors import DataError
from mtl_registry.fileio import combined_fingerprint, sha256_file

SPLITS = ("train", "dev", "test")
Parser = Callable[[Any, str], Any]


class BaseRecord(BaseModel):
    """What every record has; task fields are validated by the head type that reads them."""

    model_config = ConfigDict(extra="allow", strict=True)

    text: str

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


def read_jsonl(path: Path, parsers: Mapping[str, Parser]) -> Dataset:
    """Columns: text, line (1-based, for error messages), and one per field in `parsers`
    (None where a record does not carry that field)."""
    rows: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise DataError("file does not exist", path=path) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path) from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"not valid JSON: {exc.msg} (column {exc.colno})", path=path, line=n
            ) from exc
        if not isinstance(obj, dict):
            raise DataError("a record must be a JSON object", path=path, line=n)
        try:
            text = BaseRecord.model_validate(obj).text
        except ValidationError as exc:
            err = exc.errors()[0]
            raise DataError(
                err["msg"], path=path, line=n, field=".".join(map(str, err["loc"])) or "text"
            ) from exc
        row: dict[str, Any] = {"text": text, "line": n}
        for field, parse in parsers.items():
            value = obj.get(field)
            if value is None:
                row[field] = None
                continue
            try:
                row[field] = parse(value, text)
            except ValueError as exc:
                raise DataError(str(exc), path=path, line=n, field=field) from exc
        rows.append(row)
    if not rows:
        raise DataError("no records", path=path)
    return Dataset.from_list(rows)


def split_path(data_dir: Path, split: str) -> Path:
    return Path(data_dir) / f"{split}.jsonl"


def load_splits(
    data_dir: str | Path,
    parsers: Mapping[str, Parser],
    required: tuple[str, ...] = ("train", "dev"),
) -> dict[str, Dataset]:
    """The splits present in a data directory; the `required` ones must exist."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError("data directory does not exist", path=data_dir)
    out = {}
    for split in SPLITS:
        path = split_path(data_dir, split)
        if path.is_file():
            out[split] = read_jsonl(path, parsers)
        elif split in required:
            raise DataError(f"missing {split}.jsonl", path=data_dir)
    return out


def data_fingerprint(data_dir: str | Path) -> str:
    """Hash of the split files, so a head records exactly which data trained it."""
    data_dir = Path(data_dir)
    return combined_fingerprint(
        {
            s: sha256_file(split_path(data_dir, s))
            for s in SPLITS
            if split_path(data_dir, s).is_file()
        }
    )
