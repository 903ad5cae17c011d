"""Tests for the MangaAssist synthetic corpus generator."""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mtl_registry.data import mangaassist as ma

SPLITS = ("train", "dev", "test")


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _splits(folder: Path) -> dict[str, list[dict[str, Any]]]:
    return {split: _read(folder / f"{split}.jsonl") for split in SPLITS}


def _is_word_edge(ch: str) -> bool:
    """What a BERT basic tokenizer splits on: whitespace and any punctuation."""
    return ch.isspace() or ch in string.punctuation or unicodedata.category(ch).startswith("P")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The default-size joint corpus, generated once for the whole module."""
    folder = tmp_path_factory.mktemp("mangaassist")
    assert ma.generate(folder, seed=0) == {"train": 2000, "dev": 300, "test": 500}
    return _splits(folder)


def _surfaces(records: list[dict[str, Any]], label: str) -> set[str]:
    return {
        r["text"][e["start"] : e["end"]].lower()
        for r in records
        for e in r["entities"]
        if e["label"] == label
    }


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    sizes = {"n_train": 60, "n_dev": 20, "n_test": 30}
    for gen in ma.SCENARIOS.values():
        name = gen.__name__
        a, b, c = (tmp_path / name / x for x in "abc")
        counts = gen(a, seed=7, **sizes)
        gen(b, seed=7, **sizes)
        gen(c, seed=8, **sizes)
        assert counts == {"train": 60, "dev": 20, "test": 30}
        for split in SPLITS:
            data = (a / f"{split}.jsonl").read_bytes()
            assert data == (b / f"{split}.jsonl").read_bytes(), (name, split)
            assert data != (c / f"{split}.jsonl").read_bytes(), (name, split)
            assert len(data.decode("utf-8").splitlines()) == counts[split]
        assert not list(a.glob("*.tmp")), "temporary files left behind"


def test_sizes_are_independent_and_validated(tmp_path: Path) -> None:
    ma.generate(tmp_path / "small", seed=3, n_train=10, n_dev=0, n_test=5)
    ma.generate(tmp_path / "big", seed=3, n_train=40, n_dev=0, n_test=5)
    assert (tmp_path / "small" / "dev.jsonl").read_text() == ""
    # one RNG per split: growing train must not reshuffle the test split
    assert (tmp_path / "small" / "test.jsonl").read_bytes() == (
        tmp_path / "big" / "test.jsonl"
    ).read_bytes()
    with pytest.raises(ValueError, match="n_dev"):
        ma.generate(tmp_path / "bad", n_dev=-1)


def test_records_are_canonical_and_valid(corpus: dict[str, list[dict[str, Any]]]) -> None:
    for split, records in corpus.items():
        for r in records:
            where = (split, r.get("text"))
            assert list(r) == ["text", "intent", "sentiment", "entities"], where
            text = r["text"]
            assert isinstance(text, str) and text and text == text.strip(), where
            assert "the the " not in text.lower(), where
            assert r["intent"] in ma.INTENTS, where
            assert r["sentiment"] == sorted(set(r["sentiment"])), where
            assert set(r["sentiment"]) <= set(ma.SENTIMENTS), where
            previous_end = 0
            for e in r["entities"]:
                assert list(e) == ["start", "end", "label"], where
                assert e["label"] in ma.ENTITY_TYPES, where
                start, end = e["start"], e["end"]
                assert previous_end <= start < end <= len(text), where  # sorted, no overlap
                previous_end = end
                surface = text[start:end]
                assert surface == surface.strip(), where
                assert start == 0 or _is_word_edge(text[start - 1]), where
                assert end == len(text) or _is_word_edge(text[end]), where


def test_entity_surfaces_come_from_the_catalogue(
    corpus: dict[str, list[dict[str, Any]]],
) -> None:
    """Entities may be lower-cased with their message but never typo'd."""
    genres = {g.lower() for g in ma.GENRES}
    titles = {t.lower() for t in ma.TITLES}
    creators = {c.lower() for c in ma.CREATORS}
    for records in corpus.values():
        assert _surfaces(records, "TITLE") <= titles
        assert _surfaces(records, "CREATOR") <= creators
        assert _surfaces(records, "GENRE") <= genres
        for order_id in _surfaces(records, "ORDER_ID"):
            assert ma.ORDER_ID_PATTERN.fullmatch(order_id), order_id


def test_test_split_uses_only_held_out_titles_and_creators(
    corpus: dict[str, list[dict[str, Any]]],
) -> None:
    test_titles = {t.lower() for t in ma.TEST_TITLES}
    test_creators = {c.lower() for c in ma.TEST_CREATORS}
    train_titles = {t.lower() for t in ma.TRAIN_TITLES}
    train_creators = {c.lower() for c in ma.TRAIN_CREATORS}
    assert _surfaces(corpus["test"], "TITLE") <= test_titles
    assert _surfaces(corpus["test"], "CREATOR") <= test_creators
    for split in ("train", "dev"):
        assert _surfaces(corpus[split], "TITLE") <= train_titles
        assert _surfaces(corpus[split], "CREATOR") <= train_creators
    held_out = re.compile(
        r"\b(?:" + "|".join(re.escape(t.lower()) for t in ma.TEST_TITLES) + r")\b"
    )
    leaks = [r["text"] for r in corpus["train"] if held_out.search(r["text"].lower())]
    assert not leaks, leaks[:3]


