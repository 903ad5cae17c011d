"""retrain-head: one head changes on the frozen encoder, nothing else does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mtl_registry.data.mangaassist import generate_sentiment_v2
from mtl_registry.encoder import SharedEncoder, packaged_encoder_path
from mtl_registry.errors import MtlRegError
from mtl_registry.fileio import file_checksums
from mtl_registry.registry import Registry
from mtl_registry.runtime import Runtime
from mtl_registry.training import TaskSpec, TrainConfig, train
from mtl_registry.training.head_only import HeadTrainConfig, retrain_head

TEXTS = ["is vol 12 of berserk back in stock?? ordered twice already", "thanks a lot!!", "hi"]


@pytest.fixture(scope="module")
def sentiment_v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sv2") / "data"
    generate_sentiment_v2(out, seed=1, n_train=240, n_dev=60, n_test=60)
    return out


def _raw_logits(root: Path) -> dict[str, torch.Tensor]:
    runtime = Runtime(Registry(root))
    encoded = runtime.encoder.tokenize(TEXTS)
    with torch.inference_mode():
        return runtime.heads.model(*runtime.encoder.collate(encoded))


def test_retrain_head_leaves_encoder_and_other_heads_bit_identical(registry_copy, sentiment_v2):
    registry = Registry(registry_copy)
    fp = registry.active().encoder
    encoder_files = file_checksums(registry.encoder_dir(fp))
    before = _raw_logits(registry_copy)

    result = retrain_head(
        registry,
        "sentiment",
        sentiment_v2,
        HeadTrainConfig(epochs=3),
        activate=True,
        progress=False,
    )

    assert registry.active().encoder == fp
    assert file_checksums(registry.encoder_dir(fp)) == encoder_files
    assert registry.active().heads == {"intent": 1, "ner": 1, "sentiment": 2}
    after = _raw_logits(registry_copy)
    assert torch.equal(before["intent"], after["intent"])
    assert torch.equal(before["ner"], after["ner"])
    assert not torch.equal(before["sentiment"][:, :6], after["sentiment"][:, :6])
    manifest = result.manifest
    assert manifest.parent_version == 1 and manifest.encoder_fingerprint == fp
    assert manifest.data is not None and manifest.data.path == str(sentiment_v2.resolve())
    assert result.comparison["active"]["version"] == 1
    assert set(result.comparison["new"]) >= {"micro_f1", "macro_f1"}


def test_retrain_without_activate_publishes_but_keeps_the_active_version(
    registry_copy, sentiment_v2
):
    registry = Registry(registry_copy)
    result = retrain_head(
        registry, "sentiment", sentiment_v2, HeadTrainConfig(epochs=1), progress=False
    )
    assert result.manifest.version == 2 and not result.activated
    assert registry.active().heads["sentiment"] == 1


def test_second_retrain_on_same_data_never_runs_the_encoder(
    registry_copy, sentiment_v2, monkeypatch
):
    calls = []
    real_forward = SharedEncoder.forward

    def counting_forward(self, *args, **kwargs):
        calls.append(1)
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(SharedEncoder, "forward", counting_forward)
    registry = Registry(registry_copy)
    first = retrain_head(
        registry, "sentiment", sentiment_v2, HeadTrainConfig(epochs=1), progress=False
    )
    assert len(calls) == first.encoder_batches > 0
    calls.clear()
    second = retrain_head(
        registry, "sentiment", sentiment_v2, HeadTrainConfig(epochs=1), progress=False
    )
    assert calls == [] and second.encoder_batches == 0
    assert first.comparison["new"] == second.comparison["new"]  # same features, same seed


def test_dropping_a_label_needs_allow_label_removal(registry_copy, sentiment_v2, tmp_path):
    reduced = tmp_path / "reduced"
    reduced.mkdir()
    for split in ("train", "dev", "test"):
        rows = [json.loads(x) for x in (sentiment_v2 / f"{split}.jsonl").read_text().splitlines()]
        with open(reduced / f"{split}.jsonl", "w") as fh:
            for r in rows:
                r["sentiment"] = [x for x in r["sentiment"] if x != "urgency"]
                fh.write(json.dumps(r) + "\n")
    registry = Registry(registry_copy)
    with pytest.raises(MtlRegError, match=r"no examples of \['urgency'\].*--allow-label-removal"):
        retrain_head(registry, "sentiment", reduced, HeadTrainConfig(epochs=1), progress=False)
    assert registry.head_versions("sentiment") == [1]
    result = retrain_head(
        registry,
        "sentiment",
        reduced,
        HeadTrainConfig(epochs=1),
        allow_label_removal=True,
        progress=False,
    )
    assert result.removed_labels == ["urgency"] and "urgency" not in result.manifest.labels
    assert result.added_labels == ["gratitude"]


def test_runtime_refuses_a_head_trained_on_another_encoder(registry_copy):
    registry = Registry(registry_copy)
    runtime = Runtime(registry)
    base = registry.encoder_manifest(registry.active().encoder).parent
    current = registry.head_manifest("sentiment", 1)
    folder = registry.head_dir("sentiment", 1)
    from mtl_registry.registry import HeadDraft

    draft = HeadDraft(
        **current.model_dump(include=set(HeadDraft.model_fields)) | {"encoder_fingerprint": base}
    )
    _, [foreign] = registry.publish([(draft, folder)])
    assert runtime.swap("sentiment", foreign.version) is False
    error = runtime.swaps["sentiment"].error
    assert base in error and registry.active().encoder in error
    [result] = runtime.predict(["hello there"])
    assert result["versions"]["heads"]["sentiment"] == 1
    [status] = [s for s in runtime.status() if s["task"] == "sentiment"]
    assert status["version"] == 1 and status["last_swap_error"] == error


def test_new_label_is_predicted_after_retrain_on_packaged_encoder(
    tmp_path, manga_data, sentiment_v2
):
    registry = Registry(tmp_path / "reg")
    registry.init(packaged_encoder_path())
    train(
        registry,
        [TaskSpec(name="sentiment", head_type="sentiment", data=manga_data)],
        TrainConfig(max_steps=2, batch_size=16),
        progress=False,
    )
    result = retrain_head(
        registry,
        "sentiment",
        sentiment_v2,
        HeadTrainConfig(epochs=15),
        activate=True,
        progress=False,
    )
    assert result.added_labels == ["gratitude"]
    assert result.comparison["new"]["per_label_f1"]["gratitude"] > 0.25
    [pred] = Runtime(registry).predict(["thank you so much, you guys are the best!!"])
    assert "gratitude" in [x["label"] for x in pred["predictions"]["sentiment"]["labels"]]
