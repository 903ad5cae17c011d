"""Retrain one head on the frozen active encoder: the encoder is never written or re-run.

Features come from `FeatureCache`; only the head's parameters train. Labels kept from
the active version are warm-started from its weights, new labels start fresh, and
removing a label must be asked for.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm.auto import tqdm

from mtl_registry.data.prepared import Split, check_labels, load_data_dirs, targets
from mtl_registry.data.records import data_fingerprint
from mtl_registry.encoder.backbone import SharedEncoder
from mtl_registry.errors import DataError, MtlRegError
from mtl_registry.heads.base import HeadConfig, HeadType
from mtl_registry.model import load_active_encoder, load_head, save_head
from mtl_registry.plugins import host
from mtl_registry.registry import DataRef, HeadDraft, HeadManifest, Registry
from mtl_registry.training.features import FeatureCache


class HeadTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = 0.01
    max_length: int = Field(128, ge=8)
    seed: int = 0


@dataclass
class RetrainResult:
    manifest: HeadManifest
    activated: bool
    comparison: dict[str, Any]
    added_labels: list[str]
    removed_labels: list[str]
    encoder_batches: int
    seconds: float


def _stack(features: list[torch.Tensor]) -> torch.Tensor:
    if features[0].dim() == 1:
        return torch.stack(features)
    return nn.utils.rnn.pad_sequence(features, batch_first=True)


def head_predictions(
    head_type: HeadType,
    module: nn.Module,
    features: list[torch.Tensor],
    split: Split,
    labels: list[str],
    batch_size: int = 256,
) -> list[dict[str, Any]]:
    """Decoded predictions of one head from cached features (no encoder involved)."""
    module.eval()
    out: list[dict[str, Any]] = []
    with torch.inference_mode():
        for start in range(0, len(features), batch_size):
            logits = module(_stack(features[start : start + batch_size]))
            out += head_type.decode(
                module, logits, split.encoded[start : start + batch_size], labels
            )
    return out


def _score(
    head_type: HeadType,
    module: nn.Module,
    features: list[torch.Tensor],
    split: Split,
    labels: list[str],
    metric_labels: list[str],
) -> dict[str, Any]:
    golds = split.values(head_type.field)
    rows = [i for i, g in enumerate(golds) if g is not None]
    preds = head_predictions(
        head_type, module, [features[i] for i in rows], _subset(split, rows), labels
    )
    metrics = head_type.metrics(
        [golds[i] for i in rows], preds, [split.encoded[i] for i in rows], metric_labels
    )
    return {"n": len(rows), "data": str(split.path), **metrics}


def _subset(split: Split, rows: list[int]) -> Split:
    return Split(split.path, split.data.select(rows), [split.encoded[i] for i in rows])


def merged_labels(old: list[str], new: list[str]) -> list[str]:
    """Old labels keep their positions; labels new to this data follow."""
    return [x for x in old if x in new] + [x for x in new if x not in old]


@contextmanager
def few_threads(n: int = 1) -> Iterator[None]:
    """Head-sized matmuls run fastest on one thread: more threads only add sync overhead."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class HeadOnlyTrainer:
    """Trains a head module on frozen features, keeping the best dev epoch."""

    def __init__(
        self, head_type: HeadType, module: nn.Module, labels: list[str], config: HeadTrainConfig
    ) -> None:
        self.head_type, self.module, self.labels, self.config = head_type, module, labels, config

    def fit(
        self,
        train_x: list[torch.Tensor],
        train_t: list[torch.Tensor],
        dev: Split,
        dev_x: list[torch.Tensor],
        progress: bool,
    ) -> float:
        """Returns the best dev score; the module holds that epoch's weights afterwards."""
        c, metric = self.config, self.head_type.primary_metric
        rng = random.Random(c.seed)
        optimizer = torch.optim.AdamW(
            self.module.parameters(), lr=c.lr, weight_decay=c.weight_decay
        )
        best = (-float("inf"), {k: v.clone() for k, v in self.module.state_dict().items()})
        order = list(range(len(train_x)))
        with few_threads():
            for _ in tqdm(range(c.epochs), desc="retrain-head", unit="epoch", disable=not progress):
                self.module.train()
                rng.shuffle(order)
                for start in range(0, len(order), c.batch_size):
                    idx = order[start : start + c.batch_size]
                    logits = self.module(_stack([train_x[i] for i in idx]))
                    loss = self.head_type.loss(
                        logits, self.head_type.collate([train_t[i] for i in idx])
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                score = _score(self.head_type, self.module, dev_x, dev, self.labels, self.labels)[
                    metric
                ]
                if score > best[0]:
                    best = (score, {k: v.clone() for k, v in self.module.state_dict().items()})
        self.module.load_state_dict(best[1])
        self.module.eval()
        return best[0]


def _features_with_labels(
    cache: FeatureCache, split: Split, head_type: HeadType, config: HeadConfig
) -> tuple[list[torch.Tensor], Split]:
    rows = [i for i, v in enumerate(split.values(head_type.field)) if v is not None]
    feats = cache.features(split, head_type.level, config.pooling)
    return [feats[i] for i in rows], _subset(split, rows)


def retrain_head(
    registry: Registry,
    task: str,
    data_dir: Path,
    config: HeadTrainConfig | None = None,
    *,
    activate: bool = False,
    allow_label_removal: bool = False,
    progress: bool = True,
    encoder: SharedEncoder | None = None,
    new_head_type: str | None = None,
) -> RetrainResult:
    """Train a new version of `task`'s head on the frozen active encoder and publish it.

    A task with no active head needs `new_head_type` (add-task --mode frozen).
    """
    started = time.time()
    config = config or HeadTrainConfig()
    torch.manual_seed(config.seed)  # new label rows start from the same weights every run
    version = registry.active().heads.get(task)
    if version is None and new_head_type is None:
        raise MtlRegError(f"task '{task}' has no active head; add it with `mtlreg add-task`")
    if version is not None and new_head_type is not None:
        raise MtlRegError(f"task '{task}' already exists; use `mtlreg retrain-head {task}`")
    active = registry.head_manifest(task, version) if version is not None else None
    encoder = encoder or load_active_encoder(registry, config.max_length)
    encoder.requires_grad_(False)
    plugins = host()
    head_type, plugin = (
        plugins.head_type(active.head_type, active.plugin)
        if active
        else plugins.head_type(str(new_head_type))
    )
    head_config = HeadConfig(**active.head_config) if active else HeadConfig()
    old_labels = active.labels if active else []
    data = load_data_dirs(encoder, {task: (head_type, data_dir)})[Path(data_dir).resolve()]
    train_split = data.splits["train"]
    values = [v for v in train_split.values(head_type.field) if v is not None]
    if not values:
        raise DataError(f"no record carries '{head_type.field}' labels", path=train_split.path)
    found = head_type.label_set(values)
    labels = merged_labels(old_labels, found)
    added = [x for x in labels if x not in old_labels] if active else []
    removed = [x for x in old_labels if x not in found]
    if active and removed and not allow_label_removal:
        raise MtlRegError(
            f"the new data for '{task}' has no examples of {removed}, which v{active.version} "
            f"predicts; pass --allow-label-removal to drop them"
        )
    labels = [x for x in labels if x not in removed]
    for split in data.splits.values():
        check_labels(split, head_type, labels)

    cache = FeatureCache(registry.root / "cache" / "features", encoder)
    train_x, train_s = _features_with_labels(cache, train_split, head_type, head_config)
    dev_x, dev_s = _features_with_labels(cache, data.splits["dev"], head_type, head_config)
    held_name = "test" if "test" in data.splits else "dev"
    held_x, held_s = _features_with_labels(cache, data.splits[held_name], head_type, head_config)

    module = head_type.build(encoder.hidden_size, labels, head_config)
    old_module = None
    if active:
        _, old_module = load_head(registry, active, encoder, head_type, plugin)
        head_type.warm_start(old_module, module, active.labels, labels)
    trainer = HeadOnlyTrainer(head_type, module, labels, config)
    trainer.fit(train_x, [t for t in targets(train_s, head_type, labels)], dev_s, dev_x, progress)
    dev_logits = _stack_logits(module, dev_x)
    calibration = head_type.calibrate(
        module, dev_logits, head_type.collate(targets(dev_s, head_type, labels)), labels
    )

    comparison = {
        "split": held_name,
        "active": {
            "version": active.version,
            **_score(head_type, old_module, held_x, held_s, active.labels, labels),
        }
        if active and old_module is not None
        else None,
        "new": _score(head_type, module, held_x, held_s, labels, labels),
    }
    metrics = {
        "dev": _score(head_type, module, dev_x, dev_s, labels, labels),
        held_name: comparison["new"],
    }
    draft = HeadDraft(
        task=task,
        head_type=head_type.name,
        plugin=plugin,
        labels=labels,
        head_config=head_config.model_dump(),
        encoder_fingerprint=encoder.fingerprint,
        metrics=metrics,
        data=DataRef(path=str(Path(data_dir).resolve()), fingerprint=data_fingerprint(data_dir)),
        training={
            "mode": "frozen-encoder",
            **config.model_dump(),
            "calibration": calibration,
            "added_labels": added,
            "removed_labels": removed,
        },
        parent_version=active.version if active else None,
    )
    with tempfile.TemporaryDirectory(dir=registry.root) as tmp:
        save_head(module, Path(tmp))
        _, [manifest] = registry.publish(
            [(draft, Path(tmp))],
            activate=activate,
            reason=f"{'retrain-head' if active else 'add-task'} {task}",
        )
    return RetrainResult(
        manifest,
        activate,
        comparison,
        added,
        removed,
        cache.encoder_batches,
        round(time.time() - started, 2),
    )


def _stack_logits(module: nn.Module, features: list[torch.Tensor]) -> torch.Tensor:
    module.eval()
    with torch.inference_mode():
        return module(_stack(features))
