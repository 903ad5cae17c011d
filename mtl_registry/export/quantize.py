"""Dynamic INT8 quantisation with ONNX Runtime, with named groups of nodes kept in fp32.

Weights become int8 ahead of time and activations are quantised per call, so no
calibration data is needed. Quantisable nodes are grouped by what they belong to
(`embeddings`, `layer.N`, `head:TASK`) so that a sensitive part can stay fp32 by name.

The word-embedding table (half of a small encoder's weights) is stored as int8 rows with
one scale per row and dequantised after the lookup: ONNX Runtime's own Gather
quantisation has one scale for the whole table, which cost a head 1.3 points here.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

QUANTISED_OPS = ("MatMul", "Attention")  # by ONNX Runtime; lookup tables by `quantise_rows`
EMBEDDINGS = "embeddings"
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
    if EMBEDDINGS in name or any(EMBEDDINGS in i for i in inputs):
        return EMBEDDINGS
    layer = _LAYER.search(name)
    return f"layer.{layer.group(1)}" if layer else None


def token_lookups(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Gathers of a 2-D fp32 weight table by the graph's token ids: the word embeddings."""
    tables = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    tables &= {t.name for t in graph.initializer if len(t.dims) == 2}
    return [
        n
        for n in graph.node
        if n.op_type == "Gather" and n.input[0] in tables and n.input[1] == "input_ids"
    ]


def node_groups(path: Path, tasks: list[str]) -> dict[str, list[str]]:
    """Quantisable node names per group, in graph order.

    Sentence heads run as Gemm, which dynamic quantisation leaves in fp32 anyway; token
    heads run as MatMul over every token and are quantised unless kept.

    Fused nodes (`Attention_3`) carry no module path; they join the group of the next
    named node, which in a transformer block is the same layer's output projection.
    """
    graph = onnx.load(str(path), load_external_data=False).graph
    groups: dict[str, list[str]] = {}
    lookups = [n.name for n in token_lookups(graph)]
    if lookups:
        groups[EMBEDDINGS] = lookups
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
) -> tuple[list[str], list[str]]:
    """Write the INT8 graph; the groups in `keep_fp32` stay fp32.

    Returns the nodes left fp32 and the lookup tables stored as int8 rows."""
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
    tables: list[str] = []
    if EMBEDDINGS in groups and EMBEDDINGS not in keep_fp32:
        model = onnx.load(str(dst))
        tables = quantise_rows(model.graph)
        onnx.save(model, str(dst))
    return excluded, tables


def quantise_rows(graph: onnx.GraphProto) -> list[str]:
    """Store each token-id lookup table as int8 rows, one fp32 scale per row.

    `Gather(table, ids)` becomes `Cast(Gather(table_int8, ids)) * Gather(scales, ids)`:
    only the looked-up rows are dequantised, and a row's error is bounded by its own
    largest value, not the whole table's. Returns the tables rewritten.
    """
    weights = {t.name: t for t in graph.initializer}
    uses = Counter(i for n in graph.node for i in n.input)
    done = []
    for node in token_lookups(graph):
        if uses[node.input[0]] > 1:  # a tied table is read elsewhere too: leave it fp32
            continue
        table = numpy_helper.to_array(weights[node.input[0]]).astype(np.float32)
        scale = np.abs(table).max(axis=1, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        rows = np.clip(np.rint(table / scale), -127, 127).astype(np.int8)
        name, ids, out = node.input[0], node.input[1], node.output[0]
        graph.initializer.remove(weights[name])
        graph.initializer.extend(
            [
                numpy_helper.from_array(rows, f"{name}_int8_rows"),
                numpy_helper.from_array(scale.astype(np.float32), f"{name}_row_scales"),
            ]
        )
        at = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, new in enumerate(
            [
                helper.make_node(
                    "Gather", [f"{name}_int8_rows", ids], [f"{out}_int8"], name=f"{node.name}_int8"
                ),
                helper.make_node(
                    "Cast", [f"{out}_int8"], [f"{out}_rows"], name=f"{node.name}_cast", to=1
                ),
                helper.make_node(
                    "Gather",
                    [f"{name}_row_scales", ids],
                    [f"{out}_scales"],
                    name=f"{node.name}_scale",
                ),
                helper.make_node("Mul", [f"{out}_rows", f"{out}_scales"], [out], name=node.name),
            ]
        ):
            graph.node.insert(at + offset, new)
        done.append(name)
    return done
