"""Dynamic INT8 quantisation with ONNX Runtime, with named groups of nodes kept in fp32.

Weights become int8 ahead of time and activations are quantised per call, so no
calibration data is needed. Quantisable nodes are grouped by what they belong to
(`embeddings`, `layer.N`, `head:TASK`) so that a sensitive part can stay fp32 by name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx

QUANTISED_OPS = ("MatMul", "Attention", "Gather", "EmbedLayerNormalization")
# One scale per output channel: measured on MangaAssist, per-tensor scales cost up to ~1.5
# points on a head where per-channel costs a fraction of one, at the same speed.
PER_CHANNEL = True
_LAYER = re.compile(r"layers?\.(\d+)[./]")
_HEAD = re.compile(r"^/model/([^/]+)/")  # heads are traced as /model/<task>/...
ENCODER_SCOPE = "/model/encoder/model/"


def _group_of(name: str, inputs: list[str], tasks: set[str]) -> str | None:
    head = _HEAD.match(name)
    if head and head.group(1) in tasks and not name.startswith(ENCODER_SCOPE):
        return f"head:{head.group(1)}"
    if "embeddings" in name or any("embeddings" in i for i in inputs):
        return "embeddings"
    layer = _LAYER.search(name)
    return f"layer.{layer.group(1)}" if layer else None


def node_groups(path: Path, tasks: list[str]) -> dict[str, list[str]]:
    """Quantisable node names per group, in graph order.

    Sentence heads run as Gemm, which dynamic quantisation leaves in fp32 anyway; token
    heads run as MatMul over every token and are quantised unless kept.

    Fused nodes (`Attention_3`) carry no module path; they join the group of the next
    named node, which in a transformer block is the same layer's output projection.
    """
    graph = onnx.load(str(path), load_external_data=False).graph
    groups: dict[str, list[str]] = {}
    pending: list[str] = []
    for node in graph.node:
        group = _group_of(node.name, list(node.input), set(tasks))
        if group is None and node.op_type in QUANTISED_OPS:
            pending.append(node.name)
            continue
        if group is None:
            continue
        if pending and group.startswith("layer."):
            groups.setdefault(group, []).extend(pending)
            pending = []
        if node.op_type in QUANTISED_OPS:
            groups.setdefault(group, []).append(node.name)
    if pending:
        groups.setdefault("other", []).extend(pending)
    return groups


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The quantiser logs a pre-processing hint on the root logger; keep it off the console."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantise(
    src: Path,
    dst: Path,
    keep_fp32: list[str],
    groups: dict[str, list[str]],
    per_channel: bool = PER_CHANNEL,
) -> list[str]:
    """Write the INT8 graph; the groups in `keep_fp32` stay fp32. Returns the excluded nodes."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    unknown = sorted(set(keep_fp32) - set(groups))
    if unknown:
        raise ValueError(f"unknown node groups {unknown}; known: {sorted(groups)}")
    excluded = [n for g in keep_fp32 for n in groups[g]]
    with _quiet_root_logger():
        quantize_dynamic(
            src,
            dst,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            op_types_to_quantize=list(QUANTISED_OPS),
            nodes_to_exclude=excluded,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return excluded
