"""Gradient strategies: GradNorm, PCGrad, batched per-task gradients and conflict logging."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import mtl_registry.strategies.pcgrad as pcgrad_module
from mtl_registry.encoder.backbone import SharedEncoder
from mtl_registry.errors import ConfigError
from mtl_registry.registry import Registry
from mtl_registry.strategies import (
    ConflictTally,
    EqualWeights,
    GradNorm,
    PCGrad,
    SharedParameters,
    UncertaintyWeights,
    task_gradients,
)
from mtl_registry.training import TaskSpec, TrainConfig
from mtl_registry.training.trainer import JointTrainer

TASKS = ("intent", "sentiment", "ner")


def _linear_losses(
    grads: dict[str, list[float]], values: dict[str, float] | None = None
) -> tuple[nn.Parameter, dict[str, torch.Tensor]]:
    """Losses L_t = v_t + g_t · w at w = 0: value v_t and gradient exactly g_t."""
    w = nn.Parameter(torch.zeros(len(next(iter(grads.values()))), dtype=torch.float64))
    values = values or dict.fromkeys(grads, 1.0)
    return w, {t: values[t] + torch.tensor(g, dtype=torch.float64) @ w for t, g in grads.items()}


def _shared(w: nn.Parameter, heads: list[nn.Parameter] | None = None) -> SharedParameters:
    return SharedParameters(all=[w], last_layer=[w], heads=heads or [], last_linear=[w])


# --- batched per-task gradients -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tiny_bert", "tiny_distilbert"])
def test_batched_task_gradients_equal_separate_backward_passes(kind, request):
    encoder = SharedEncoder.load(request.getfixturevalue(kind))
    encoder.train()  # dropout on: both paths must see the same masks, i.e. the same graph
    assert any(isinstance(m, nn.Dropout) and m.p > 0 for m in encoder.modules())
    torch.manual_seed(0)
    ids, mask = encoder.collate(encoder.tokenize(["vol 12 of berserk??", "where is my order 88"]))
    hidden = encoder(ids, mask)
    intent, tags = nn.Linear(encoder.hidden_size, 3), nn.Linear(encoder.hidden_size, 5)
    losses = {
        "intent": nn.functional.cross_entropy(intent(hidden[:, 0]), torch.tensor([0, 2])),
        "sentiment": hidden[:, 0].sigmoid().mean(),
        "ner": nn.functional.cross_entropy(tags(hidden).flatten(0, 1), ids.flatten() % 5),
    }
    params = [p for p in encoder.parameters() if p.requires_grad]

    batched = task_gradients(losses, params)
    for t, task in enumerate(losses):
        separate = torch.autograd.grad(losses[task], params, retain_graph=True, allow_unused=True)
        for p, b, s in zip(params, batched.grads, separate):
            expected = torch.zeros_like(p) if s is None else s
            # float32 sums in another order: seen up to 3e-7 apart over 20 seeds
            torch.testing.assert_close(b[t], expected, rtol=1e-5, atol=1e-6)
    # rows really differ per task (a broadcast of one gradient would pass the loop above)
    assert not torch.allclose(batched.grads[0][0], batched.grads[0][1])
    assert params[0].grad is None  # measuring fills no .grad


def test_gram_matrix_is_over_the_whole_flattened_gradient():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3))
    la = torch.tensor([1.0, 2.0]) @ a + torch.tensor([0.0, 1.0, 0.0]) @ b
    lb = torch.tensor([3.0, -1.0]) @ a + torch.tensor([2.0, 0.0, 5.0]) @ b
    grads = task_gradients({"a": la, "b": lb}, [a, b])
    flat = torch.tensor([[1.0, 2.0, 0.0, 1.0, 0.0], [3.0, -1.0, 2.0, 0.0, 5.0]])
    torch.testing.assert_close(grads.gram, (flat @ flat.T).double())


# --- PCGrad -----------------------------------------------------------------------------------


def test_pcgrad_doctest_runs():
    assert doctest.testmod(pcgrad_module).failed == 0


def test_pcgrad_removes_conflicts_between_two_tasks_and_follows_the_paper():
    g1, g2 = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([-2.0, 1.0, 0.0])
    w, losses = _linear_losses({"a": g1.tolist(), "b": g2.tolist()})
    PCGrad(["a", "b"]).backward(losses, _shared(w))
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    torch.testing.assert_close(w.grad, (p1 + p2).double())
    for g in (g1, g2):
        assert float(w.grad @ g.double()) >= -1e-12


def test_pcgrad_combined_gradient_has_no_negative_inner_product_with_any_task():
    original = {"a": [1.0, 0.2, 0.0, 0.3], "b": [-1.0, 0.5, 0.1, 0.0], "c": [0.1, -1.0, 1.0, 0.2]}
    for seed in range(5):  # every task order
        torch.manual_seed(seed)
        w, losses = _linear_losses(original)
        assert any(
            torch.tensor(original[x]) @ torch.tensor(original[y]) < 0
            for x in original
            for y in original
        )
        PCGrad(list(original)).backward(losses, _shared(w))
        for g in original.values():
            assert float(w.grad @ torch.tensor(g, dtype=torch.float64)) >= -1e-12


def test_pcgrad_equals_the_plain_sum_when_nothing_conflicts():
    grads = {"a": [1.0, 0.0, 2.0], "b": [0.5, 1.0, 0.0], "c": [0.0, 0.3, 0.1]}
    w, losses = _linear_losses(grads)
    strategy = PCGrad(list(grads))
    strategy.backward(losses, _shared(w))
    torch.testing.assert_close(w.grad, torch.tensor(list(grads.values())).double().sum(0))
    assert strategy.weights() == {"a": 1.0, "b": 1.0, "c": 1.0}


def test_pcgrad_updates_shared_once_and_heads_with_their_own_task_only():
    w = nn.Parameter(torch.zeros(2))
    head_a, head_b = nn.Parameter(torch.tensor(2.0)), nn.Parameter(torch.tensor(3.0))
    losses = {
        "a": head_a * (torch.tensor([1.0, 0.0]) @ w + 1),
        "b": head_b * (torch.tensor([-1.0, 1.0]) @ w + 1),
    }
    PCGrad(["a", "b"]).backward(losses, _shared(w, [head_a, head_b]))
    assert head_a.grad.item() == 1.0 and head_b.grad.item() == 1.0  # dL_t/dhead_t at w = 0
    g1, g2 = torch.tensor([2.0, 0.0]), torch.tensor([-3.0, 3.0])
    expected = (g1 - (g1 @ g2) / (g2 @ g2) * g2) + (g2 - (g2 @ g1) / (g1 @ g1) * g1)
    torch.testing.assert_close(w.grad, expected)  # a second pass would have added g1 + g2


def test_pcgrad_task_order_is_random_but_seeded():
    torch.manual_seed(1)
    first = PCGrad(["a", "b"]).generator.initial_seed()
    torch.manual_seed(1)
    assert PCGrad(["a", "b"]).generator.initial_seed() == first
    gram = torch.tensor([[1.0, -0.5, 0.2], [-0.5, 1.0, -0.7], [0.2, -0.7, 1.0]]).double()
    generator = torch.Generator().manual_seed(0)
    coefficients = pcgrad_module.pcgrad_coefficients
    results = {tuple(coefficients(gram, generator).tolist()) for _ in range(20)}
    assert len(results) > 1  # the order changes from step to step and changes the result


# --- GradNorm ---------------------------------------------------------------------------------


def test_gradnorm_weight_gradient_is_the_paper_l1_loss_on_norms():
    strategy = GradNorm(["a", "b"], {"alpha": 1.5})
    w, losses = _linear_losses({"a": [3.0, 0.0], "b": [0.0, 1.0]}, {"a": 2.0, "b": 1.0})
    strategy.backward(losses, _shared(w))  # step 0: records L(0), r = 1 for both
    # G = (3, 1), target = mean(G) = 2 for both: dL_grad/dw_t = sign(G_t - 2) · ‖∇L_t‖
    torch.testing.assert_close(strategy.task_weights.grad, torch.tensor([3.0, -1.0]))

    w, losses = _linear_losses({"a": [1.0, 0.0], "b": [0.0, 3.0]}, {"a": 0.2, "b": 0.9})
    strategy.backward(losses, _shared(w))
    # a fell to 10% of L(0), b to 90%: r = (0.2, 1.8); G = (1, 3), mean 2; targets
    # 2·0.2**1.5 = 0.18 < G_a and 2·1.8**1.5 = 4.8 > G_b: a's weight goes down, b's up
    torch.testing.assert_close(strategy.task_weights.grad, torch.tensor([1.0, -3.0]))


def _two_task_problem(seed: int = 0) -> tuple[nn.Module, nn.ModuleDict, torch.Tensor, dict]:
    """A shared layer and two regression heads: 'easy' is learnable, 'hard' is pure noise."""
    torch.manual_seed(seed)
    shared = nn.Linear(8, 8)
    heads = nn.ModuleDict({"easy": nn.Linear(8, 1), "hard": nn.Linear(8, 1)})
    x = torch.randn(64, 8)
    targets = {"easy": x @ torch.randn(8, 1), "hard": torch.randn(64, 1)}
    return shared, heads, x, targets


def _losses(
    shared: nn.Module, heads: nn.ModuleDict, x: torch.Tensor, targets: dict
) -> dict[str, torch.Tensor]:
    h = torch.relu(shared(x))
    return {t: nn.functional.mse_loss(heads[t](h), targets[t]) for t in heads}


def test_gradnorm_gives_the_slower_task_more_weight_and_keeps_weights_valid():
    shared, heads, x, targets = _two_task_problem()
    strategy = GradNorm(["easy", "hard"])
    params = SharedParameters(
        all=list(shared.parameters()),
        last_layer=list(shared.parameters()),
        heads=list(heads.parameters()),
    )
    net = torch.optim.SGD([*shared.parameters(), *heads.parameters()], lr=0.05)
    weights = torch.optim.SGD(strategy.parameters(), lr=0.05)
    first, last = None, None
    for _ in range(60):
        net.zero_grad()
        weights.zero_grad()
        losses = _losses(shared, heads, x, targets)
        first = first or {t: v.item() for t, v in losses.items()}
        last = {t: v.item() for t, v in losses.items()}
        strategy.backward(losses, params)
        net.step()
        weights.step()
        strategy.after_step()
        w = strategy.weights()
        assert min(w.values()) > 0
        assert sum(w.values()) == pytest.approx(2.0)
    assert last["hard"] / first["hard"] > last["easy"] / first["easy"]  # hard fell slower
    assert strategy.weights()["hard"] > 1.0 > strategy.weights()["easy"]


def test_gradnorm_weights_stay_positive_under_a_large_step():
    strategy = GradNorm(["a", "b"])
    with torch.no_grad():
        strategy.task_weights.copy_(torch.tensor([-5.0, 3.0]))
    strategy.after_step()
    w = strategy.weights()
    assert w["a"] > 0 and w["b"] > 0 and sum(w.values()) == pytest.approx(2.0)


def test_gradnorm_network_gets_no_gradient_from_the_gradnorm_loss():
    shared, heads, x, targets = _two_task_problem()
    strategy = GradNorm(["easy", "hard"])
    with torch.no_grad():
        strategy.task_weights.copy_(torch.tensor([0.5, 1.5]))
    params = SharedParameters(
        all=list(shared.parameters()),
        last_layer=list(shared.parameters()),
        heads=list(heads.parameters()),
    )
    strategy.backward(_losses(shared, heads, x, targets), params)
    got = [p.grad.clone() for p in [*shared.parameters(), *heads.parameters()]]
    assert strategy.task_weights.grad is not None and strategy.task_weights.grad.abs().sum() > 0

    for p in [*shared.parameters(), *heads.parameters()]:
        p.grad = None
    losses = _losses(shared, heads, x, targets)
    (0.5 * losses["easy"] + 1.5 * losses["hard"]).backward()
    for g, p in zip(got, [*shared.parameters(), *heads.parameters()]):
        torch.testing.assert_close(g, p.grad, rtol=0, atol=0)


def test_gradnorm_measures_on_a_chosen_layer():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    shared = SharedParameters(all=[a, b], last_layer=[b], named={"layer.0.w": a, "layer.1.w": b})
    losses = {
        "x": torch.tensor([1.0, 0.0]) @ a + torch.tensor([0.0, 4.0]) @ b,
        "y": torch.tensor([0.0, 2.0]) @ a + torch.tensor([1.0, 0.0]) @ b,
    }
    stats = GradNorm(["x", "y"], {"layer": "layer.0"}).backward(losses, shared)
    assert stats.scope == "layer.0" and stats.norms == {"x": 1.0, "y": 2.0}
    with pytest.raises(ConfigError, match="layer.1"):
        GradNorm(["x", "y"], {"layer": "layer.9"}).probe(shared)


@pytest.mark.parametrize(
    "options, message", [({"alpha": -1}, "alpha"), ({"beta": 2}, "beta"), ({"layer": ""}, "layer")]
)
def test_strategy_options_are_validated(options, message):
    with pytest.raises(ConfigError, match=message):
        GradNorm(["a", "b"], options)
    with pytest.raises(ConfigError, match="beta"):
        EqualWeights(["a"], {"beta": 1})


# --- conflict instrumentation -----------------------------------------------------------------


def test_every_strategy_reports_cosines_norms_and_conflicts():
    grads = {"a": [1.0, 0.0], "b": [-1.0, 1.0], "c": [0.0, 2.0]}
    for cls in (EqualWeights, UncertaintyWeights, GradNorm, PCGrad):
        w, losses = _linear_losses(grads)
        stats = cls(list(grads)).backward(losses, _shared(w))
        assert stats.norms == pytest.approx({"a": 1.0, "b": 2**0.5, "c": 2.0})
        assert stats.cosines == pytest.approx({"a/b": -(0.5**0.5), "a/c": 0.0, "b/c": 0.5**0.5})
        assert stats.conflicts == {"a/b": True, "a/c": False, "b/c": False}
        tally = ConflictTally()
        tally.add(stats)
        tally.add(stats)
        assert tally.rates == {"a/b": 1.0, "a/c": 0.0, "b/c": 0.0}


def test_joint_training_logs_conflicts_and_draws_plots_for_every_strategy(
    tmp_path, tiny_bert, manga_data
):
    # the training loop alone (publishing is covered by test_training.py), to stay fast
    registry = Registry(tmp_path / "reg")
    registry.init(tiny_bert)
    specs = [TaskSpec(name=t, head_type=t, data=manga_data) for t in TASKS]
    pairs = {"intent/sentiment", "intent/ner", "sentiment/ner"}
    for strategy in ("equal", "uncertainty", "gradnorm", "pcgrad"):
        config = TrainConfig(epochs=1, batch_size=8, max_steps=3, strategy=strategy)
        run_dir = tmp_path / strategy
        run_dir.mkdir()
        JointTrainer(registry, specs, config).run(run_dir / "steps.jsonl", progress=False)
        steps = [json.loads(x) for x in (run_dir / "steps.jsonl").read_text().splitlines()]
        steps = [s for s in steps if "loss" in s]
        assert len(steps) == 3
        for s in steps:
            assert set(s["cosine"]) == set(s["conflict"]) == pairs
            assert all(-1 <= c <= 1 for c in s["cosine"].values())
            assert set(s["grad_norm"]) == set(s["weight"]) == set(TASKS)
            assert all(n > 0 for n in s["grad_norm"].values())
        assert steps[0]["grad_scope"] == (
            "all_shared"
            if strategy == "pcgrad"
            else "last_layer"
            if strategy == "gradnorm"
            else "last_linear"
        )
        summary = json.loads((run_dir / "summary.json").read_text())
        assert set(summary["conflict_rate"]) == pairs
        assert summary["conflict_rate"]["intent/ner"] == pytest.approx(
            sum(s["conflict"]["intent/ner"] for s in steps) / 3, abs=1e-4
        )
        for name in ("weights.png", "losses.png", "conflicts.png"):
            png = Path(run_dir / name).read_bytes()
            assert png.startswith(b"\x89PNG") and len(png) > 5000
