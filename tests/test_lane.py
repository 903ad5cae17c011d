"""The server's inference lane: requests that arrive together share one model call."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from mtl_registry.registry import Registry
from mtl_registry.runtime import Runtime
from mtl_registry.serving.lane import InferenceLane

TEXTS = [
    "is vol 12 of berserk back in stock??",
    "where is my order MA-48213907",
    "thanks so much, love it",
    "any recs like vagabond?",
]


class HeldRuntime:
    """A real runtime whose model calls are recorded, and the first one held until released,
    so that requests pile up behind it as they do under load."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.calls: list[list[str]] = []
        self.busy = threading.Event()
        self.release = threading.Event()

    def predict(self, texts: list[Any]) -> list[dict[str, Any]]:
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.busy.set()
            self.release.wait(30)
        return self.runtime.predict(texts)


@pytest.fixture(scope="module")
def runtime(trained_registry: Path) -> Runtime:
    return Runtime(Registry(trained_registry))


def _held_lane(runtime: Runtime, max_texts: int = 64) -> tuple[HeldRuntime, InferenceLane]:
    held = HeldRuntime(runtime)
    lane = InferenceLane(held, max_texts)  # type: ignore[arg-type]
    return held, lane


def test_requests_waiting_together_share_one_call_and_get_their_own_results(runtime):
    held, lane = _held_lane(runtime)
    first = lane.submit(["hi"])
    assert held.busy.wait(30)
    jobs = [lane.submit(TEXTS[:1]), lane.submit(TEXTS[1:3]), lane.submit(TEXTS[3:])]
    held.release.set()
    results = [job.result(30) for job in jobs]
    lane.close()
    assert first.result()[0]["text"] == "hi"
    assert held.calls == [["hi"], TEXTS]  # the three waiting requests: one model call
    assert [[r["text"] for r in rs] for rs in results] == [TEXTS[:1], TEXTS[1:3], TEXTS[3:]]
    alone = runtime.predict(TEXTS)
    merged = [r for rs in results for r in rs]
    assert [r["predictions"] for r in merged] == [r["predictions"] for r in alone]
    assert all(r["versions"] == alone[0]["versions"] for r in merged)


def test_a_batch_never_grows_past_max_texts(runtime):
    held, lane = _held_lane(runtime, max_texts=3)
    lane.submit(["hi"])
    assert held.busy.wait(30)
    jobs = [lane.submit(TEXTS[:2]), lane.submit(TEXTS[2:4]), lane.submit(["ok"])]
    held.release.set()
    for job in jobs:
        job.result(30)
    lane.close()
    assert held.calls == [["hi"], TEXTS[:2], [*TEXTS[2:4], "ok"]]


def test_a_failing_request_does_not_fail_the_requests_merged_with_it(runtime):
    held, lane = _held_lane(runtime)
    lane.submit(["hi"])
    assert held.busy.wait(30)
    good, bad = lane.submit(TEXTS[:2]), lane.submit([None])  # the tokenizer rejects None
    held.release.set()
    assert [r["text"] for r in good.result(30)] == TEXTS[:2]
    with pytest.raises(Exception):  # noqa: B017 - whatever the tokenizer raises reaches the caller
        bad.result(30)
    lane.close()


def test_close_finishes_every_queued_request_first(runtime):
    held, lane = _held_lane(runtime, max_texts=1)
    lane.submit(["hi"])
    assert held.busy.wait(30)
    jobs = [lane.submit([t]) for t in TEXTS]
    closing = threading.Thread(target=lane.close)
    closing.start()
    held.release.set()
    closing.join(30)
    assert not closing.is_alive()
    assert [job.result(0)[0]["text"] for job in jobs] == TEXTS


def test_a_swap_warms_up_between_model_calls_never_beside_one(registry_copy: Path, tmp_path: Path):
    from mtl_registry.data.mangaassist import generate_sentiment_v2
    from mtl_registry.training.head_only import HeadTrainConfig, retrain_head

    registry = Registry(registry_copy)
    runtime = Runtime(registry)
    data = tmp_path / "sv2"
    generate_sentiment_v2(data, seed=2, n_train=60, n_dev=20, n_test=20)
    run = retrain_head(registry, "sentiment", data, HeadTrainConfig(epochs=1), progress=False)
    version = run.manifest.version
    with runtime._compute:  # a model call in progress
        swap = threading.Thread(target=runtime.swap, args=("sentiment", version))
        swap.start()
        swap.join(1.0)
        assert swap.is_alive()  # the new head's warm-up waits for the call to finish
        assert runtime.heads.versions["heads"]["sentiment"] == 1
    swap.join(30)
    assert not swap.is_alive()
    assert runtime.predict(["thank you!!"])[0]["versions"]["heads"]["sentiment"] == version
