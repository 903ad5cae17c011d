"""Length-aware batching: every text once, in batches whose padding plus call cost is least."""

from __future__ import annotations

import itertools
import random

from mtl_registry.encoder.backbone import Encoded
from mtl_registry.model import length_batches


def _texts(lengths: list[int]) -> list[Encoded]:
    return [Encoded(f"t{i}", [1] * n, [(0, 0)] * n, [None] * n) for i, n in enumerate(lengths)]


def _cost(batches: list[list[int]], lengths: list[int], call_cost: int) -> int:
    return sum(len(b) * max(lengths[i] for i in b) + call_cost for b in batches)


def test_every_text_once_sorted_by_length_and_no_batch_over_the_cap():
    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(200)]
    batches = list(length_batches(_texts(lengths), batch_size=16))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(200))
    assert [lengths[i] for i in flat] == sorted(lengths)
    assert all(1 <= len(b) <= 16 for b in batches)


def test_equal_lengths_fill_batches_to_the_cap():
    batches = list(length_batches(_texts([17] * 32), batch_size=64))
    assert [len(b) for b in batches] == [32]
    sizes = [len(b) for b in length_batches(_texts([17] * 40), batch_size=16)]
    assert len(sizes) == 3 and max(sizes) == 16  # as few calls as the cap allows


def test_short_and_long_texts_go_to_separate_calls():
    lengths = [5] * 16 + [60] * 16
    batches = list(length_batches(_texts(lengths), batch_size=64, call_cost=64))
    assert [sorted({lengths[i] for i in b}) for b in batches] == [[5], [60]]


def test_the_cut_is_the_cheapest_of_all_cuts():
    rng = random.Random(1)
    for _ in range(20):
        lengths = sorted(rng.randint(2, 40) for _ in range(9))
        cap, call_cost = rng.choice([3, 4, 9]), rng.choice([0, 8, 64])
        got = _cost(list(length_batches(_texts(lengths), cap, call_cost)), lengths, call_cost)
        cheapest = min(
            _cost(batches, lengths, call_cost)
            for cuts in itertools.product([False, True], repeat=len(lengths) - 1)
            for batches in [_split(list(range(len(lengths))), cuts)]
            if all(len(b) <= cap for b in batches)
        )
        assert got == cheapest


def _split(order: list[int], cuts: tuple[bool, ...]) -> list[list[int]]:
    batches = [[order[0]]]
    for i, cut in zip(order[1:], cuts):
        if cut:
            batches.append([i])
        else:
            batches[-1].append(i)
    return batches
