"""The HTTP server under load, steady and while the sentiment head is swapped repeatedly.

    python benchmarks/serving.py [--work DIR] [--clients 4] [--seconds 20] [--backend torch]

Starts `mtlreg serve` as a real process on loopback (packaged encoder, demo heads plus a
retrained sentiment version), drives it from client threads, and flips the active
sentiment version every 0.5 s during the second phase. With an ONNX backend both
releases are exported before the server starts, so a swap loads a ready export.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from common import machine, trained_registry

from mtl_registry.data.mangaassist import generate_sentiment_v2
from mtl_registry.export import export_active
from mtl_registry.runtime.predictor import BACKENDS
from mtl_registry.training.head_only import HeadTrainConfig, retrain_head

MESSAGE = json.dumps({"texts": ["is vol 12 of berserk back in stock?? ordered twice already"]})


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load(url: str, clients: int, seconds: float) -> tuple[list[float], int, list[int]]:
    latencies: list[float] = []
    versions: list[int] = []
    failures = [0]
    stop = time.perf_counter() + seconds

    def worker() -> None:
        while time.perf_counter() < stop:
            request = urllib.request.Request(
                url, data=MESSAGE.encode(), headers={"Content-Type": "application/json"}
            )
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    body = json.loads(resp.read())
                latencies.append(time.perf_counter() - t0)
                versions.append(body[0]["versions"]["heads"]["sentiment"])
            except Exception:
                failures[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures[0], versions


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mtlreg-bench")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--out", type=Path, default=None, help="default: results/serving*.md")
    args = parser.parse_args()
    suffix = "" if args.backend == "torch" else f"-{args.backend}"
    out = args.out or Path(f"benchmarks/results/serving{suffix}.md")

    registry = trained_registry(args.work / "registry", args.work / "data")
    active = registry.active().heads["sentiment"]
    versions = registry.head_versions("sentiment")
    other = next((v for v in versions if v != active), None)
    if (
        other is None
        or registry.head_manifest("sentiment", other).encoder_fingerprint
        != registry.active().encoder
    ):
        data = args.work / "data" / "sentiment-v2"
        generate_sentiment_v2(data, seed=0)
        other = retrain_head(
            registry, "sentiment", data, HeadTrainConfig(), progress=False
        ).manifest.version

    if args.backend != "torch":
        for version in (other, active):
            registry.activate("sentiment", version, reason="benchmark export")
            export_active(registry, int8=args.backend == "onnx-int8")
    port = _port()
    env = {**os.environ, "MTLREG_REGISTRY": str(registry.root)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mtl_registry",
            "serve",
            "--port",
            str(port),
            "--backend",
            args.backend,
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/predict"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        _load(url, args.clients, 3)  # warm-up
        steady, steady_fail, _ = _load(url, args.clients, args.seconds)

        swaps = [0]
        flipping = threading.Event()

        def flipper() -> None:
            target = [other, active]
            while not flipping.is_set():
                registry.activate("sentiment", target[swaps[0] % 2], reason="benchmark swap")
                swaps[0] += 1
                time.sleep(0.5)

        thread = threading.Thread(target=flipper)
        thread.start()
        during, during_fail, served = _load(url, args.clients, args.seconds)
        flipping.set()
        thread.join()
        registry.activate("sentiment", active, reason="benchmark done")
    finally:
        server.terminate()
        server.wait()

    def row(name: str, lat: list[float], fail: int) -> str:
        return (
            f"| {name} | {len(lat) / args.seconds:.1f} | {_pct(lat, 0.5):.1f} | "
            f"{_pct(lat, 0.99):.1f} | {fail} |"
        )

    p99_ratio = _pct(during, 0.99) / _pct(steady, 0.99)
    lines = [
        "# Serving under load, steady vs during head swaps",
        "",
        f"Command: `python benchmarks/serving.py --clients {args.clients} "
        f"--seconds {args.seconds:g} --backend {args.backend}`",
        f"Machine: {machine()}; backend {args.backend}. Requests go through the server's "
        "inference lane (one model call at a time; requests waiting together share it). "
        "The client threads run in the benchmark's own process on the same cores.",
        "",
        f"One short chat message per request, {args.clients} concurrent clients, "
        f"{args.seconds:g} s per phase; the sentiment head swapped {swaps[0]} times "
        f"(every 0.5 s) in the second phase, versions served: {sorted(set(served))}.",
        "",
        "| phase | requests/s | p50 ms | p99 ms | failed |",
        "|---|---|---|---|---|",
        row("steady", steady, steady_fail),
        row("during swaps", during, during_fail),
        "",
        f"- p99 during swaps / steady: **{p99_ratio:.2f}×** (target ≤ 1.5×)",
        f"- failed requests: **{steady_fail + during_fail}** (target 0)",
    ]
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