def test_catalogue_and_phrasing_splits() -> None:
    assert len(ma.TITLES) >= 80 and len(set(ma.TITLES)) == len(ma.TITLES)
    assert len(ma.CREATORS) >= 50 and len(ma.GENRES) >= 18
    assert not set(ma.TEST_TITLES) & set(ma.TRAIN_TITLES)
    assert not set(ma.TEST_CREATORS) & set(ma.TRAIN_CREATORS)
    assert 0.15 <= len(ma.TEST_TITLES) / len(ma.TITLES) <= 0.25
    assert 0.15 <= len(ma.TEST_CREATORS) / len(ma.CREATORS) <= 0.25
    assert all(t.isascii() and t[-1].isalnum() for t in ma.TITLES + ma.CREATORS)
    assert list(ma.TEMPLATES) == list(ma.INTENTS)
    for intent in ma.INTENTS:
        train, test = ma.TRAIN_TEMPLATES[intent], ma.TEST_TEMPLATES[intent]
        assert len(train) >= 12 and len(test) >= 4, intent
        assert not {t.lower() for t in train} & {t.lower() for t in test}, intent
    for label, cues in ma.SENTIMENT_CUES.items():
        assert cues.test and not set(cues.train) & set(cues.test), label


def test_label_coverage_and_balance(corpus: dict[str, list[dict[str, Any]]]) -> None:
    train = corpus["train"]
    intents = Counter(r["intent"] for r in train)
    assert set(intents) == set(ma.INTENTS)
    assert max(intents.values()) - min(intents.values()) <= 1
    assert {s for r in train for s in r["sentiment"]} == set(ma.SENTIMENTS)
    assert {e["label"] for r in train for e in r["entities"]} == set(ma.ENTITY_TYPES)
    neutral = sum(not r["sentiment"] for r in train) / len(train)
    assert 0.15 <= neutral <= 0.45, neutral
    label_counts = Counter(len(r["sentiment"]) for r in train)
    assert label_counts[2] > 0.05 * len(train) and label_counts[3] > 0
    entity_counts = Counter(len(r["entities"]) for r in train)
    assert entity_counts[0] > 0 and entity_counts[2] + entity_counts[3] > 0
    assert len({r["text"] for r in train}) > 0.9 * len(train), "too many duplicate texts"
    # gratitude is what the v2 scenario adds: the base corpus must not already express it
    assert not [r["text"] for r in train if "thank" in r["text"].lower()]


def test_sentiment_v2_keeps_old_labels_and_adds_gratitude(tmp_path: Path) -> None:
    assert ma.SENTIMENTS_V2[: len(ma.SENTIMENTS)] == ma.SENTIMENTS
    assert set(ma.SENTIMENTS_V2) - set(ma.SENTIMENTS) == {"gratitude"}
    assert ma.generate_sentiment_v2(tmp_path, seed=1, n_train=600, n_dev=50, n_test=100) == {
        "train": 600,
        "dev": 50,
        "test": 100,
    }
    data = _splits(tmp_path)
    for records in data.values():
        for r in records:
            assert list(r) == ["text", "sentiment"]
            assert r["sentiment"] == sorted(set(r["sentiment"]))
            assert set(r["sentiment"]) <= set(ma.SENTIMENTS_V2)
    used = Counter(s for r in data["train"] for s in r["sentiment"])
    assert set(used) == set(ma.SENTIMENTS_V2)
    assert used["gratitude"] >= 0.08 * len(data["train"])
    assert "gratitude" in {s for r in data["test"] for s in r["sentiment"]}


def test_csat_has_every_level(tmp_path: Path) -> None:
    ma.generate_csat(tmp_path, seed=2, n_train=400, n_dev=50, n_test=100)
    data = _splits(tmp_path)
    for records in data.values():
        for r in records:
            assert list(r) == ["text", "csat"]
            assert type(r["csat"]) is int and r["csat"] in ma.CSAT_LEVELS
            assert r["text"] and r["text"] == r["text"].strip()
    assert {r["csat"] for r in data["train"]} == {1, 2, 3, 4, 5}
    assert {r["csat"] for r in data["test"]} == {1, 2, 3, 4, 5}


def test_scenarios_registry() -> None:
    expected = {
        "mangaassist": ma.generate,
        "mangaassist-sentiment-v2": ma.generate_sentiment_v2,
        "mangaassist-csat": ma.generate_csat,
    }
    assert expected == ma.SCENARIOS
