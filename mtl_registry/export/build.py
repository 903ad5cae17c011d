"""Making an export directory: trace, fuse, check against PyTorch, quantise behind the gate.

A directory is staged beside its destination and renamed into place, so a half-written
export is never visible.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnxruntime
import torch
from safetensors.torch import save_file

from mtl_registry.encoder.files import TOKENIZER_FILES
from mtl_registry.export.gate import HeldOut, compare, logit_error, search
from mtl_registry.export.graph import (
    INPUTS,
    PROBE_TEXTS,
    export_graph,
    fuse,
    output_name,
    save_mappable,
)
from mtl_registry.export.manifest import (
    GRAPH,
    MANIFEST,
    WEIGHTS,
    ExportedHead,
    ExportError,
    ExportManifest,
    Quantisation,
    write_manifest,
)
from mtl_registry.export.quantize import PER_CHANNEL, QUANTISED_OPS, node_groups, quantise
from mtl_registry.model import MultiTaskModel
from mtl_registry.registry import HeadManifest

FORMAT = 5  # 2: per-channel INT8; 3: the gate judges dev and test; 4: int8 rows; 5: mapped weights
SPLITS = ("dev", "test")  # the gate's held-out data: a head must pass on both
FP32_ATOL = 1e-3  # ONNX fp32 vs PyTorch fp32 logits; fused kernels differ only by rounding
Echo = Callable[[str], None]

if TYPE_CHECKING:
    from mtl_registry.runtime.onnx_backend import OnnxModel


def _draft(
    model: MultiTaskModel, manifests: dict[str, HeadManifest], precision: str
) -> ExportManifest:
    config = model.encoder.model.config
    heads = [
        ExportedHead(
            task=n,
            version=manifests[n].version,
            head_type=manifests[n].head_type,
            plugin=manifests[n].plugin,
            level=model.tasks[n].head_type.level,
            labels=list(model.tasks[n].labels),
            head_config=manifests[n].head_config,
            output=output_name(n),
            state=f"heads/{n}.safetensors",
        )
        for n in sorted(model.tasks)
    ]
    return ExportManifest(
        encoder_fingerprint=model.encoder.fingerprint or "unregistered",
        model_type=str(getattr(config, "model_type", "unknown")),
        hidden_size=model.encoder.hidden_size,
        max_length=model.encoder.max_length,
        precision=precision,
        inputs=list(INPUTS),
        heads=heads,
        versions={"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    )


def onnx_model(path: Path, model: MultiTaskModel, threads: int | None = None) -> OnnxModel:
    """A graph file of `model` in ONNX Runtime, decoding with `model`'s own head modules."""
    from mtl_registry.runtime.onnx_backend import OnnxModel

    return OnnxModel.from_graph(
        path, model.encoder, model.tasks, dict(model.heads.items()), threads
    )


def _max_logit_diff(candidate: OnnxModel, model: MultiTaskModel) -> float:
    encoded = model.encoder.tokenize(PROBE_TEXTS)
    ids, mask = model.encoder.collate(encoded)
    with torch.inference_mode():
        ref = model(ids, mask)
    got = candidate.run(encoded)
    worst = 0.0
    for name, r in ref.items():
        if r.dim() == 3:  # token logits: only real tokens count (padding rows are free)
            keep = mask.bool()
            r, g = r[keep], got[name][keep]
        else:
            g = got[name]
        worst = max(worst, float((r - g).abs().max()))
    return worst


def fp32_graph(
    model: MultiTaskModel, work: Path, echo: Echo = lambda _: None
) -> tuple[Path, dict[str, int]]:
    """Traced graph, fused when the fused graph still matches PyTorch (else left unfused)."""
    raw, fused = work / "raw.onnx", work / "fused.onnx"
    export_graph(model, raw)
    try:
        config = model.encoder.model.config
        heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
        stats = fuse(
            raw,
            fused,
            str(getattr(config, "model_type", "unknown")),
            int(heads),
            model.encoder.hidden_size,
        )
    except Exception as exc:  # the fusion tool is best effort on unfamiliar graphs
        echo(f"graph fusion skipped: {type(exc).__name__}: {exc}")
        stats = {}
    for path, what in ((fused, "fused"), (raw, "unfused")):
        if not path.is_file():
            continue
        diff = _max_logit_diff(onnx_model(path, model), model)
        if diff <= FP32_ATOL:
            return path, (stats if path == fused else {})
        echo(f"{what} graph differs from PyTorch by {diff:.2e} on probe texts")
    raise ExportError(f"the exported graph does not reproduce the PyTorch model (> {FP32_ATOL})")


def int8_graph(model: MultiTaskModel, work: Path, keep_fp32: list[str]) -> Path:
    """`model`'s INT8 graph with the `keep_fp32` groups left fp32, without the quality gate:
    for probes that only time a graph (a benchmark's extra head), never for serving."""
    fp32, _ = fp32_graph(model, work)
    groups = node_groups(fp32, list(model.tasks))
    path = work / "int8.onnx"
    quantise(fp32, path, [g for g in keep_fp32 if g in groups], groups)
    return path


