"""Adding a task: GradNorm joint vs equal joint vs frozen, next to a single-task model.

    python benchmarks/add_task_experiment.py [--work DIR] [--subset 2000]

Two settings, each on the packaged all-MiniLM-L6-v2 encoder:
- MangaAssist: a model of intent + sentiment, then NER is added (same corpus);
- public data: SNIPS intent + GoEmotions (Ekman) sentiment, then CoNLL-2003 NER is added.
Public datasets are read from ../shared/datasets and cut to `--subset` training records
per task (dev/test to a quarter of that) so the whole run fits a CPU budget.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine

from mtl_registry.data.converters import convert
from mtl_registry.data.mangaassist import generate
from mtl_registry.encoder import packaged_encoder_path
from mtl_registry.registry import Registry
from mtl_registry.training import TaskSpec, TrainConfig, train
from mtl_registry.training.add_task import add_task

SHARED = Path(
    os.environ.get(
        "MTLREG_SHARED_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )
)


def subset(src: Path, dst: Path, n: int) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for split, size in (("train", n), ("dev", n // 4), ("test", n // 4)):
        lines = (src / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[:size]
        (dst / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


def public_data(work: Path, n: int) -> dict[str, Path]:
    full = work / "public-full"
    if not (full / "conll" / "test.jsonl").is_file():
        convert("jointbert", SHARED / "snips", full / "snips")
        convert("goemotions", SHARED / "goemotions" / "ekman", full / "goemotions")
        convert("conll", SHARED / "conll2003", full / "conll")
    return {
        name: subset(full / name, work / "public" / name, n)
        for name in ("snips", "goemotions", "conll")
    }


def primary(report: dict[str, Any], task: str) -> float:
    m = report["tasks"][task]
    for key in ("accuracy", "micro_f1", "f1"):
        if key in m:
            return float(m[key])
    raise KeyError(task)


def run_setting(
    name: str, work: Path, base: list[TaskSpec], new: TaskSpec, epochs: int, add_epochs: int
) -> list[str]:
    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    base_reg = Registry(root / "base")
    base_reg.init(packaged_encoder_path())
    t0 = time.perf_counter()
    base_result = train(base_reg, base, TrainConfig(epochs=epochs), progress=False)
    base_s = time.perf_counter() - t0
    assert base_result.test is not None
    before = {s.name: primary(base_result.test, s.name) for s in base}
    rows = [
        f"| base: {' + '.join(s.name for s in base)} ({epochs} epochs, uncertainty) | - | "
        + ", ".join(f"{t} {v:.3f}" for t, v in before.items())
        + f" | {base_s:.0f} |"
    ]
    variants = [
        ("gradnorm joint", "joint", "gradnorm"),
        ("equal joint", "joint", "equal"),
        ("frozen encoder", "frozen", "equal"),
    ]
    for label, mode, strategy in variants:
        reg = Registry(root / label.replace(" ", "-"))
        shutil.copytree(base_reg.root, reg.root)
        t0 = time.perf_counter()
        result = add_task(
            reg,
            new.name,
            new.head_type,
            new.data,
            mode=mode,  # type: ignore[arg-type]
            config=TrainConfig(strategy=strategy, epochs=add_epochs),
            tolerance=100.0,
            progress=False,
        )
        seconds = time.perf_counter() - t0
        new_score = reg.head_manifest(new.name, reg.active().heads[new.name]).metrics["test"]
        if mode == "frozen":
            changes = "unchanged (encoder and heads not touched)"
        else:
            changes = ", ".join(
                f"{t} {r['change_points']:+.2f}" for t, r in result.gate["tasks"].items()
            )
        key = next(k for k in ("f1", "accuracy", "micro_f1") if k in new_score)
        rows.append(
            f"| add {new.name}: {label} ({add_epochs} epoch) | {new_score[key]:.3f} | "
            f"{changes} | {seconds:.0f} |"
        )
    single = Registry(root / "single")
    single.init(packaged_encoder_path())
    t0 = time.perf_counter()
    alone = train(single, [new], TrainConfig(epochs=add_epochs), progress=False)
    seconds = time.perf_counter() - t0
    assert alone.test is not None
    rows.append(
        f"| single-task {new.name} model ({add_epochs} epoch) | "
        f"{primary(alone.test, new.name):.3f} | - | {seconds:.0f} |"
    )
    return [
        f"## {name}",
        "",
        "| run | new task test score | existing tasks' test change (points) | seconds |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mtlreg-addtask")
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--add-epochs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/add_task.md"))
    args = parser.parse_args()

    manga = args.work / "mangaassist"
    generate(manga, seed=0)
    public = public_data(args.work, args.subset)
    lines = [
        "# Adding a task: GradNorm joint vs equal joint vs frozen vs single-task",
        "",
        f"Command: `python benchmarks/add_task_experiment.py --subset {args.subset} "
        f"--epochs {args.epochs} --add-epochs {args.add_epochs}`",
        f"Machine: {machine()}",
        "",
        "Scores: intent accuracy, sentiment micro F1, NER strict entity F1 (seqeval), on each "
        "task's test split. Joint add-task rehearses the existing tasks on their recorded data.",
        "",
    ]
    lines += run_setting(
        "MangaAssist (generated; held-out phrasings and titles in test)",
        args.work,
        [
            TaskSpec(name="intent", head_type="intent", data=manga),
            TaskSpec(name="sentiment", head_type="sentiment", data=manga),
        ],
        TaskSpec(name="ner", head_type="ner", data=manga),
        args.epochs,
        args.add_epochs,
    )
    lines += run_setting(
        f"Public data (first {args.subset} train records per task): SNIPS intent + GoEmotions "
        "Ekman, then CoNLL-2003 NER",
        args.work,
        [
            TaskSpec(name="intent", head_type="intent", data=public["snips"]),
            TaskSpec(name="sentiment", head_type="sentiment", data=public["goemotions"]),
        ],
        TaskSpec(name="ner", head_type="ner", data=public["conll"]),
        args.epochs,
        args.add_epochs,
    )
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
