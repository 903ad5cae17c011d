"""How task losses become gradients. The trainer knows only this interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from mtl_registry.errors import ConfigError
from mtl_registry.strategies.conflicts import GradientStats
from mtl_registry.strategies.gradients import TaskGradients, task_gradients

if TYPE_CHECKING:
    from mtl_registry.encoder.backbone import SharedEncoder


@dataclass(frozen=True)
class SharedParameters:
    """The parameters a strategy works on: the shared encoder's, and the task heads'.

    `last_layer` is the encoder's top block, `last_linear` the last weight layer inside it
    (its feed-forward output projection); `named` maps encoder parameter names to parameters
    so a strategy can pick a layer by name; `heads` are not shared: each is reached by its
    own task's loss only.
    """

    all: list[nn.Parameter]
    last_layer: list[nn.Parameter]
    named: dict[str, nn.Parameter] = field(default_factory=dict)
    heads: list[nn.Parameter] = field(default_factory=list)
    last_linear: list[nn.Parameter] = field(default_factory=list)

    @classmethod
    def of(cls, encoder: SharedEncoder, heads: nn.Module) -> SharedParameters:
        """The trainable parameters of a shared encoder and of the heads on top of it."""
        linears = [m for m in encoder.last_layer.modules() if isinstance(m, nn.Linear)]
        trainable = [p for p in encoder.parameters() if p.requires_grad]
        return cls(
            all=trainable,
            last_layer=[p for p in encoder.last_layer.parameters() if p.requires_grad],
            named={n: p for n, p in encoder.model.named_parameters() if p.requires_grad},
            heads=[p for p in heads.parameters() if p.requires_grad],
            last_linear=[p for p in linears[-1].parameters() if p.requires_grad] if linears else [],
        )

    def layer(self, prefix: str) -> list[nn.Parameter]:
        """The encoder parameters under a name prefix such as 'encoder.layer.3'."""
        found = [p for n, p in self.named.items() if n == prefix or n.startswith(prefix + ".")]
        if not found:
            modules = sorted({n.rsplit(".", 1)[0] for n in self.named})
            raise ConfigError(
                f"no encoder parameters under '{prefix}'; modules include: "
                + ", ".join(modules[:12])
            )
        return found


class NoOptions(BaseModel):
    """A strategy without options accepts none."""

    model_config = ConfigDict(extra="forbid")


class Strategy(nn.Module, ABC):
    """Turns per-task losses into `.grad` on every parameter, once per step.

    Every step, `backward` first measures each task's gradient on the `probe` parameters in
    one batched pass (that feeds the conflict log for every strategy, and the strategy itself
    when it needs per-task gradients), then lets the strategy fill the gradients. A strategy
    may own learnable parameters (they get their own optimiser group, `strategy_lr`) and
    declares its options as a pydantic model, validated when it is built.
    """

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, tasks: list[str], options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.tasks = list(tasks)
        try:
            self.options: Any = self.Options.model_validate(dict(options or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"strategy '{self.name}': {problems}") from None

    def probe(self, shared: SharedParameters) -> tuple[str, list[nn.Parameter]]:
        """Where per-task gradients are measured, and its name for the log.

        By default the encoder's last weight layer: per-task gradients there cost a backward
        through the heads and one projection per task (about 2% of a step on the packaged
        encoder, see benchmarks/results/strategies.md), where the whole top block costs about
        a quarter of a step and all shared parameters about 3.5 full backward passes.
        """
        return "last_linear", shared.last_linear

    def backward(
        self, losses: Mapping[str, torch.Tensor], shared: SharedParameters
    ) -> GradientStats:
        """Fill `.grad` of the model and of this strategy; return the step's gradient statistics."""
        scope, params = self.probe(shared)
        grads = task_gradients({t: losses[t] for t in self.tasks if t in losses}, params)
        self.fill_gradients(losses, shared, grads)
        return GradientStats.measure(scope, grads)

    @abstractmethod
    def fill_gradients(
        self, losses: Mapping[str, torch.Tensor], shared: SharedParameters, grads: TaskGradients
    ) -> None:
        """Set `.grad`; `grads` holds this step's per-task gradients on the probe parameters."""

    @abstractmethod
    def weights(self) -> dict[str, float]:
        """The weight each task's loss has right now."""

    def after_step(self) -> None:
        """Hook for strategies that renormalise or update state after the optimiser step."""