def _int8(
    model: MultiTaskModel,
    manifests: dict[str, HeadManifest],
    fp32: Path,
    work: Path,
    max_drop: float,
    data: dict[str, Path] | None,
    echo: Echo,
) -> tuple[Path, Quantisation, dict[str, Any]]:
    """Quantise everything; if a head loses more than `max_drop` on its held-out data (dev or
    test), keep groups in fp32, cheapest first, until every head passes on both."""
    groups = node_groups(fp32, list(model.tasks))
    held = HeldOut.load(model.encoder, model.tasks, manifests, data, SPLITS)
    reference = onnx_model(fp32, model)
    ref_scores = {s: held.scores(reference, s) for s in SPLITS}
    ref_logits = held.logits(reference, "dev")
    log: list[dict[str, Any]] = []
    paths: dict[tuple[str, ...], tuple[Path, list[str]]] = {}
    results: dict[tuple[str, ...], dict[str, dict[str, Any]]] = {}

    def build(keep: list[str]) -> OnnxModel:
        path = work / f"int8-{len(paths)}.onnx"
        _, tables = quantise(fp32, path, keep, groups)
        paths[tuple(keep)] = path, tables
        return onnx_model(path, model)

    def held_out(keep: list[str]) -> dict[str, Any]:
        """Per head on dev and on test; a head passes when it passes on both."""
        candidate = build(keep)
        per = {
            s: compare(model.tasks, ref_scores[s], held.scores(candidate, s), max_drop)
            for s in SPLITS
        }
        results[tuple(keep)] = per
        return {
            n: {
                "passes": all(per[s][n]["passes"] for s in SPLITS),
                "change_points": {s: per[s][n]["change_points"] for s in SPLITS},
            }
            for n in per["test"]
        }

    first = held_out([])
    log.append(
        {
            "keep_fp32": [],
            "passes": all(c["passes"] for c in first.values()),
            "change_points": {n: c["change_points"] for n, c in first.items()},
        }
    )
    keep: list[str] = []
    reason = "every head within the tolerance with all groups in INT8"
    failing = [n for n, c in first.items() if not c["passes"]]
    if failing:
        echo(
            f"INT8 everywhere loses more than {100 * max_drop:.1f} points for {failing}; "
            "keeping groups in fp32"
        )
        cheap = [g for g in groups if g == "embeddings" or g.startswith("head:")]
        layers = [g for g in groups if g not in cheap]
        found = search(
            cheap,
            layers,
            held_out,
            lambda k: logit_error(ref_logits, held.logits(build(k), "dev"), failing),
            log,
        )
        if found is None:
            raise ExportError(
                f"INT8 export refused: {failing} lose more than {100 * max_drop:.1f} "
                "points even with every layer in fp32"
            )
        keep = found
        reason = (
            f"{', '.join(failing)} lost more than {100 * max_drop:.1f} points on held-out "
            "data with every group in INT8; groups were kept fp32 cheapest first "
            "(embedding lookups and token heads cost no speed), then encoder layers by "
            "logit sensitivity on dev, until every head passed on dev and test"
        )
    chosen = results[tuple(keep)]
    quality = {
        "split": "test",
        "max_drop_points": round(100 * max_drop, 2),
        "heads": chosen["test"],
        "dev": chosen["dev"],
        "all_int8_heads": results[()]["test"],
        "data": {n: str(d) for n, d in held.task_dirs.items()},
    }
    excluded = [n for g in keep for n in groups[g]]
    path, tables = paths[tuple(keep)]
    return (
        path,
        Quantisation(
            op_types=list(QUANTISED_OPS),
            per_channel=PER_CHANNEL,
            int8_rows=tables,
            kept_fp32=keep,
            excluded_nodes=excluded,
            reason=reason,
            search=log,
        ),
        quality,
    )


def export_model(
    model: MultiTaskModel,
    manifests: dict[str, HeadManifest],
    out: Path,
    *,
    int8: bool = False,
    max_drop: float = 0.01,
    data: dict[str, Path] | None = None,
    echo: Echo = lambda _: None,
) -> ExportManifest:
    """Write `out` as a self-contained export of `model` (whose heads `manifests` describe)."""
    if not model.tasks:
        raise ExportError("nothing to export: no heads")
    model.eval()
    manifest = _draft(model, manifests, "int8" if int8 else "fp32")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.staging-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="mtlreg-export-") as tmp:
        try:
            graph, fused = fp32_graph(model, Path(tmp), echo)
            manifest = manifest.model_copy(update={"fused_ops": fused})
            if int8:
                graph, quant, quality = _int8(
                    model, manifests, graph, Path(tmp), max_drop, data, echo
                )
                manifest = manifest.model_copy(update={"quantisation": quant, "quality": quality})
            (stage / "heads").mkdir(parents=True)
            save_mappable(graph, stage / GRAPH, WEIGHTS)
            for h in manifest.heads:
                state = model.heads[h.task].state_dict()
                save_file(
                    {k: v.detach().contiguous().cpu() for k, v in state.items()},
                    str(stage / h.state),
                )
            source = model.encoder.source
            for name in ("config.json", *TOKENIZER_FILES):
                if (source / name).is_file():
                    shutil.copy2(source / name, stage / name)
            sealed = write_manifest(stage, manifest)
            replace_dir(stage, out)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return sealed


def replace_dir(stage: Path, out: Path) -> None:
    """Rename `stage` to `out`; an older export at `out` is swapped out, anything else refused."""
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        else:
            if not out.is_dir() or not (out / MANIFEST).is_file():
                raise ExportError(
                    f"{out}: exists and is not an export; give a new or empty "
                    "folder (an older export there is replaced)"
                )
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.rename(old)
            stage.rename(out)
            shutil.rmtree(old, ignore_errors=True)
            return
    stage.rename(out)
