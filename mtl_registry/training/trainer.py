"""Joint training: the encoder and every head fine-tuned together, then published as one set."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mtl_registry.data.prepared import Split, check_labels, load_data_dirs, targets
from mtl_registry.errors import DataError
from mtl_registry.evaluation.scoring import primary, score_dirs
from mtl_registry.model import MultiTaskModel, Task, load_active_encoder
from mtl_registry.plugins import host
from mtl_registry.registry import Registry
from mtl_registry.strategies import ConflictTally, GradientStats, SharedParameters, Strategy
from mtl_registry.training.config import TaskSpec, TrainConfig
from mtl_registry.training.report_plots import read_steps, write_plots
from mtl_registry.training.sampler import Group, StepSampler


class JointTrainer:
    """Prepares data, runs the optimisation loop, keeps the best dev checkpoint."""

    def __init__(self, registry: Registry, specs: list[TaskSpec], config: TrainConfig) -> None:
        if not specs:
            raise ValueError("at least one --task is needed")
        self.registry, self.specs, self.config = registry, specs, config
        torch.manual_seed(config.seed)
        self.encoder = load_active_encoder(registry, config.max_length)
        plugins = host()
        resolved = {s.name: plugins.head_type(s.head_type) for s in specs}
        self.dirs = load_data_dirs(
            self.encoder, {s.name: (resolved[s.name][0], s.data) for s in specs}
        )
        tasks = {}
        for s in specs:
            head_type, plugin = resolved[s.name]
            train = self._split(s, "train")
            values = [v for v in train.values(head_type.field) if v is not None]
            if not values:
                raise DataError(
                    f"no record carries '{head_type.field}' labels for task '{s.name}'",
                    path=train.path,
                    field=head_type.field,
                )
            labels = head_type.label_set(values)
            for split in self.dirs[s.data.resolve()].splits.values():
                check_labels(split, head_type, labels)
            tasks[s.name] = Task(s.name, head_type, plugin, labels, config.head)
        self.model = MultiTaskModel(self.encoder, tasks)
        self.task_dirs = {s.name: s.data.resolve() for s in specs}
        self.strategy: Strategy = plugins.strategy(config.strategy)(
            list(tasks), config.strategy_options
        )
        self.summary: dict[str, Any] = {}
        self.targets = {
            s.name: targets(self._split(s, "train"), tasks[s.name].head_type, tasks[s.name].labels)
            for s in specs
        }

    def _split(self, spec: TaskSpec, split: str) -> Split:
        return self.dirs[spec.data.resolve()].splits[split]

    def _sampler(self) -> tuple[StepSampler, list[Path]]:
        paths = list(self.dirs)
        groups = []
        for path in paths:
            names = [s.name for s in self.specs if s.data.resolve() == path]
            rows = {n: [i for i, t in enumerate(self.targets[n]) if t is not None] for n in names}
            groups.append(Group(len(self.dirs[path].splits["train"]), rows))
        return StepSampler(groups, self.config.batch_size, self.config.seed), paths

    def _optimizer(self, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
        c = self.config
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.dim() < 2 or "LayerNorm" in name or "norm" in name else decay).append(p)
        enc = {id(p) for p in self.encoder.parameters()}
        groups = [
            {
                "params": [p for p in decay if id(p) in enc],
                "lr": c.lr,
                "weight_decay": c.weight_decay,
            },
            {"params": [p for p in no_decay if id(p) in enc], "lr": c.lr, "weight_decay": 0.0},
            {
                "params": [p for p in decay if id(p) not in enc],
                "lr": c.head_lr,
                "weight_decay": c.weight_decay,
            },
            {
                "params": [p for p in no_decay if id(p) not in enc],
                "lr": c.head_lr,
                "weight_decay": 0.0,
            },
            {"params": list(self.strategy.parameters()), "lr": c.strategy_lr, "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]])
        warmup = max(1, int(total_steps * c.warmup_ratio))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    def _batch(self, picks: list[tuple[int, int]], paths: list[Path]) -> tuple[Any, ...]:
        encoded, rows, tgts = [], {}, {}
        for pos, (g, i) in enumerate(picks):
            encoded.append(self.dirs[paths[g]].splits["train"].encoded[i])
            for s in self.specs:
                if s.data.resolve() == paths[g] and self.targets[s.name][i] is not None:
                    rows.setdefault(s.name, []).append(pos)
                    tgts.setdefault(s.name, []).append(self.targets[s.name][i])
        ids, mask = self.encoder.collate(encoded)
        head_types = {n: self.model.tasks[n].head_type for n in rows}
        return (
            ids,
            mask,
            {n: torch.tensor(r) for n, r in rows.items()},
            {n: head_types[n].collate(t) for n, t in tgts.items()},
        )

    def run(self, log_path: Path, progress: bool = True) -> dict[str, Any]:
        """Train; returns the best dev report. The model holds the best weights afterwards."""
        c = self.config
        sampler, paths = self._sampler()
        per_epoch = sampler.steps_per_epoch
        total = min(c.max_steps or math.inf, per_epoch * c.epochs)
        total = int(total)
        optimizer, scheduler = self._optimizer(total)
        shared = SharedParameters.of(self.encoder, self.model.heads)
        tally = ConflictTally()
        best: tuple[float, dict[str, torch.Tensor], dict[str, Any]] | None = None
        bar = tqdm(total=total, unit="step", desc="train", disable=not progress, dynamic_ncols=True)
        with open(log_path, "w", encoding="utf-8") as log:
            for step, picks in zip(range(total), sampler):
                losses, stats = self.step(self._batch(picks, paths), optimizer, scheduler, shared)
                tally.add(stats)
                entry = {
                    "step": step + 1,
                    "epoch": step // per_epoch + 1,
                    "time": time.time(),
                    "lr": scheduler.get_last_lr()[0],
                    "loss": {n: round(v.item(), 5) for n, v in losses.items()},
                    "weight": {n: round(w, 5) for n, w in self.strategy.weights().items()},
                    **stats.log_fields(),
                }
                log.write(json.dumps(entry) + "\n")
                bar.update(1)
                bar.set_postfix({n: f"{v.item():.3f}" for n, v in losses.items()})
                end_of_epoch = (step + 1) % per_epoch == 0 or step + 1 == total
                if end_of_epoch:
                    report = score_dirs(self.model.eval(), self.dirs, self.task_dirs, "dev")
                    assert report is not None  # dev is required
                    combined = sum(primary(self.model, report).values()) / len(self.specs)
                    log.write(
                        json.dumps(
                            {
                                "step": step + 1,
                                "dev": primary(self.model, report),
                                "combined": combined,
                            }
                        )
                        + "\n"
                    )
                    log.flush()
                    if progress:
                        bar.write(
                            f"epoch {entry['epoch']}: dev "
                            + ", ".join(
                                f"{n} {v:.3f}" for n, v in primary(self.model, report).items()
                            )
                        )
                    if best is None or combined > best[0]:
                        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                        best = (combined, state, report)
        bar.close()
        self._summarise(log_path, tally, total)
        assert best is not None
        self.model.load_state_dict(best[1])
        self.model.eval()
        return best[2]

    def step(
        self,
        batch: tuple[Any, ...],
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        shared: SharedParameters,
    ) -> tuple[dict[str, torch.Tensor], GradientStats]:
        """One optimisation step: forward, the strategy's backward, clipping, update."""
        ids, mask, rows, tgts = batch
        self.model.train()
        self.strategy.train()
        logits = self.model(ids, mask, rows)
        losses = {n: self.model.tasks[n].head_type.loss(logits[n], tgts[n]) for n in rows}
        optimizer.zero_grad(set_to_none=True)
        stats = self.strategy.backward(losses, shared)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        self.strategy.after_step()
        return losses, stats

    def _summarise(self, log_path: Path, tally: ConflictTally, steps: int) -> None:
        """Write summary.json (conflict rates) and the plots into the run directory."""
        run_dir = log_path.parent
        plots = write_plots(read_steps(log_path), tally.rates, run_dir, title=self.strategy.name)
        self.summary = {
            "strategy": self.strategy.name,
            "steps": steps,
            **tally.summary(),
            "final_weights": self.strategy.weights(),
            "plots": [p.name for p in plots],
        }
        (run_dir / "summary.json").write_text(json.dumps(self.summary, indent=2))

    def calibrate(self) -> dict[str, Any]:
        """Per-task decoding choices tuned on dev (sentiment thresholds), after training."""
        chosen = {}
        for s in self.specs:
            task = self.model.tasks[s.name]
            dev = self._split(s, "dev")
            tg = targets(dev, task.head_type, task.labels)
            rows = [i for i, t in enumerate(tg) if t is not None]
            logits = self.model.logits([dev.encoded[i] for i in rows], s.name)
            chosen[s.name] = task.head_type.calibrate(
                self.model.heads[s.name],
                logits,
                task.head_type.collate([tg[i] for i in rows]),
                task.labels,
            )
        return chosen
