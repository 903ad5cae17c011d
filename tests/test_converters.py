"""Converters: real public datasets (published sizes) and small handmade edge cases."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from mtl_registry.data.converters import FORMATS, bio_spans, convert
from mtl_registry.errors import DataError

DATA = Path(
    os.environ.get(
        "MTLREG_SHARED_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )
)
SPLITS = ("train", "dev", "test")


def needs(sub: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not (DATA / sub).exists(), reason=f"{DATA / sub} not present")


def read(out: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{split}.jsonl").read_text("utf-8").splitlines()]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def tag_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """Word-index spans, computed independently of the module: a new span at every B-,
    at an I- whose type differs from the previous tag's, and at an I- after O."""
    spans: list[list] = []
    prev = "O"
    for i, tag in enumerate(tags):
        if tag != "O":
            kind = tag[2:]
            if tag.startswith("B-") or prev == "O" or prev[2:] != kind:
                spans.append([i, i + 1, kind])
            else:
                spans[-1][1] = i + 1
        prev = tag
    return [tuple(s) for s in spans]


def char_to_word(text: str) -> tuple[dict[int, int], dict[int, int]]:
    """Character offset of every word start and end -> word index (start) / index+1 (end)."""
    starts, ends, pos = {}, {}, 0
    for i, word in enumerate(text.split(" ")):
        starts[pos], ends[pos + len(word)] = i, i + 1
        pos += len(word) + 1
    return starts, ends


# --------------------------------------------------------------------------- real data


@needs("snips")
def test_snips_real(tmp_path: Path) -> None:
    counts = convert("jointbert", DATA / "snips", tmp_path)
    assert counts == {"train": 13084, "dev": 700, "test": 700}
    intents: set[str] = set()
    for split in SPLITS:
        records = read(tmp_path, split)
        words_lines = (DATA / "snips" / split / "seq.in").read_text("utf-8").splitlines()
        tag_lines = (DATA / "snips" / split / "seq.out").read_text("utf-8").splitlines()
        assert len(records) == len(words_lines) == counts[split]
        for rec, words_line, tag_line in zip(records, words_lines, tag_lines, strict=True):
            words, tags = words_line.split(), tag_line.split()
            assert rec["text"] == " ".join(words)
            intents.add(rec["intent"])
            starts, ends = char_to_word(rec["text"])
            got = [(starts[e["start"]], ends[e["end"]], e["label"]) for e in rec["entities"]]
            assert got == tag_spans(tags)
            for (a, b, _), e in zip(got, rec["entities"], strict=True):
                assert rec["text"][e["start"] : e["end"]] == " ".join(words[a:b])
    assert len(intents) == 7
    assert "PlayMusic" in intents


@needs("conll2003")
def test_conll2003_real(tmp_path: Path) -> None:
    counts = convert("conll", DATA / "conll2003", tmp_path)
    assert counts == {"train": 14041, "dev": 3250, "test": 3453}
    per_split = {}
    for split in SPLITS:
        labels: Counter[str] = Counter()
        for rec in read(tmp_path, split):
            for e in rec["entities"]:
                labels[e["label"]] += 1
                chunk = rec["text"][e["start"] : e["end"]]
                assert chunk and chunk == chunk.strip()
            ends = [e["end"] for e in rec["entities"]]
            starts = [e["start"] for e in rec["entities"]]
            assert all(end < start for end, start in zip(ends, starts[1:], strict=False))
        per_split[split] = labels
    assert set().union(*per_split.values()) == {"PER", "ORG", "LOC", "MISC"}
    # Entity counts published with the shared task (Tjong Kim Sang & De Meulder 2003,
    # table 2): they only come out if IOB1 is decoded correctly.
    assert per_split["train"] == {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}
    assert sum(per_split["dev"].values()) == 5942
    assert sum(per_split["test"].values()) == 5648


@needs("goemotions/ekman")
def test_goemotions_ekman_real(tmp_path: Path) -> None:
    src = DATA / "goemotions" / "ekman"
    counts = convert("goemotions", src, tmp_path)
    assert counts == {"train": 43410, "dev": 5426, "test": 5427}
    names = (src / "labels.txt").read_text("utf-8").split()
    train = read(tmp_path, "train")
    seen = {label for rec in train for label in rec["sentiment"]}
    assert seen == set(names) and "neutral" in seen
    assert all(rec["sentiment"] == sorted(set(rec["sentiment"])) for rec in train)
    assert any(len(rec["sentiment"]) > 1 for rec in train)
    first = (src / "train.tsv").read_text("utf-8").split("\n", 1)[0].split("\t")
    assert train[0] == {
        "text": first[0],
        "sentiment": sorted(names[int(i)] for i in first[1].split(",")),
    }


