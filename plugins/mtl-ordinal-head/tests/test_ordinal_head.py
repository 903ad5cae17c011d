"""The ordinal head on its own: parsing, the rank-consistent module, loss, decoding, metrics,
and how the host sees the plugin."""

from __future__ import annotations

import math
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

import mtl_ordinal_head.plugin as plugin_module
import pytest
import torch
from mtl_ordinal_head import OrdinalHead, OrdinalModule, coral_loss, level_probabilities
from mtl_ordinal_head.metrics import ordinal_metrics, spearman
from torch.nn import functional as F

from mtl_registry.errors import DataError
from mtl_registry.heads.base import HeadConfig
from mtl_registry.plugin_specs import validate_head_type
from mtl_registry.plugins import PluginHost

LEVELS = ["1", "2", "3", "4", "5"]


class AnyScale(OrdinalHead):
    name = "any_scale"
    field = "stars"
    scale = None


# ---- the plugin as the host sees it ----------------------------------------------------------
def test_plugin_declares_api_1_and_registers_the_ordinal_head_type() -> None:
    h = PluginHost()
    h.add_plugin(plugin_module, "ordinal", "mtl-ordinal-head", "0.1.0")
    info = h.plugins["ordinal"]
    assert (info.status, info.api_version, info.head_types) == ("loaded", 1, ["ordinal"])
    head_type, ref = h.head_type("ordinal")
    assert isinstance(head_type, OrdinalHead) and ref.name == "mtl-ordinal-head"
    spec = validate_head_type(head_type)
    assert (spec.name, spec.level, spec.field, spec.primary_metric) == (
        "ordinal",
        "sentence",
        "csat",
        "spearman",
    )


def test_installed_distribution_exposes_its_entry_point() -> None:
    [ep] = [e for e in entry_points(group="mtl_registry") if e.name == "ordinal"]
    assert ep.value == "mtl_ordinal_head.plugin"
    assert ep.dist is not None and ep.dist.name == "mtl-ordinal-head"
    assert ep.load() is plugin_module


# ---- records ---------------------------------------------------------------------------------
def test_parse_keeps_integer_ratings_on_the_scale() -> None:
    assert OrdinalHead().parse(4, "love it") == 4


@pytest.mark.parametrize("value", [True, "4", 4.0, 0, 6, [3]])
def test_parse_rejects_what_is_not_a_rating(value: Any) -> None:
    with pytest.raises(ValueError, match="integer rating|from 1 to 5"):
        OrdinalHead().parse(value, "text")


def test_label_set_is_the_whole_scale_in_numeric_order() -> None:
    assert OrdinalHead().label_set([3, 4]) == LEVELS  # unseen levels keep their threshold
    assert AnyScale().label_set([10, 2, 7]) == [str(v) for v in range(2, 11)]  # not "10" < "2"
    with pytest.raises(DataError, match="at least two levels"):
        AnyScale().label_set([3, 3])


def test_unknown_level_is_reported_by_the_hosts_label_check() -> None:
    labels = AnyScale().label_set([1, 3])
    AnyScale().check_labels(2, labels)
    with pytest.raises(ValueError, match=r"unknown label\(s\) \['4'\]"):
        AnyScale().check_labels(4, labels)


# ---- module, loss, decoding ------------------------------------------------------------------
def test_probabilities_are_rank_consistent_for_any_weights() -> None:
    torch.manual_seed(0)
    module = OrdinalModule(16, 5, HeadConfig(hidden=8))
    with torch.no_grad():
        module.gaps.copy_(torch.tensor([-6.0, 3.0, -1.0]))  # any values: steps stay positive
        module.first.fill_(2.5)
    logits = module(torch.randn(64, 16) * 5)
    assert logits.shape == (64, 4)
    thresholds = module.thresholds()
    assert torch.all(thresholds[1:] > thresholds[:-1])
    above = torch.sigmoid(logits)
    assert torch.all(above[:, 1:] <= above[:, :-1])
    probs = level_probabilities(logits)
    assert probs.shape == (64, 5) and torch.all(probs >= 0)
    assert torch.allclose(probs.sum(1), torch.ones(64))


def test_loss_is_the_mean_binary_cross_entropy_of_the_k_minus_1_questions() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0, -3.0], [1.0, 1.0, 1.0, 1.0]])
    targets = torch.tensor([2, 4])  # levels 3 and 5: above 1 and 2 / above everything
    answers = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    expected = -(answers * F.logsigmoid(logits) + (1 - answers) * F.logsigmoid(-logits)).mean()
    assert torch.allclose(coral_loss(logits, targets), expected)


def test_decode_gives_the_median_level_the_mean_rating_and_the_distribution() -> None:
    logits = torch.tensor([[3.0, 1.0, -1.0, -3.0]])
    [pred] = OrdinalHead().decode(OrdinalModule(4, 5, HeadConfig()), logits, [], LEVELS)
    s = [1 / (1 + math.exp(-x)) for x in (3.0, 1.0, -1.0, -3.0)]
    assert pred["score"] == 3 and pred["label"] == "3"
    assert pred["expected"] == pytest.approx(1 + sum(s), abs=1e-4) == pytest.approx(3.0)
    assert pred["distribution"] == pytest.approx(
        {"1": 1 - s[0], "2": s[0] - s[1], "3": s[1] - s[2], "4": s[2] - s[3], "5": s[3]}, abs=1e-4
    )
    assert pred["probability"] == pred["distribution"]["3"]
    assert OrdinalHead().is_correct(3, pred, None) and not OrdinalHead().is_correct(4, pred, None)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny tensors: extra threads only add synchronisation (seconds on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_module_learns_an_ordered_signal(one_thread: None) -> None:
    torch.manual_seed(0)
    features = torch.randn(512, 8)
    levels = torch.bucketize(features[:, 0].contiguous(), torch.tensor([-0.8, -0.25, 0.25, 0.8]))
    module = OrdinalModule(8, 5, HeadConfig(hidden=16, dropout=0.0))
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(120):
        optimizer.zero_grad()
        coral_loss(module(features), levels).backward()
        optimizer.step()
    preds = OrdinalHead().decode(module, module(features).detach(), [], LEVELS)
    metrics = OrdinalHead().metrics((levels + 1).tolist(), preds, [], LEVELS)
    assert metrics["mae"] < 0.2 and metrics["spearman"] > 0.95


# ---- metrics ---------------------------------------------------------------------------------
def test_metrics_on_known_values() -> None:
    gold, score, expected = [1, 2, 3, 4, 5], [1, 3, 3, 2, 5], [1.2, 2.8, 3.1, 2.5, 4.9]
    m = ordinal_metrics(gold, score, expected, [1, 2, 3, 4, 5])
    assert m["mae"] == pytest.approx(0.6)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["within_one_accuracy"] == pytest.approx(0.8)
    assert m["spearman"] == pytest.approx(0.7)  # ranks 1 3 4 2 5: 1 - 6·6 / (5·24)
    assert m["confusion_matrix"]["matrix"][3] == [0, 1, 0, 0, 0]  # the 4 predicted as 2


def test_spearman_of_a_constant_side_is_zero_not_nan() -> None:
    assert spearman([1, 2, 3], [2.0, 2.0, 2.0]) == 0.0
    assert spearman([4], [4.0]) == 0.0
    assert spearman([1, 2, 3], [0.1, 0.3, 0.2]) == pytest.approx(0.5)
