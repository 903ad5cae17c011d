"""The HTTP server, started for real on loopback, hot-swapping under concurrent load."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtl_registry.data.mangaassist import generate_sentiment_v2
from mtl_registry.registry import Registry
from mtl_registry.training.head_only import HeadTrainConfig, retrain_head


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, object]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def predict(base: str, texts: list[str]) -> tuple[int, object]:
    return call(f"{base}/predict", json.dumps({"texts": texts}).encode())


@pytest.fixture
def server(registry_copy: Path, tmp_path: Path) -> Iterator[tuple[str, Registry]]:
    registry = Registry(registry_copy)
    data = tmp_path / "sv2"
    generate_sentiment_v2(data, seed=2, n_train=120, n_dev=30, n_test=30)
    retrain_head(registry, "sentiment", data, HeadTrainConfig(epochs=1), progress=False)
    port = _free_port()
    env = {**os.environ, "MTLREG_REGISTRY": str(registry_copy)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mtl_registry",
            "serve",
            "--port",
            str(port),
            "--max-texts",
            "8",
            "--max-chars",
            "300",
            "--poll-interval",
            "0.1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if call(f"{base}/health", timeout=2)[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"server did not start: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.2)
    try:
        yield base, registry
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_swaps_under_concurrent_load_fail_no_request_and_never_mix_versions(server):
    base, registry = server
    allowed = [{"intent": 1, "ner": 1, "sentiment": v} for v in (1, 2)]
    failures: list[object] = []
    seen: list[dict] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                status, body = predict(base, ["where is my order MA-12345678??", "thanks!!", "hi"])
            except Exception as exc:  # a dropped connection is a failure too
                failures.append(repr(exc))
                continue
            if status != 200:
                failures.append((status, body))
                continue
            versions = [r["versions"]["heads"] for r in body]
            if any(v != versions[0] for v in versions) or versions[0] not in allowed:
                failures.append(versions)
            seen.append(versions[0])

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    delays = []
    try:
        for i in range(20):
            target = 2 if i % 2 == 0 else 1
            registry.activate("sentiment", target, reason="swap test")
            started = time.time()
            while True:
                _, body = predict(base, ["hello"])
                if body[0]["versions"]["heads"]["sentiment"] == target:
                    delays.append(time.time() - started)
                    break
                assert time.time() - started < 2.0, f"v{target} not served within 2 s"
                time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert len(seen) > 20 and {v["sentiment"] for v in seen} == {1, 2}
    assert max(delays) < 2.0
    heads = call(f"{base}/heads")[1]
    assert {(h["task"], h["version"]) for h in heads} == {
        ("intent", 1),
        ("ner", 1),
        ("sentiment", 1),
    }
    assert all(h["last_swap_error"] is None for h in heads)


def test_bad_requests_get_json_4xx_and_the_server_keeps_serving(server):
    base, _ = server
    assert predict(base, [])[0] == 422
    status, body = predict(base, ["hi"] * 9)
    assert status == 413 and "limit is 8" in body["error"]
    status, body = predict(base, ["x" * 301])
    assert status == 413 and "texts[0]" in body["error"]
    status, body = call(f"{base}/predict", b'{"texts": ["unterminated')
    assert status == 400 and "not valid JSON" in body["error"]
    status, body = call(f"{base}/predict", b'{"text": "wrong field"}')
    assert status == 422 and "error" in body
    status, body = predict(base, ["   "])
    assert status == 422 and "empty" in body["error"]
    status, body = predict(base, ["is one piece in stock"])
    assert status == 200 and set(body[0]["predictions"]) == {"intent", "sentiment", "ner"}
    health = call(f"{base}/health")[1]
    assert health["status"] == "ok" and health["heads"] == {"intent": 1, "ner": 1, "sentiment": 1}
