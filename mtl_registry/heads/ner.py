"""BIO token tagging. Loss on each word's first sub-token only; decoding back to character spans."""

from __future__ import annotations

from typing import Any

import torch
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2
from torch import nn
from torch.nn import functional as F

from mtl_registry.encoder.backbone import Encoded, Word
from mtl_registry.heads.base import HeadType

IGNORE = -100


def _is_truncated(encoded: Encoded) -> bool:
    words = encoded.words
    return not words or words[-1].end < len(encoded.text.rstrip())


def word_tags(encoded: Encoded, entities: list[dict[str, Any]]) -> list[str]:
    """BIO tag per tokenizer word. Spans must start and end on word boundaries."""
    words = encoded.words
    tags = ["O"] * len(words)
    for ent in entities:
        start, end, label = ent["start"], ent["end"], ent["label"]
        covered = [i for i, w in enumerate(words) if w.start < end and w.end > start]
        if words and end > words[-1].end and _is_truncated(encoded):
            continue  # cut off by max_length: not taught, not scored
        if not covered:
            raise ValueError(f"entity {start}-{end} covers no token")
        first, last = words[covered[0]], words[covered[-1]]
        if first.start != start or last.end != end:
            raise ValueError(
                f"entity {start}-{end} {encoded.text[start:end]!r} does not fall on word "
                f"boundaries: the tokenizer's words there are "
                f"{encoded.text[first.start : last.end]!r} ({first.start}-{last.end})"
            )
        tags[covered[0]] = f"B-{label}"
        for i in covered[1:]:
            tags[i] = f"I-{label}"
    return tags


def spans_from_tags(encoded: Encoded, tags: list[str]) -> list[dict[str, Any]]:
    """Character spans from word tags. A stray I-X starts a new entity, as seqeval reads it."""
    spans: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for word, tag in zip(encoded.words, tags):
        prefix, _, label = tag.partition("-")
        if tag == "O" or (prefix == "B") or current is None or current["label"] != label:
            current = None
        if tag == "O":
            continue
        if current is None:
            current = {"start": word.start, "end": word.end, "label": label}
            spans.append(current)
        else:
            current["end"] = word.end
    return [{**s, "text": encoded.text[s["start"] : s["end"]]} for s in spans]


class NerHead(HeadType):
    name = "ner"
    level = "token"
    field = "entities"
    primary_metric = "f1"

    def parse(self, value: Any, text: str) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise ValueError(f"must be a list of {{start, end, label}}, got {value!r}")
        spans = []
        for i, ent in enumerate(value):
            if not isinstance(ent, dict) or set(ent) - {"start", "end", "label", "text"}:
                raise ValueError(f"[{i}] must be an object with start, end, label: {ent!r}")
            start, end, label = ent.get("start"), ent.get("end"), ent.get("label")
            if any(not isinstance(x, int) or isinstance(x, bool) for x in (start, end)):
                raise ValueError(f"[{i}] start and end must be integers: {ent!r}")
            if not 0 <= start < end <= len(text):
                raise ValueError(
                    f"[{i}] offsets {start}-{end} outside the text (length {len(text)})"
                )
            if not isinstance(label, str) or not label or "-" in label[:2]:
                raise ValueError(f"[{i}] label must be an entity type like 'TITLE': {label!r}")
            spans.append({"start": start, "end": end, "label": label})
        spans.sort(key=lambda s: s["start"])
        for a, b in zip(spans, spans[1:]):
            if b["start"] < a["end"]:
                raise ValueError(
                    f"entities {a['start']}-{a['end']} and {b['start']}-{b['end']} overlap"
                )
        return spans

    def label_set(self, values: list[Any]) -> list[str]:
        types = sorted({e["label"] for v in values for e in v})
        return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]

    def labels_used(self, value: list[dict[str, Any]]) -> list[str]:
        return [f"B-{e['label']}" for e in value]

    def target(
        self, value: list[dict[str, Any]], labels: list[str], encoded: Encoded
    ) -> torch.Tensor:
        t = torch.full((len(encoded.input_ids),), IGNORE, dtype=torch.long)
        for word, tag in zip(encoded.words, word_tags(encoded, value)):
            t[word.first_token] = labels.index(tag)
        return t

    def collate(self, targets: list[torch.Tensor]) -> torch.Tensor:
        return nn.utils.rnn.pad_sequence(targets, batch_first=True, padding_value=IGNORE)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits[:, : targets.shape[1]]
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE
        )

    def _tags(self, logits_row: torch.Tensor, words: list[Word], labels: list[str]) -> list[str]:
        best = logits_row.argmax(-1).tolist()
        return [labels[best[w.first_token]] for w in words]

    def decode(
        self, module: nn.Module, logits: torch.Tensor, encoded: list[Encoded], labels: list[str]
    ) -> list[dict[str, Any]]:
        return [
            {"entities": spans_from_tags(e, self._tags(row, e.words, labels))}
            for row, e in zip(logits, encoded)
        ]

    def metrics(
        self,
        golds: list[list[dict[str, Any]]],
        preds: list[dict[str, Any]],
        encoded: list[Encoded],
        labels: list[str],
    ) -> dict[str, Any]:
        y_true = [word_tags(e, g) for g, e in zip(golds, encoded)]
        y_pred = [word_tags(e, p["entities"]) for p, e in zip(preds, encoded)]
        kw: dict[str, Any] = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
        report = classification_report(y_true, y_pred, output_dict=True, **kw)
        types = sorted({t[2:] for t in labels if t != "O"})
        return {
            "f1": float(f1_score(y_true, y_pred, **kw)),
            "precision": float(precision_score(y_true, y_pred, **kw)),
            "recall": float(recall_score(y_true, y_pred, **kw)),
            "per_type_f1": {t: float(report.get(t, {}).get("f1-score", 0.0)) for t in types},
        }

    def is_correct(
        self, gold: list[dict[str, Any]], pred: dict[str, Any], encoded: Encoded
    ) -> bool:
        return word_tags(encoded, gold) == word_tags(encoded, pred["entities"])
