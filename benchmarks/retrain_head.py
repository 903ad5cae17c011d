"""retrain-head vs its floor (one frozen-encoder pass) vs fine-tuning a separate model.

    python benchmarks/retrain_head.py [--work DIR] [--out benchmarks/results/retrain_head.md]

All three are measured in this one run on the packaged all-MiniLM-L6-v2 encoder, on the
MangaAssist changed-label sentiment data (sentiment-v2, 1200/200/300 records).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import machine, trained_registry

from mtl_registry.data.mangaassist import generate_sentiment_v2
from mtl_registry.data.prepared import load_data_dirs
from mtl_registry.encoder import packaged_encoder_path
from mtl_registry.model import load_active_encoder
from mtl_registry.plugins import host
from mtl_registry.registry import Registry
from mtl_registry.training import TaskSpec, TrainConfig, train
from mtl_registry.training.features import FeatureCache
from mtl_registry.training.head_only import HeadTrainConfig, retrain_head


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mtlreg-bench")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/retrain_head.md"))
    parser.add_argument("--separate-epochs", type=int, default=3)
    args = parser.parse_args()

    registry = trained_registry(args.work / "registry", args.work / "data")
    data = args.work / "data" / "sentiment-v2"
    generate_sentiment_v2(data, seed=0)
    encoder = load_active_encoder(registry)
    sentiment = host().head_type("sentiment")[0]

    # floor: tokenise + one frozen-encoder pass over every split, nothing else
    cache_root = args.work / "floor-cache"
    shutil.rmtree(cache_root, ignore_errors=True)
    t0 = time.perf_counter()
    splits = load_data_dirs(encoder, {"sentiment": (sentiment, data)})[data.resolve()].splits
    cache = FeatureCache(cache_root, encoder)
    for split in splits.values():
        cache.features(split, "sentence", "mean")
    floor = time.perf_counter() - t0

    shutil.rmtree(registry.root / "cache", ignore_errors=True)
    t0 = time.perf_counter()
    cold = retrain_head(
        registry, "sentiment", data, HeadTrainConfig(), progress=False, encoder=encoder
    )
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = retrain_head(
        registry, "sentiment", data, HeadTrainConfig(), progress=False, encoder=encoder
    )
    warm_s = time.perf_counter() - t0

    separate_registry = Registry(args.work / "separate")
    shutil.rmtree(separate_registry.root, ignore_errors=True)
    separate_registry.init(packaged_encoder_path())
    t0 = time.perf_counter()
    separate = train(
        separate_registry,
        [TaskSpec(name="sentiment", head_type="sentiment", data=data)],
        TrainConfig(epochs=args.separate_epochs),
        progress=False,
    )
    separate_s = time.perf_counter() - t0
    assert separate.test is not None

    def scores(m: dict) -> str:
        return f"micro F1 {m['micro_f1']:.3f}, macro F1 {m['macro_f1']:.3f}"

    rows = [
        ("floor: one frozen-encoder pass (tokenise + encode 1700 texts)", floor, "-"),
        ("retrain-head, cold feature cache", cold_s, scores(cold.comparison["new"])),
        (
            "retrain-head, warm feature cache (encoder not run)",
            warm_s,
            scores(warm.comparison["new"]),
        ),
        (
            f"separate single-task fine-tune ({args.separate_epochs} epochs)",
            separate_s,
            scores(separate.test["tasks"]["sentiment"]),
        ),
        (
            "active head before retraining (no gratitude label)",
            None,
            scores(cold.comparison["active"]),
        ),
    ]
    lines = [
        "# retrain-head vs floor vs separate fine-tune",
        "",
        "Command: `python benchmarks/retrain_head.py`",
        f"Machine: {machine()}",
        "",
        "| what | wall time (s) | held-out test (sentiment-v2) |",
        "|---|---|---|",
        *[f"| {w} | {'-' if t is None else f'{t:.2f}'} | {s} |" for w, t, s in rows],
        "",
        f"- retrain-head (cold) / floor: **{cold_s / floor:.2f}×** (target ≤ 1.5×)",
        f"- separate fine-tune / retrain-head (cold): **{separate_s / cold_s:.1f}×** "
        "(target ≥ 10×)",
        f"- encoder batches run: cold {cold.encoder_batches}, warm {warm.encoder_batches}",
    ]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
