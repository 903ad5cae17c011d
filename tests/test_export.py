"""`mtlreg export`: one ONNX graph for the active release, served by the ONNX backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from mtl_registry.export import ExportError, export_active, read_manifest
from mtl_registry.export.gate import search
from mtl_registry.export.graph import PAGE
from mtl_registry.export.manifest import GRAPH, WEIGHTS
from mtl_registry.export.quantize import node_groups, quantise
from mtl_registry.registry import Registry
from mtl_registry.runtime import Runtime
from mtl_registry.runtime.onnx_backend import OnnxModel

TEXTS = [
    "is vol 12 of Berserk back in stock?? ordered twice already",
    "hi",
    "where is my order MA-48213907, it was supposed to arrive monday 😡",
    "any recommendations for dark fantasy like vagabond? loved it",
]


@pytest.fixture
def fp32_export(registry_copy: Path, tmp_path: Path) -> tuple[Registry, Path]:
    registry = Registry(registry_copy)
    path, _ = export_active(registry, tmp_path / "export")
    return registry, path


def _labels(result: dict) -> dict:
    p = result["predictions"]
    return {
        "intent": p["intent"]["label"],
        "sentiment": [x["label"] for x in p["sentiment"]["labels"]],
        "ner": [(e["start"], e["end"], e["label"]) for e in p["ner"]["entities"]],
    }


def test_onnx_outputs_match_pytorch_logits_for_every_head(fp32_export):
    registry, path = fp32_export
    torch_model = Runtime(registry).heads.model
    onnx_model = OnnxModel.load(path)
    encoded = torch_model.encoder.tokenize(TEXTS)
    for chunk in (encoded, encoded[:1], encoded[1:2]):  # dynamic batch and sequence axes
        ids, mask = torch_model.encoder.collate(chunk)
        with torch.inference_mode():
            expected = torch_model(ids, mask)
        got = onnx_model.run(chunk)
        assert set(got) == set(expected) == {"intent", "sentiment", "ner"}
        for task, ref in expected.items():
            if ref.dim() == 3:  # token logits: compare real tokens, not padding
                ref, out = ref[mask.bool()], got[task][mask.bool()]
            else:
                out = got[task]
            assert out.shape == ref.shape
            torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_onnx_backend_predicts_same_format_versions_and_labels(fp32_export):
    registry, _ = fp32_export
    reference = Runtime(registry).predict(TEXTS)
    served = Runtime(registry, backend="onnx").predict(TEXTS)
    active = registry.active()
    for ref, got in zip(reference, served):
        assert (
            got["versions"] == ref["versions"] == {"encoder": active.encoder, "heads": active.heads}
        )
        assert got["text"] == ref["text"]
        assert set(got["predictions"]) == set(ref["predictions"])
        for task in ref["predictions"]:
            assert set(got["predictions"][task]) == set(ref["predictions"][task])
        assert _labels(got) == _labels(ref)
        scores = got["predictions"]["sentiment"]["scores"]
        for label, score in ref["predictions"]["sentiment"]["scores"].items():
            assert abs(scores[label] - score) <= 2e-4


def test_export_manifest_names_encoder_heads_outputs_and_files(fp32_export):
    registry, path = fp32_export
    manifest = read_manifest(path)
    active = registry.active()
    assert manifest.encoder_fingerprint == active.encoder
    assert manifest.head_versions == active.heads
    assert manifest.precision == "fp32" and manifest.quantisation is None
    graph = onnx.load(str(path / "model.onnx"))
    assert [o.name for o in graph.graph.output] == [h.output for h in manifest.heads]
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask"]
    sentiment = next(h for h in manifest.heads if h.task == "sentiment")
    assert sentiment.labels == registry.head_manifest("sentiment", 1).labels
    assert {"model.onnx", "heads/sentiment.safetensors", "tokenizer.json"} <= set(manifest.files)


def test_export_weights_are_page_aligned_in_one_file_that_onnx_runtime_maps(fp32_export):
    _, path = fp32_export
    graph = onnx.load(str(path / GRAPH), load_external_data=False).graph
    external = [t for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external, "no tensor was moved out of the graph file"
    for tensor in external:
        info = {e.key: e.value for e in tensor.external_data}
        assert info["location"] == WEIGHTS and int(info["offset"]) % PAGE == 0
    inline = [t for t in graph.initializer if t.data_location != onnx.TensorProto.EXTERNAL]
    assert all(len(t.raw_data) < PAGE for t in inline)
    assert WEIGHTS in read_manifest(path).files  # checksummed like every other file
    model = OnnxModel.load(path)
    mapped = Path("/proc/self/maps").read_text() if sys.platform == "linux" else ""
    assert sys.platform != "linux" or str((path / WEIGHTS).resolve()) in mapped
    assert model.predict(model.encoder.tokenize(TEXTS[:1]))[0].keys() == {
        "intent",
        "sentiment",
        "ner",
    }


_COUNT_POOL_THREADS = """
import os, sys
from mtl_registry.runtime.onnx_backend import OnnxModel, share_one_thread_pool
if sys.argv[2] == "shared":
    share_one_thread_pool(2)
