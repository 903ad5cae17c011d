"""Converters from the public dataset formats to canonical JSONL (SPEC section 5).

Each converter checks its source paths up front and returns, per split, a lazy stream of
canonical records; `convert` writes every split to a temporary file and only moves them all
into place once every split converted, so a bad line never leaves a half-written directory.
Every error for bad input is a `DataError` naming the file, the 1-based line and the field.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import zip_longest
from json.decoder import JSONArray
from json.scanner import py_make_scanner
from pathlib import Path
from typing import Any

from mtl_registry.errors import DataError

Record = dict[str, Any]
Converter = Callable[..., dict[str, Iterable[Record]]]
SCHEMES = ("bio", "iob1")


# --------------------------------------------------------------------------- helpers


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, line without its end).

    Binary mode splits on "\\n" only: text mode would also split on a lone "\\r" inside a
    text, and decoding per line lets an encoding error name its line.
    """
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"not UTF-8 ({e.reason})", path=path, line=n) from None
            yield n, line.rstrip("\n").removesuffix("\r")


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataError("missing source file or folder", path=path)
    return path


def _text(text: str, path: Path, line: int) -> str:
    if not text.strip():
        raise DataError("empty text", path=path, line=line, field="text")
    return text


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise DataError(
            f"unknown tag scheme {scheme!r}; known: {', '.join(SCHEMES)}", field="scheme"
        )


def _spans(
    words: Sequence[str],
    tags: Sequence[str],
    scheme: str,
    path: Path | None = None,
    line_of: Callable[[int], int | None] = lambda i: None,
) -> tuple[str, list[Record]]:
    """Decode BIO or IOB1 tags into character spans over the words joined by single spaces.

    One rule decodes both schemes: B-X always starts an entity, I-X continues the entity
    just before it when that one has type X and otherwise starts a new one. That is IOB1
    exactly, and for BIO it is the lenient reading seqeval uses by default for a stray I-X
    (after O or another type), so such tags open an entity instead of being dropped.
    """
    _check_scheme(scheme)
    if len(words) != len(tags):
        raise DataError(
            f"{len(words)} words but {len(tags)} tags", path=path, line=line_of(0), field="tags"
        )
    entities: list[Record] = []
    current: Record | None = None
    pos = 0
    for i, (word, tag) in enumerate(zip(words, tags, strict=True)):
        start, end = pos, pos + len(word)
        pos = end + 1
        if tag == "O":
            current = None
            continue
        prefix, _, label = tag.partition("-")
        if prefix not in ("B", "I") or not label:
            raise DataError(
                f"bad tag {tag!r} (expected O, B-<type> or I-<type>)",
                path=path,
                line=line_of(i),
                field="tags",
            )
        if prefix == "I" and current is not None and current["label"] == label:
            current["end"] = end
        else:
            current = {"start": start, "end": end, "label": label}
            entities.append(current)
    return " ".join(words), entities


def bio_spans(words: list[str], tags: list[str], scheme: str = "bio") -> tuple[str, list[dict]]:
    """Join words with single spaces and turn their tags into character-span entities.

    `scheme` is "bio" or "iob1"; both decode with the rule described in `_spans`.
    """
    return _spans(words, tags, scheme)


