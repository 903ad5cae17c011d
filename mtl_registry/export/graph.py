"""The multi-task model as one ONNX graph: token ids in, one named logits output per head.

Pooling lives inside the graph, so the runtime only tokenises, runs the graph and decodes.
The graph is traced from `MultiTaskModel.forward` itself, so both compute the same thing.
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from mtl_registry.encoder.backbone import SharedEncoder
from mtl_registry.model import MultiTaskModel

INPUTS = ("input_ids", "attention_mask")
OPSET = 17
PAGE = 4096  # tensors start on page boundaries so the weights file can be mapped as is
PROBE_TEXTS = ["hi", "is vol 12 of berserk back in stock?? ordered twice already"]
# Encoders whose graphs onnxruntime's BERT fusions (Attention, SkipLayerNorm, ...) understand.
FUSABLE = {"bert", "distilbert", "roberta", "xlm-roberta", "electra"}


def output_name(task: str) -> str:
    return f"logits_{task}"


class _Outputs(nn.Module):
    """`MultiTaskModel.forward` with a fixed tuple of outputs, which tracing needs."""

    def __init__(self, model: MultiTaskModel, order: list[str]) -> None:
        super().__init__()
        self.model = model
        self.order = order

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids, attention_mask)
        return tuple(out[name] for name in self.order)


def _exportable(model: MultiTaskModel) -> MultiTaskModel:
    """A copy with plain (eager) attention: the pattern ONNX Runtime fuses into one op."""
    body = copy.deepcopy(model.encoder.model)
    if hasattr(body, "set_attn_implementation"):
        body.set_attn_implementation("eager")
    src = model.encoder
    encoder = SharedEncoder(body, src.tokenizer, src.source, src.max_length, src.fingerprint)
    return MultiTaskModel(encoder, model.tasks, dict(model.heads.items())).eval()


def export_graph(model: MultiTaskModel, path: Path) -> list[str]:
    """Write the fp32 graph to `path`; returns the task order of its outputs."""
    order = sorted(model.tasks)
    wrapper = _Outputs(_exportable(model), order).eval()
    ids, mask = model.encoder.collate(model.encoder.tokenize(PROBE_TEXTS))
    outputs = [output_name(t) for t in order]
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    for task, name in zip(order, outputs):
        level = model.tasks[task].head_type.level
        axes[name] = {0: "batch", 1: "sequence"} if level == "token" else {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer chatter about shape-dependent Python branches
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(path),
            input_names=list(INPUTS),
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    return order


def fuse(src: Path, dst: Path, model_type: str, num_heads: int, hidden_size: int) -> dict[str, int]:
    """ONNX Runtime's transformer fusions (one Attention op per layer, fused LayerNorms).

    Returns the fused-op counts; an empty dict means the graph was copied unfused.
    """
    if model_type not in FUSABLE:
        dst.write_bytes(src.read_bytes())
        return {}
    import logging

    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    options = FusionOptions("bert")
    # The word-embedding lookup stays a plain Gather, so INT8 can store the table by rows.
    options.enable_embed_layer_norm = False
    optimized = optimizer.optimize_model(
        str(src),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=0,
        optimization_options=options,
    )
    optimized.save_model_to_file(str(dst))
    stats = optimized.get_fused_operator_statistics()
    return {k: int(v) for k, v in stats.items() if v}


def save_mappable(src: Path, dst: Path, weights: str, page: int = PAGE) -> None:
    """Write the graph at `src` to `dst`, its large tensors in the file `weights` beside it,
    each starting on a page boundary.

    ONNX Runtime then maps that file instead of copying the weights out of a parsed
    model into its heap: a session needs no second copy while it loads, embedding rows no
    text uses stay on disk, and processes serving one export share its pages.
    """
    import onnx
    from onnx.external_data_helper import set_external_data

    model = onnx.load(str(src))
    with open(dst.parent / weights, "wb") as out:
        for tensor in model.graph.initializer:
            if len(tensor.raw_data) < page:  # biases and norms stay inline
                continue
            out.write(b"\0" * (-out.tell() % page))
            offset = out.tell()
            out.write(tensor.raw_data)
            set_external_data(tensor, weights, offset, len(tensor.raw_data))
            tensor.data_location = onnx.TensorProto.EXTERNAL
            tensor.ClearField("raw_data")
    onnx.save(model, str(dst))


def op_counts(path: Path) -> dict[str, int]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return dict(Counter(n.op_type for n in graph.node).most_common())
