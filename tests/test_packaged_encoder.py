"""A few checks on the real packaged all-MiniLM-L6-v2 encoder (the product's default)."""

from __future__ import annotations

from pathlib import Path

from mtl_registry.data.mangaassist import generate
from mtl_registry.data.prepared import load_data_dirs
from mtl_registry.encoder import SharedEncoder, packaged_encoder_path
from mtl_registry.heads.ner import NerHead, spans_from_tags, word_tags
from mtl_registry.registry import Registry
from mtl_registry.runtime import Runtime
from mtl_registry.training import TaskSpec, TrainConfig, train


def test_packaged_encoder_imports_with_a_stable_fingerprint(tmp_path: Path):
    a = Registry(tmp_path / "a").init(packaged_encoder_path())
    b = Registry(tmp_path / "b").init(packaged_encoder_path())
    assert a.fingerprint == b.fingerprint
    assert (a.model_type, a.hidden_size) == ("bert", 384)


def test_every_generated_entity_round_trips_through_the_real_tokenizer(tmp_path: Path):
    generate(tmp_path / "d", seed=3)
    encoder = SharedEncoder.load(packaged_encoder_path())
    ner = NerHead()
    data = load_data_dirs(encoder, {"ner": (ner, tmp_path / "d")})[(tmp_path / "d").resolve()]
    checked = 0
    for split in data.splits.values():
        for gold, enc in zip(split.values("entities"), split.encoded):
            spans = spans_from_tags(enc, word_tags(enc, gold))
            assert [(s["start"], s["end"], s["label"]) for s in spans] == [
                (g["start"], g["end"], g["label"]) for g in gold
            ]
            checked += len(gold)
    assert checked > 1000


def test_short_joint_training_on_the_packaged_encoder_predicts(tmp_path: Path):
    generate(tmp_path / "d", seed=0, n_train=64, n_dev=16, n_test=16)
    registry = Registry(tmp_path / "reg")
    registry.init(packaged_encoder_path())
    specs = [
        TaskSpec(name=t, head_type=t, data=tmp_path / "d") for t in ("intent", "sentiment", "ner")
    ]
    train(registry, specs, TrainConfig(max_steps=4, batch_size=16), progress=False)
    [result] = Runtime(registry).predict(["where is my order MA-48213907??"])
    assert set(result["predictions"]) == {"intent", "sentiment", "ner"}
    assert result["versions"]["encoder"] == registry.active().encoder