threads = lambda: len(os.listdir("/proc/self/task"))
first = OnnxModel.load(sys.argv[1], threads=2)
first.predict(first.encoder.tokenize(["hi"]))  # the libraries' own threads start here
before = threads()
second = OnnxModel.load(sys.argv[1], threads=2)  # a swap's next model, beside the live one
second.predict(second.encoder.tokenize(["hi"]))
print(threads() - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="counts threads in /proc")
def test_a_shared_thread_pool_gives_the_next_session_no_threads_of_its_own(fp32_export):
    _, path = fp32_export

    def added(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", _COUNT_POOL_THREADS, str(path), mode],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(run.stdout.strip().splitlines()[-1])

    assert added("own") >= 1  # each session starts its own pool thread
    assert added("shared") == 0


def test_a_changed_export_file_is_refused_on_load(fp32_export):
    _, path = fp32_export
    state = path / "heads" / "sentiment.safetensors"
    data = bytearray(state.read_bytes())
    data[-1] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(ExportError, match="heads/sentiment.safetensors"):
        OnnxModel.load(path)


def test_export_never_overwrites_a_folder_that_is_not_an_export(fp32_export, tmp_path: Path):
    registry, _ = fp32_export
    taken = tmp_path / "notes"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="is not an export"):
        export_active(registry, taken)
    assert (taken / "keep.txt").read_text() == "mine"
    export_active(registry, tmp_path / "export")  # an older export is replaced in place
    assert read_manifest(tmp_path / "export").head_versions == registry.active().heads


