"""Joint training on a tiny random encoder: what gets published, how steps are built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mtl_registry.registry import Registry
from mtl_registry.strategies import SharedParameters, UncertaintyWeights
from mtl_registry.training import TaskSpec, TrainConfig, train
from mtl_registry.training.sampler import Group, StepSampler

TASKS = ("intent", "sentiment", "ner")


def _split_by_task(src: Path, out: Path) -> dict[str, Path]:
    """One directory per task whose records carry only that task's labels."""
    field = {"intent": "intent", "sentiment": "sentiment", "ner": "entities"}
    dirs = {}
    for task in TASKS:
        d = out / task
        d.mkdir(parents=True)
        for split in ("train", "dev", "test"):
            rows = [json.loads(line) for line in (src / f"{split}.jsonl").read_text().splitlines()]
            with open(d / f"{split}.jsonl", "w") as fh:
                for i, r in enumerate(rows):
                    if i % 3 == TASKS.index(task) or split != "train":
                        fh.write(
                            json.dumps({"text": r["text"], field[task]: r[field[task]]}) + "\n"
                        )
        dirs[task] = d
    return dirs


def test_joint_training_publishes_new_encoder_and_one_head_per_task(
    tmp_path, tiny_bert, manga_data
):
    registry = Registry(tmp_path / "reg")
    base = registry.init(tiny_bert)
    specs = [TaskSpec(name=t, head_type=t, data=manga_data) for t in TASKS]
    result = train(
        registry, specs, TrainConfig(epochs=1, batch_size=16, max_steps=6), progress=False
    )

    active = registry.active()
    assert active.encoder == result.encoder.fingerprint != base.fingerprint
    assert result.encoder.parent == base.fingerprint
    assert active.heads == {"intent": 1, "sentiment": 1, "ner": 1}
    ner = registry.head_manifest("ner", 1)
    assert ner.labels[0] == "O" and "B-TITLE" in ner.labels and len(ner.labels) == 9
    assert ner.encoder_fingerprint == result.encoder.fingerprint
    assert ner.plugin.name == "mtl-registry"
    assert "f1" in ner.metrics["test"] and "per_type_f1" in ner.metrics["test"]
    sentiment = registry.head_manifest("sentiment", 1)
    assert set(sentiment.training["calibration"]["thresholds"]) == set(sentiment.labels)
    assert result.test is not None and result.test["all_tasks_correct"]["n"] == 40
    assert registry.verify() == []

    steps = [json.loads(x) for x in (result.run_dir / "steps.jsonl").read_text().splitlines()]
    train_steps = [s for s in steps if "loss" in s]
    assert len(train_steps) == 6
    assert all(set(s["loss"]) == set(TASKS) == set(s["weight"]) for s in train_steps)
    assert any("dev" in s for s in steps)


def test_tasks_from_separate_datasets_each_step_sees_every_task(tmp_path, tiny_bert, manga_data):
    dirs = _split_by_task(manga_data, tmp_path / "data")
    registry = Registry(tmp_path / "reg")
    registry.init(tiny_bert)
    specs = [TaskSpec(name=t, head_type=t, data=d) for t, d in dirs.items()]
    result = train(
        registry, specs, TrainConfig(epochs=1, batch_size=12, max_steps=5), progress=False
    )
    steps = [json.loads(x) for x in (result.run_dir / "steps.jsonl").read_text().splitlines()]
    assert all(set(s["loss"]) == set(TASKS) for s in steps if "loss" in s)
    assert result.test is not None and set(result.test["tasks"]) == set(TASKS)
    assert result.test["tasks"]["intent"]["data"].endswith("intent/test.jsonl")


def test_sampler_adds_a_labelled_example_when_a_task_would_be_missing():
    # task "rare" has labels on one record only: every step must still contain it
    groups = [Group(size=50, task_rows={"common": list(range(50)), "rare": [7]})]
    sampler = StepSampler(groups, batch_size=4, seed=0)
    for _ in range(30):
        picks = sampler.step()
        assert (0, 7) in picks
        assert len(picks) == len(set(picks))


def test_training_works_on_a_distilbert_encoder(tmp_path, tiny_distilbert, manga_data):
    registry = Registry(tmp_path / "reg")
    registry.init(tiny_distilbert)
    specs = [
        TaskSpec(name="intent", head_type="intent", data=manga_data),
        TaskSpec(name="ner", head_type="ner", data=manga_data),
    ]
    result = train(
        registry,
        specs,
        TrainConfig(epochs=1, batch_size=16, max_steps=3, strategy="equal"),
        progress=False,
    )
    assert registry.encoder_manifest(result.encoder.fingerprint).model_type == "distilbert"
    assert registry.active().heads == {"intent": 1, "ner": 1}


def test_uncertainty_weighting_follows_kendall_formula():
    strategy = UncertaintyWeights(["a", "b"])
    with torch.no_grad():
        strategy.log_vars.copy_(torch.tensor([0.0, 1.0]))
    la = torch.tensor(2.0, requires_grad=True)
    lb = torch.tensor(3.0, requires_grad=True)
    strategy.backward({"a": la, "b": lb}, SharedParameters(all=[], last_layer=[]))
    # d/dL of 0.5·exp(-s)·L + 0.5·s is 0.5·exp(-s); d/ds is -0.5·exp(-s)·L + 0.5
    assert la.grad.item() == pytest.approx(0.5)
    assert lb.grad.item() == pytest.approx(0.5 * torch.exp(torch.tensor(-1.0)).item())
    expected = torch.tensor(
        [-0.5 * 2.0 + 0.5, -0.5 * torch.exp(torch.tensor(-1.0)).item() * 3 + 0.5]
    )
    assert torch.allclose(strategy.log_vars.grad, expected)
    assert strategy.weights()["b"] == pytest.approx(0.5 * torch.exp(torch.tensor(-1.0)).item())