def _write_splits(out_dir: Path, splits: dict[str, Iterable[Record]]) -> dict[str, int]:
    """Write every split to `<split>.jsonl.tmp`, then move them all into place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done: list[tuple[Path, Path]] = []
    counts: dict[str, int] = {}
    try:
        for split, records in splits.items():
            final = out_dir / f"{split}.jsonl"
            tmp = final.with_name(final.name + ".tmp")
            done.append((tmp, final))
            n = 0
            with tmp.open("w", encoding="utf-8", newline="\n") as f:
                for record in records:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
                    n += 1
                f.flush()
                os.fsync(f.fileno())
            counts[split] = n
    except BaseException:
        for tmp, _ in done:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in done:
        os.replace(tmp, final)
    return counts


# --------------------------------------------------------------------------- formats


def _jointbert(src: Path, *, scheme: str = "bio") -> dict[str, Iterable[Record]]:
    """JointBERT layout (SNIPS, ATIS): {split}/seq.in, seq.out, label, line-aligned."""

    def records(folder: Path) -> Iterator[Record]:
        files = [folder / "seq.in", folder / "seq.out", folder / "label"]
        streams = [_lines(p) for p in files]
        for n, rows in enumerate(zip_longest(*streams), 1):
            for path, row in zip(files, rows, strict=True):
                if row is None:
                    raise DataError(
                        "file ends early: the split's files must be line-aligned", path=path, line=n
                    )
            (_, words), (_, tags), (_, intent) = rows
            _text(words, files[0], n)
            text, entities = _spans(words.split(), tags.split(), scheme, files[1], lambda i, n=n: n)
            if not intent.strip():
                raise DataError("empty intent", path=files[2], line=n, field="intent")
            yield {"text": text, "intent": intent.strip(), "entities": entities}

    _check_scheme(scheme)
    folders = {split: _need(src / split) for split in ("train", "dev", "test")}
    for folder in folders.values():
        for name in ("seq.in", "seq.out", "label"):
            _need(folder / name)
    return {split: records(folder) for split, folder in folders.items()}


def _conll(
    src: Path, *, scheme: str = "iob1", files: dict[str, str] | None = None
) -> dict[str, Iterable[Record]]:
    """CoNLL columns (`token ... NER`, NER last), blank line between sentences."""

    def records(path: Path) -> Iterator[Record]:
        words: list[str] = []
        tags: list[str] = []
        lines: list[int] = []

        def sentence() -> Record:
            text, entities = _spans(words, tags, scheme, path, lines.__getitem__)
            del words[:], tags[:], lines[:]
            return {"text": text, "entities": entities}

        for n, line in _lines(path):
            cols = line.split()
            if not cols:
                if words:
                    yield sentence()
            elif cols[0] == "-DOCSTART-":
                if words:
                    raise DataError("-DOCSTART- inside a sentence", path=path, line=n)
            elif len(cols) < 2:
                raise DataError("expected a token and an NER tag", path=path, line=n, field="tags")
            else:
                words.append(cols[0])
                tags.append(cols[-1])
                lines.append(n)
        if words:
            yield sentence()

    _check_scheme(scheme)
    mapping = files or {"train": "eng.train", "dev": "eng.testa", "test": "eng.testb"}
    return {split: records(_need(src / name)) for split, name in mapping.items()}


def _goemotions(src: Path) -> dict[str, Iterable[Record]]:
    """GoEmotions TSV `text<TAB>ids<TAB>comment id`; ids index labels.txt.

    Lines are split on tabs by hand: texts hold unbalanced quotes that csv would misread.
    """
    labels_path = _need(src / "labels.txt")
    labels: list[str] = []
    for n, line in _lines(labels_path):
        name = line.strip()
        if not name or name in labels:
            raise DataError(f"empty or repeated label {name!r}", path=labels_path, line=n)
        labels.append(name)

    def records(path: Path) -> Iterator[Record]:
        for n, line in _lines(path):
            cols = line.split("\t")
            if len(cols) != 3:
                raise DataError(
                    f"expected 3 tab-separated columns, got {len(cols)}", path=path, line=n
                )
            text, ids = _text(cols[0], path, n), cols[1].split(",")
            if not all(i.strip().isdecimal() and int(i) < len(labels) for i in ids):
                raise DataError(
                    f"label ids {cols[1]!r} must be integers 0..{len(labels) - 1}",
                    path=path,
                    line=n,
                    field="labels",
                )
            yield {"text": text, "sentiment": sorted({labels[int(i)] for i in ids})}

    return {split: records(_need(src / f"{split}.tsv")) for split in ("train", "dev", "test")}


def _json_line(raw: str, key: str, index: int) -> int | None:
    """Line of `doc[key][index]` in the JSON text.

    json.loads forgets positions, so re-parse with the pure-Python scanner, recording where
    each array element starts. Only called to report an error.
    """
    decoder = json.JSONDecoder()
    starts: dict[int, list[int]] = {}

    def parse_array(s_and_end: tuple[str, int], scan_once: Callable) -> tuple[list, int]:
        found: list[int] = []

        def scan(s: str, idx: int) -> Any:
            found.append(idx)
            return scan_once(s, idx)

        values, end = JSONArray(s_and_end, scan)
        starts[id(values)] = found
        return values, end

    decoder.parse_array = parse_array  # type: ignore[attr-defined]
    decoder.scan_once = py_make_scanner(decoder)  # type: ignore[attr-defined]
    doc = decoder.decode(raw)
    found = starts.get(id(doc.get(key)), [])
    return raw.count("\n", 0, found[index]) + 1 if index < len(found) else None


def _clinc150(src: Path, *, include_oos: bool = True) -> dict[str, Iterable[Record]]:
    """CLINC150 data_full.json; `include_oos` adds the out-of-scope queries as intent "oos"."""
    path = _need(src / "data_full.json" if src.is_dir() else src)
    raw = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", path=path, line=e.lineno) from None
    if not isinstance(doc, dict):
        raise DataError("expected a JSON object of splits", path=path, line=1)

    def records(key: str) -> Iterator[Record]:
        items = doc.get(key)
        if not isinstance(items, list):
            raise DataError("missing or not a list", path=path, line=1, field=key)
        for i, item in enumerate(items):
            ok = (
                isinstance(item, list)
                and len(item) == 2
                and all(isinstance(v, str) and v.strip() for v in item)
            )
            if not ok:
                raise DataError(
                    "expected [text, intent], both non-empty strings",
                    path=path,
                    line=_json_line(raw, key, i),
                    field=f"{key}[{i}]",
                )
            yield {"text": item[0], "intent": item[1].strip()}

    def split(key: str) -> Iterator[Record]:
        yield from records(key)
        if include_oos:
            yield from records(f"oos_{key}")

    return {"train": split("train"), "dev": split("val"), "test": split("test")}


FORMATS: dict[str, Converter] = {
    "jointbert": _jointbert,
    "conll": _conll,
    "goemotions": _goemotions,
    "clinc150": _clinc150,
}


def convert(fmt: str, src: str | Path, out_dir: str | Path, **options: Any) -> dict[str, int]:
    """Convert the dataset at src into canonical JSONL in out_dir; returns split -> records."""
    converter = FORMATS.get(fmt)
    if converter is None:
        raise DataError(
            f"unknown format {fmt!r}; known formats: {', '.join(sorted(FORMATS))}", field="format"
        )
    src = Path(src)
    try:  # options are the converter's keyword arguments; name a wrong one plainly
        inspect.signature(converter).bind(src, **options)
    except TypeError:
        allowed = [p for p in inspect.signature(converter).parameters if p != "src"]
        raise DataError(
            f"format {fmt!r} got options {sorted(options)}; it takes {allowed or 'none'}",
            field="options",
        ) from None
    return _write_splits(Path(out_dir), converter(src, **options))