def test_export_refuses_without_active_heads(tmp_path: Path, tiny_bert: Path):
    registry = Registry(tmp_path / "reg")
    registry.init(tiny_bert)
    with pytest.raises(ExportError, match="no active heads to export"):
        export_active(registry, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_int8_export_reports_every_head_fp32_vs_int8(registry_copy: Path, tmp_path: Path):
    registry = Registry(registry_copy)
    # tolerance wide open: the tiny random encoder's 40 test texts make 1 point one text
    path, manifest = export_active(registry, tmp_path / "int8", int8=True, max_drop=1.0)
    assert manifest.precision == "int8" and manifest.quantisation is not None
    quality = manifest.quality
    assert quality is not None and quality["split"] == "test"
    assert set(quality["heads"]) == {"intent", "sentiment", "ner"}
    for row in quality["heads"].values():
        assert {"metric", "fp32", "int8", "change_points", "passes"} <= set(row)
        assert row["change_points"] == pytest.approx(100 * (row["int8"] - row["fp32"]), abs=0.02)
    ops = {n.op_type for n in onnx.load(str(path / "model.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}
    assert read_manifest(path).quality == quality  # the report is part of the export


def test_int8_gate_refuses_an_export_no_candidate_can_pass(registry_copy: Path, tmp_path: Path):
    registry = Registry(registry_copy)
    with pytest.raises(ExportError, match="INT8 export refused"):
        export_active(registry, tmp_path / "int8", int8=True, max_drop=-1.0)  # must gain 100
    assert not (tmp_path / "int8").exists()
    assert not list((registry_copy / "exports").glob("*/export.json"))


def test_groups_kept_fp32_stay_unquantised(fp32_export, tmp_path: Path):
    _, path = fp32_export
    groups = node_groups(path / "model.onnx", ["intent", "sentiment", "ner"])
    assert set(groups) == {"embeddings", "layer.0", "layer.1", "head:ner"}
    quantise(path / "model.onnx", tmp_path / "q.onnx", ["head:ner", "layer.1"], groups)
    nodes = {n.name: n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    for name in groups["head:ner"] + groups["layer.1"]:
        assert nodes[name] in {"MatMul", "Attention"}  # untouched fp32 nodes
    assert any(t in {"MatMulInteger", "DynamicQuantizeMatMul"} for t in nodes.values())
    with pytest.raises(ValueError, match="unknown node groups"):
        quantise(path / "model.onnx", tmp_path / "q2.onnx", ["layer.9"], groups)


def test_word_embeddings_are_stored_as_int8_rows_with_one_scale_per_row(
    fp32_export, tmp_path: Path
):
    registry, path = fp32_export
    groups = node_groups(path / "model.onnx", ["intent", "sentiment", "ner"])
    layers = [g for g in groups if g.startswith("layer.")]
    _, tables = quantise(path / "model.onnx", tmp_path / "q.onnx", [*layers, "head:ner"], groups)
    (table,) = tables
    fp32 = {t.name: t for t in onnx.load(str(path / "model.onnx")).graph.initializer}
    int8 = {t.name: t for t in onnx.load(str(tmp_path / "q.onnx")).graph.initializer}
    assert table not in int8  # the fp32 table is gone, not kept beside its int8 copy
    original = numpy_helper.to_array(fp32[table])
    rows = numpy_helper.to_array(int8[f"{table}_int8_rows"])
    scales = numpy_helper.to_array(int8[f"{table}_row_scales"])
    assert rows.dtype == np.int8 and rows.shape == original.shape
    assert scales.shape == (original.shape[0], 1)
    assert (np.abs(rows * scales - original).max(axis=1) <= scales[:, 0] / 2 + 1e-7).all()
    # only the lookup is INT8 here, so the graph still matches PyTorch closely
    torch_model = Runtime(registry).heads.model
    encoded = torch_model.encoder.tokenize(TEXTS)
    got = OnnxModel.from_graph(
        tmp_path / "q.onnx",
        torch_model.encoder,
        torch_model.tasks,
        dict(torch_model.heads.items()),
    ).run(encoded)
    ids, mask = torch_model.encoder.collate(encoded)
    with torch.inference_mode():
        expected = torch_model(ids, mask)
    for task in ("intent", "sentiment"):  # a wrong scale or row would be off by 100%+
        error = (got[task] - expected[task]).norm() / expected[task].norm()
        assert error < 0.1, f"{task}: logits {100 * float(error):.1f}% away from fp32"
    # keeping the group fp32 leaves the table untouched
    _, none = quantise(path / "model.onnx", tmp_path / "k.onnx", ["embeddings"], groups)
    kept = {t.name for t in onnx.load(str(tmp_path / "k.onnx")).graph.initializer}
    assert none == [] and table in kept


def test_search_gives_up_cheap_groups_first_then_the_most_sensitive_layers():
    sensitivity = {"layer.0": 0.5, "layer.1": 2.0, "layer.2": 1.0}
    needed = {"embeddings", "layer.1", "layer.2"}

    def on_dev(keep: list[str]) -> dict:
        return {"ner": {"passes": needed <= set(keep), "change_points": 0.0}}

    def probe(keep: list[str]) -> float:  # keep = every group but the one layer quantised
        (quantised,) = set(sensitivity) - set(keep)
        return sensitivity[quantised]

    log: list[dict] = []
    found = search(["embeddings", "head:ner"], sorted(sensitivity), on_dev, probe, log)
    assert found == ["embeddings", "head:ner", "layer.1", "layer.2"]
    assert [e["keep_fp32"] for e in log if "keep_fp32" in e][-1] == found
    assert search(["embeddings"], [], on_dev, probe, []) is None
    cheap_enough = search(
        ["embeddings"],
        sorted(sensitivity),
        lambda k: {"ner": {"passes": "embeddings" in k, "change_points": 0}},
        probe,
        [],
    )
    assert cheap_enough == ["embeddings"]  # no layer probed or kept when a cheap group suffices


def test_onnx_runtime_hot_swaps_to_a_new_head_version(registry_copy: Path, tmp_path: Path):
    from mtl_registry.data.mangaassist import generate_sentiment_v2
    from mtl_registry.training.head_only import HeadTrainConfig, retrain_head

    registry = Registry(registry_copy)
    runtime = Runtime(registry, backend="onnx")
    data = tmp_path / "sv2"
    generate_sentiment_v2(data, seed=2, n_train=60, n_dev=20, n_test=20)
    retrain_head(
        registry, "sentiment", data, HeadTrainConfig(epochs=1), activate=True, progress=False
    )
    before = runtime.heads
    assert runtime.sync() is True
    assert before.versions["heads"]["sentiment"] == 1  # the old set was never mutated
    result = runtime.predict(["thank you so much!!"])[0]
    assert result["versions"]["heads"]["sentiment"] == 2
    assert "gratitude" in result["predictions"]["sentiment"]["scores"]


def test_cli_export_then_predict_with_the_onnx_backend(registry_copy: Path, tmp_path: Path):
    env = {**os.environ, "MTLREG_REGISTRY": str(registry_copy)}

    def mtlreg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mtl_registry", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    proc = mtlreg("export", str(tmp_path / "out"), "--json")
    assert proc.returncode == 0, proc.stderr
    exported = json.loads(proc.stdout)
    assert exported["precision"] == "fp32" and exported["path"] == str(tmp_path / "out")
    assert read_manifest(tmp_path / "out").head_versions == {"intent": 1, "ner": 1, "sentiment": 1}
    proc = mtlreg("predict", "--backend", "onnx", "--json", TEXTS[0])
    assert proc.returncode == 0, proc.stderr
    reference = Runtime(Registry(registry_copy)).predict(TEXTS[:1])
    assert [_labels(r) for r in json.loads(proc.stdout)] == [_labels(r) for r in reference]