@needs("clinc150")
def test_clinc150_real(tmp_path: Path) -> None:
    with_oos = convert("clinc150", DATA / "clinc150", tmp_path / "a")
    assert with_oos == {"train": 15100, "dev": 3100, "test": 5500}
    without = convert(
        "clinc150", DATA / "clinc150" / "data_full.json", tmp_path / "b", include_oos=False
    )
    assert without == {"train": 15000, "dev": 3000, "test": 4500}
    assert Counter(r["intent"] for r in read(tmp_path / "a", "test"))["oos"] == 1000
    intents = {r["intent"] for r in read(tmp_path / "b", "train")}
    assert len(intents) == 150 and "oos" not in intents


# --------------------------------------------------------------------------- handmade


def test_bio_spans_offsets() -> None:
    text, ents = bio_spans(
        ["play", "the", "beatles", "on", "spotify"], ["O", "B-artist", "I-artist", "O", "B-svc"]
    )
    assert text == "play the beatles on spotify"
    assert ents == [
        {"start": 5, "end": 16, "label": "artist"},
        {"start": 20, "end": 27, "label": "svc"},
    ]
    assert [text[e["start"] : e["end"]] for e in ents] == ["the beatles", "spotify"]


def test_bio_spans_stray_inside_tag_starts_an_entity() -> None:
    text, ents = bio_spans(["a", "b", "c", "d"], ["O", "I-x", "I-y", "B-y"])
    assert [(text[e["start"] : e["end"]], e["label"]) for e in ents] == [
        ("b", "x"),
        ("c", "y"),
        ("d", "y"),
    ]


def test_bio_spans_rejects_bad_tags() -> None:
    with pytest.raises(DataError) as err:
        bio_spans(["a", "b"], ["O", "E-x"])
    assert err.value.field == "tags"
    with pytest.raises(DataError, match="scheme"):
        bio_spans(["a"], ["O"], scheme="bilou")


CONLL = """-DOCSTART- -X- O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
Smith NNP I-NP B-PER
met VBD I-VP O
Acme NNP I-NP I-ORG
Paris NNP I-NP I-LOC
. . O O

-DOCSTART- -X- O O

Bonn NNP I-NP I-LOC
"""


