"""Tiny randomly initialised encoders (BERT and DistilBERT), built in the test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

from mtl_registry.data.mangaassist import generate
from mtl_registry.encoder.files import TOKENIZER_FILES, packaged_encoder_path


def _tiny(folder: Path, kind: str) -> Path:
    folder.mkdir(parents=True)
    src = packaged_encoder_path()
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, folder / name)
    if kind == "bert":
        config = BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        )
        model = BertModel(config, add_pooling_layer=False)
    else:
        config = DistilBertConfig(
            vocab_size=30522,
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=128,
        )
        model = DistilBertModel(config)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny(tmp_path_factory.mktemp("enc") / "tiny-bert", "bert")


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny(tmp_path_factory.mktemp("enc") / "tiny-distilbert", "distilbert")


@pytest.fixture(scope="session")
def manga_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "mangaassist"
    generate(out, seed=0, n_train=160, n_dev=40, n_test=40)
    return out


@pytest.fixture(scope="session")
def trained_registry(
    tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, manga_data: Path
) -> Path:
    """A registry with intent, sentiment and ner v1 jointly trained on the tiny encoder.

    Tests that write to it copy it first (`registry_copy`)."""
    from mtl_registry.registry import Registry
    from mtl_registry.training import TaskSpec, TrainConfig, train

    root = tmp_path_factory.mktemp("trained") / "reg"
    registry = Registry(root)
    registry.init(tiny_bert)
    specs = [TaskSpec(name=t, head_type=t, data=manga_data) for t in ("intent", "sentiment", "ner")]
    train(registry, specs, TrainConfig(epochs=1, max_steps=4, batch_size=16), progress=False)
    return root


@pytest.fixture
def registry_copy(tmp_path: Path, trained_registry: Path) -> Path:
    dst = tmp_path / "reg"
    shutil.copytree(trained_registry, dst)
    return dst
