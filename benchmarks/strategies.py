"""Step time of each gradient strategy relative to `equal`, measured in one run.

Packaged encoder (all-MiniLM-L6-v2), three tasks (intent, sentiment, ner) on generated
MangaAssist data. One trainer per strategy, all built before timing starts; then every
round runs ONE training step (`JointTrainer.step`: forward, the strategy's backward with
its conflict probe, clipping, AdamW) of every strategy in a shuffled order, on the same
batch, so load from other processes falls on all strategies alike. Ratios are taken within
a round, after the warm-up rounds; both process CPU time (robust on a shared machine when
torch runs one thread) and wall time are reported. A second part times the per-task
gradients alone: one batched backward against T separate backward passes, same graph.

    python benchmarks/strategies.py [--rounds 10] [--warmup 2] [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import nn

from mtl_registry.data.mangaassist import generate
from mtl_registry.encoder import packaged_encoder_path
from mtl_registry.registry import Registry
from mtl_registry.strategies import EqualWeights, SharedParameters, task_gradients
from mtl_registry.training import TaskSpec, TrainConfig
from mtl_registry.training.trainer import JointTrainer

TASKS = ("intent", "sentiment", "ner")
BARE = "equal, no instrumentation"
STRATEGIES = (BARE, "equal", "uncertainty", "gradnorm", "pcgrad")
SCOPE = {
    BARE: "nothing",
    "equal": "last linear",
    "uncertainty": "last linear",
    "gradnorm": "last layer (its default)",
    "pcgrad": "all shared parameters",
}
TARGET = {"gradnorm": "<= 1.3x", "pcgrad": "<= 1.6x"}
RESULTS = Path(__file__).parent / "results" / "strategies.md"
Timings = dict[str, dict[str, list[float]]]  # case -> {"cpu": [...], "wall": [...]}


class BareEqual(EqualWeights):
    """`equal` without the per-step gradient probe: the cost floor of a training step."""

    def probe(self, shared: SharedParameters) -> tuple[str, list[nn.Parameter]]:
        return "none", []


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    return (
        f"{model}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )


def timed(fn: Callable[[], object], into: dict[str, list[float]]) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    into["cpu"].append(time.process_time() - cpu)
    into["wall"].append(time.perf_counter() - wall)


def run_strategies(registry: Registry, specs: list[TaskSpec], args: argparse.Namespace) -> Timings:
    """Seconds per training step of each strategy, one value per timed round."""
    runs = {}
    for name in STRATEGIES:
        config = TrainConfig(
            strategy="equal" if name == BARE else name,
            batch_size=args.batch_size,
            max_steps=args.warmup + args.rounds,
        )
        trainer = JointTrainer(registry, specs, config)
        if name == BARE:
            trainer.strategy = BareEqual(list(TASKS))
        sampler, paths = trainer._sampler()
        optimizer, scheduler = trainer._optimizer(args.warmup + args.rounds)
        shared = SharedParameters.of(trainer.encoder, trainer.model.heads)
        batches = [trainer._batch(sampler.step(), paths) for _ in range(args.warmup + args.rounds)]
        runs[name] = (trainer, optimizer, scheduler, shared, batches)
    times: Timings = {name: {"cpu": [], "wall": []} for name in STRATEGIES}
    order = list(STRATEGIES)
    for r in range(args.warmup + args.rounds):
        random.Random(r).shuffle(order)
        for name in order:
            trainer, optimizer, scheduler, shared, batches = runs[name]
            sink = times[name] if r >= args.warmup else {"cpu": [], "wall": []}
            timed(partial(trainer.step, batches[r], optimizer, scheduler, shared), sink)
        if r >= args.warmup:
            print(
                f"round {r - args.warmup + 1}: "
                + ", ".join(f"{n} {times[n]['cpu'][-1]:.2f}" for n in STRATEGIES)
                + " (CPU s)",
                flush=True,
            )
    return times


def run_gradients(registry: Registry, specs: list[TaskSpec], args: argparse.Namespace) -> Timings:
    """Seconds for per-task gradients: one batched backward vs T separate ones, same graph."""
    trainer = JointTrainer(
        registry, specs, TrainConfig(strategy="equal", batch_size=args.batch_size)
    )
    sampler, paths = trainer._sampler()
    ids, mask, rows, tgts = trainer._batch(sampler.step(), paths)
    trainer.model.train()
    logits = trainer.model(ids, mask, rows)
    losses = {n: trainer.model.tasks[n].head_type.loss(logits[n], tgts[n]) for n in rows}
    shared = SharedParameters.of(trainer.encoder, trainer.model.heads)

    def separate(params: list[nn.Parameter]) -> Callable[[], object]:
        return lambda: [
            torch.autograd.grad(v, params, retain_graph=True, allow_unused=True)
            for v in losses.values()
        ]

    def batched(params: list[nn.Parameter]) -> Callable[[], object]:
        return lambda: task_gradients(losses, params)

    cases = {
        "one backward of the summed loss (reference)": lambda: torch.autograd.backward(
            torch.stack(list(losses.values())).sum(), retain_graph=True
        ),
        "all shared: 1 batched backward": batched(shared.all),
        "all shared: T separate backward": separate(shared.all),
        "last layer: 1 batched backward": batched(shared.last_layer),
        "last layer: T separate backward": separate(shared.last_layer),
        "last linear: 1 batched backward": batched(shared.last_linear),
        "last linear: T separate backward": separate(shared.last_linear),
    }
    times: Timings = {k: {"cpu": [], "wall": []} for k in cases}
    for r in range(args.repeats + 1):
        keys = list(cases)
        random.Random(r).shuffle(keys)
        for key in keys:
            timed(cases[key], times[key] if r else {"cpu": [], "wall": []})  # r = 0 warms up
    return times


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def ratios(times: Timings, name: str, base: str, clock: str) -> list[float]:
    return [a / b for a, b in zip(times[name][clock], times[base][clock])]


def report(
    steps: Timings, grads: Timings, command: str, load: tuple[str, str], args: argparse.Namespace
) -> str:
    lines = [
        "# Gradient strategies: step time relative to `equal`",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        f"Load average (1, 5, 15 min) at start: {load[0]}; at end: {load[1]}  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Packaged encoder (all-MiniLM-L6-v2), tasks {', '.join(TASKS)}, batch "
        f"{args.batch_size}. {args.rounds} timed rounds after {args.warmup} warm-up rounds; "
        "each round is one full training step of every strategy, in a shuffled order, on the "
        "same batch. Ratio = the strategy's step time / `equal`'s in the same round: median "
        "over rounds (min-max). Every strategy runs with conflict instrumentation on, except "
        "the first row.",
        "",
        "| strategy | per-task gradients measured on | CPU s/step | vs `equal` (CPU) "
        "| wall s/step | vs `equal` (wall) | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in STRATEGIES:
        lines.append(
            f"| {name} | {SCOPE[name]} | {spread(steps[name]['cpu'])} "
            f"| {spread(ratios(steps, name, 'equal', 'cpu'))}x | {spread(steps[name]['wall'])} "
            f"| {spread(ratios(steps, name, 'equal', 'wall'))}x | {TARGET.get(name, '')} |"
        )
    reference = "one backward of the summed loss (reference)"
    lines += [
        "",
        f"Per-task gradients alone (T = 3, same forward graph, {args.repeats} interleaved "
        "repeats), relative to one plain backward of the summed loss:",
        "",
        "| what | CPU s | vs one backward (CPU) | wall s | vs one backward (wall) |",
        "|---|---|---|---|---|",
    ]
    for key in grads:
        lines.append(
            f"| {key} | {spread(grads[key]['cpu'])} "
            f"| {statistics.median(ratios(grads, key, reference, 'cpu')):.2f}x "
            f"| {spread(grads[key]['wall'])} "
            f"| {statistics.median(ratios(grads, key, reference, 'wall')):.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python " + " ".join(sys.argv)
    load_start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate(work / "data", seed=0, n_train=400, n_dev=32, n_test=8)
        registry = Registry(work / "registry")
        registry.init(packaged_encoder_path())
        specs = [TaskSpec(name=t, head_type=t, data=work / "data") for t in TASKS]
        steps = run_strategies(registry, specs, args)
        grads = run_gradients(registry, specs, args)
    load_end = " ".join(f"{x:.1f}" for x in os.getloadavg())
    text = report(steps, grads, command, (load_start, load_end), args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