def test_conll_iob1_to_spans(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for name in ("eng.train", "eng.testa", "eng.testb"):
        write(src / name, CONLL)
    assert convert("conll", src, tmp_path / "out") == {"train": 2, "dev": 2, "test": 2}
    first, last = read(tmp_path / "out", "train")
    text = first["text"]
    assert text == "Peter Blackburn Smith met Acme Paris ."
    assert [(text[e["start"] : e["end"]], e["label"]) for e in first["entities"]] == [
        ("Peter Blackburn", "PER"),
        ("Smith", "PER"),
        ("Acme", "ORG"),
        ("Paris", "LOC"),
    ]
    # Sentence at end of file without a closing blank line still comes out.
    assert last == {"text": "Bonn", "entities": [{"start": 0, "end": 4, "label": "LOC"}]}


def test_conll_files_option_and_bad_tag_line(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "x O\n\ny B-LOC\nz X-LOC\n")
    with pytest.raises(DataError) as err:
        convert("conll", tmp_path, tmp_path / "out", files={"train": "a.txt"}, scheme="bio")
    assert (Path(err.value.path).name, err.value.line, err.value.field) == ("a.txt", 4, "tags")
    assert "a.txt:4" in str(err.value)
    assert not (tmp_path / "out" / "train.jsonl").exists()


def snips_fixture(root: Path, bad_out: str | None = None) -> Path:
    for split in SPLITS:
        write(root / split / "seq.in", "play  the beatles \nweather in paris\n")
        write(root / split / "seq.out", bad_out or "O B-artist I-artist \nO O B-city\n")
        write(root / split / "label", "PlayMusic\nGetWeather\n")
    return root


def test_jointbert_small(tmp_path: Path) -> None:
    src = snips_fixture(tmp_path / "snips")
    assert convert("jointbert", src, tmp_path / "out")["dev"] == 2
    assert read(tmp_path / "out", "dev") == [
        {
            "text": "play the beatles",
            "intent": "PlayMusic",
            "entities": [{"start": 5, "end": 16, "label": "artist"}],
        },
        {
            "text": "weather in paris",
            "intent": "GetWeather",
            "entities": [{"start": 11, "end": 16, "label": "city"}],
        },
    ]


def test_jointbert_word_tag_mismatch_names_file_and_line(tmp_path: Path) -> None:
    src = snips_fixture(tmp_path / "snips", bad_out="O B-artist I-artist\nO B-city\n")
    with pytest.raises(DataError) as err:
        convert("jointbert", src, tmp_path / "out")
    assert Path(err.value.path) == src / "train" / "seq.out"
    assert (err.value.line, err.value.field) == (2, "tags")
    assert f"{src / 'train' / 'seq.out'}:2" in str(err.value)
    # Atomic: nothing half-written, no temporary left behind.
    assert list((tmp_path / "out").iterdir()) == []


def test_jointbert_unaligned_files(tmp_path: Path) -> None:
    src = snips_fixture(tmp_path / "snips")
    write(src / "test" / "label", "PlayMusic\n")
    with pytest.raises(DataError) as err:
        convert("jointbert", src, tmp_path / "out")
    assert (Path(err.value.path), err.value.line) == (src / "test" / "label", 2)


def goemotions_fixture(root: Path, train: str) -> Path:
    write(root / "labels.txt", "anger\njoy\nneutral")
    write(root / "train.tsv", train)
    write(root / "dev.tsv", '"quoted text\t2\tid1\n')
    write(root / "test.tsv", "fine\t1,0,1\tid2\n")
    return root


def test_goemotions_small(tmp_path: Path) -> None:
    src = goemotions_fixture(tmp_path / "ge", "so happy \t1\ta\n")
    assert convert("goemotions", src, tmp_path / "out") == {"train": 1, "dev": 1, "test": 1}
    assert read(tmp_path / "out", "dev") == [{"text": '"quoted text', "sentiment": ["neutral"]}]
    assert read(tmp_path / "out", "test") == [{"text": "fine", "sentiment": ["anger", "joy"]}]
    assert read(tmp_path / "out", "train")[0]["text"] == "so happy "


@pytest.mark.parametrize("ids", ["3", "x", "", "1,-1"])
def test_goemotions_bad_label_id_names_file_and_line(tmp_path: Path, ids: str) -> None:
    src = goemotions_fixture(tmp_path / "ge", f"ok\t1\ta\nbad one\t{ids}\tb\n")
    with pytest.raises(DataError) as err:
        convert("goemotions", src, tmp_path / "out")
    assert (Path(err.value.path), err.value.line) == (src / "train.tsv", 2)
    assert err.value.field == "labels"
    assert "train.tsv:2" in str(err.value)


def test_goemotions_empty_text(tmp_path: Path) -> None:
    src = goemotions_fixture(tmp_path / "ge", "ok\t1\ta\n  \t1\tb\n")
    with pytest.raises(DataError) as err:
        convert("goemotions", src, tmp_path / "out")
    assert (err.value.line, err.value.field) == (2, "text")


def test_clinc150_bad_item_names_line(tmp_path: Path) -> None:
    doc = {
        "train": [["hi", "greet"]],
        "val": [["yo", "greet"]],
        "test": [["a", "x"], ["", "greet"]],
        "oos_train": [["q", "oos"]],
        "oos_val": [],
        "oos_test": [],
    }
    path = write(tmp_path / "data_full.json", json.dumps(doc, indent=4))
    with pytest.raises(DataError) as err:
        convert("clinc150", tmp_path, tmp_path / "out")
    lines = path.read_text().splitlines()
    assert err.value.path == str(path) and err.value.field == "test[1]"
    assert lines[err.value.line - 1].strip() == "["
    assert lines[err.value.line].strip() == '"",'


def test_unknown_format_and_option(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        convert("parquet", tmp_path, tmp_path / "out")
    for name in FORMATS:
        assert name in str(err.value)
    assert set(FORMATS) == {"jointbert", "conll", "goemotions", "clinc150"}
    with pytest.raises(DataError, match="include_oos"):
        convert("clinc150", tmp_path, tmp_path / "out", scheme="bio")
