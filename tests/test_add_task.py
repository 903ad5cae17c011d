"""add-task: joint catch-up as one release, the regression gate, rollback, frozen mode."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from mtl_registry.errors import DataError
from mtl_registry.registry import Registry
from mtl_registry.runtime import Runtime
from mtl_registry.training import TrainConfig
from mtl_registry.training.add_task import add_task

TEXTS = ["is vol 12 of berserk back in stock?? ordered twice already", "hi", "MA-12345678 late"]
QUICK = TrainConfig(strategy="equal", epochs=1, max_steps=3, batch_size=16)


def _logits(registry: Registry) -> dict[str, torch.Tensor]:
    runtime = Runtime(registry)
    with torch.inference_mode():
        return runtime.heads.model(*runtime.encoder.collate(runtime.encoder.tokenize(TEXTS)))


def test_joint_add_task_activates_a_new_release_and_rollback_restores_outputs(
    registry_copy, manga_data
):
    registry = Registry(registry_copy)
    before_state = registry.active()
    before = _logits(registry)

    result = add_task(
        registry, "topic", "intent", manga_data, config=QUICK, tolerance=100.0, progress=False
    )

    after_state = registry.active()
    assert result.activated and result.gate["passed"]
    assert set(result.gate["tasks"]) == {"intent", "sentiment", "ner"}
    assert after_state.encoder == result.encoder != before_state.encoder
    assert after_state.heads == {"intent": 2, "sentiment": 2, "ner": 2, "topic": 1}
    manifest = registry.head_manifest("intent", 2)
    assert manifest.parent_version == 1 and manifest.training["warm_start"]["intent"] == 1
    assert [e.action for e in registry.history()][-1] == "release"

    state = registry.rollback(reason="test")
    assert (state.encoder, state.heads) == (before_state.encoder, before_state.heads)
    restored = _logits(registry)
    assert set(restored) == set(before)
    assert all(torch.equal(before[t], restored[t]) for t in before)
    assert registry.history()[-1].action == "rollback"


def test_regression_beyond_tolerance_blocks_activation_unless_forced(registry_copy, manga_data):
    registry = Registry(registry_copy)
    before_state = registry.active()
    # a negative tolerance demands an improvement no 3-step run makes: the gate must fail
    blocked = add_task(
        registry, "topic", "intent", manga_data, config=QUICK, tolerance=-1000, progress=False
    )
    assert not blocked.activated and not blocked.gate["passed"]
    assert blocked.gate["failed"] == ["intent", "ner", "sentiment"]
    assert "fell" in blocked.gate["summary"]
    assert registry.active() == before_state
    assert registry.head_versions("topic") == [1]  # published for inspection, not live
    report = json.loads(blocked.report_path.read_text())
    assert report["activated"] is False and report["gate"]["failed"] == blocked.gate["failed"]

    forced = add_task(
        registry,
        "topic2",
        "intent",
        manga_data,
        config=QUICK,
        tolerance=-1000,
        force=True,
        progress=False,
    )
    assert forced.activated
    assert "topic2" in registry.active().heads
    assert "forced past the regression gate" in registry.history()[-1].reason


def test_rehearsal_data_that_changed_is_an_error(registry_copy, manga_data, tmp_path):
    registry = Registry(registry_copy)
    moved = tmp_path / "manga"
    shutil.copytree(manga_data, moved)
    # re-point the active heads' recorded data at a copy, then change the copy
    for task, version in registry.active().heads.items():
        path = registry.head_dir(task, version) / "manifest.json"
        data = json.loads(path.read_text())
        data["data"]["path"] = str(moved)
        path.write_text(json.dumps(data))
    with open(moved / "train.jsonl", "a") as fh:
        fh.write('{"text": "one more", "intent": "greeting_chitchat"}\n')
    with pytest.raises(DataError, match="changed since it was trained"):
        add_task(registry, "topic", "intent", manga_data, config=QUICK, progress=False)


def test_frozen_add_task_trains_only_the_new_head(registry_copy, manga_data):
    registry = Registry(registry_copy)
    before_state = registry.active()
    before = _logits(registry)
    result = add_task(
        registry,
        "topic",
        "intent",
        manga_data,
        mode="frozen",
        config=TrainConfig(epochs=1),
        progress=False,
    )
    assert result.activated
    state = registry.active()
    assert state.encoder == before_state.encoder
    assert state.heads == {**before_state.heads, "topic": 1}
    after = _logits(registry)
    assert all(torch.equal(before[t], after[t]) for t in before)
    assert registry.head_manifest("topic", 1).parent_version is None


def test_rollback_without_a_release_is_refused(tmp_path, tiny_bert):
    from mtl_registry.errors import RegistryError

    registry = Registry(tmp_path / "reg")
    registry.init(tiny_bert)
    with pytest.raises(RegistryError, match="no earlier release"):
        registry.rollback()


def test_existing_task_name_is_refused(registry_copy, manga_data):
    from mtl_registry.errors import MtlRegError

    with pytest.raises(MtlRegError, match="already exists"):
        add_task(
            Registry(registry_copy), "intent", "intent", manga_data, config=QUICK, progress=False
        )
