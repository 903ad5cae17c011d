"""Serving from an export: the one-graph model in ONNX Runtime, decoded by the head types.

`OnnxModel` answers like `MultiTaskModel` (`tasks`, `heads`, `encoder`, `batches`,
`predict`), so `HeadSet`, evaluation and the server use it unchanged. The PyTorch
encoder weights are never loaded: only the tokenizer, the graph and each head's small
module state, which `HeadType.decode` reads (sentiment thresholds, for example).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
import torch
from safetensors.torch import load_file
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from mtl_registry.encoder.backbone import Encoded, SharedEncoder
from mtl_registry.export.graph import output_name
from mtl_registry.export.manifest import GRAPH, ExportError, ExportManifest, read_manifest
from mtl_registry.heads.base import HeadConfig
from mtl_registry.model import Batches, Task, decode_batches, length_batches
from mtl_registry.plugins import host
from mtl_registry.registry import HeadManifest, Registry

if TYPE_CHECKING:
    from mtl_registry.runtime.predictor import HeadSet


def available_cores() -> int:
    """Cores this process may run on (container limits and affinity included)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_shared_pool = False  # set by `share_one_thread_pool`


def share_one_thread_pool(threads: int | None = None) -> None:
    """From now on every session of this process runs on one process-wide intra-op pool of
    `threads` (default: one per core) spinning threads, instead of a pool of its own.

    For a server that swaps heads: building the next session beside the serving one then
    starts no second pool, whose spinning threads would take the cores from requests
    while it loads (measured: a session's creation costs twice its wall time in CPU with
    its own spinning pool, once with the shared one). Per-session `threads` and `spinning`
    are then ignored; the first call in a process sizes the pool.
    """
    global _shared_pool
    from onnxruntime.capi import _pybind_state

    _pybind_state.set_global_thread_pool_sizes(threads or available_cores(), 1)
    _shared_pool = True


def session_options(threads: int | None = None, spinning: bool = True) -> ort.SessionOptions:
    """One intra-op pool sized to the cores; no inter-op pool (the graph is one chain).

    Pool threads spin briefly between ops and runs (ONNX Runtime's default), the fastest
    for one model on idle cores. Several spinning sessions in one process, or cores that
    other busy processes share, call for `spinning=False` (see the benchmark's thread table).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or available_cores()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The CPU arena and pre-planned activation buffers stay on (ONNX Runtime's defaults):
    # 4-8% faster at batch 32 than the system allocator at the same peak memory, now that
    # the weights are mapped from the export rather than copied (measured here).
    options.log_severity_level = 3
    options.use_per_session_threads = not _shared_pool
    return options


def _session(path: Path, threads: int | None, spinning: bool = True) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(
            str(path), session_options(threads, spinning), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(f"{path}: ONNX Runtime cannot load it: {exc}") from exc


_torch_threads_lock = threading.Lock()
_torch_threads_users = 0
_torch_threads_saved = 1


@contextmanager
def _torch_single_threaded() -> Iterator[None]:
    """PyTorch on one thread while head types decode ONNX Runtime's logits.

    Decoding is a few tiny ops, but from batch 2 up torch wakes its OpenMP pool, whose
    threads then fight ONNX Runtime's spinning ones for the cores: 3 ms stalls on two cores.
    Counted, so overlapping callers restore the caller's setting exactly once.
    """
    global _torch_threads_users, _torch_threads_saved
    with _torch_threads_lock:
        if _torch_threads_users == 0:
            _torch_threads_saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _torch_threads_users += 1
    try:
        yield
    finally:
        with _torch_threads_lock:
            _torch_threads_users -= 1
            if _torch_threads_users == 0:
                torch.set_num_threads(_torch_threads_saved)


def tokenizer_only(
    folder: Path, manifest: ExportManifest, tokenizer: PreTrainedTokenizerBase | None = None
) -> SharedEncoder:
    """A `SharedEncoder` that tokenises and collates but holds no weights (the graph has them);
    `tokenizer`: one already loaded for this encoder, shared instead of loaded again."""
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(folder, use_fast=True)
    return SharedEncoder(
        nn.Identity(), tokenizer, folder, manifest.max_length, manifest.encoder_fingerprint
    )


class OnnxModel:
    """A graph in an ONNX Runtime session, with the head modules its logits are decoded by."""

    def __init__(
        self,
        session: ort.InferenceSession,
        encoder: SharedEncoder,
        tasks: dict[str, Task],
        heads: dict[str, nn.Module],
        manifest: ExportManifest | None = None,
    ) -> None:
        self.session = session
        self.encoder = encoder
        self.tasks = tasks
        self.heads = heads
        self.manifest = manifest
        self._names = sorted(tasks)
        self._outputs = [output_name(t) for t in self._names]
        self._pad = encoder.tokenizer.pad_token_id or 0

    @classmethod
    def from_graph(
        cls,
        path: Path,
        encoder: SharedEncoder,
        tasks: dict[str, Task],
        heads: dict[str, nn.Module],
        threads: int | None = None,
    ) -> OnnxModel:
        """A bare graph file decoded with given heads: for checks and candidates in export."""
        return cls(_session(path, threads), encoder, tasks, heads)

    @classmethod
    def load(
        cls,
        folder: str | Path,
        threads: int | None = None,
        verify: bool = True,
        spinning: bool = True,
        tokenizer_of: SharedEncoder | None = None,
    ) -> OnnxModel:
        """An export directory, every file checked against its manifest first.

        `tokenizer_of`: a loaded encoder whose tokenizer to share when it is the export's
        encoder (a head swap on the same encoder need not load it again)."""
        folder = Path(folder)
        manifest = read_manifest(folder, verify=verify)
        plugins = host()
        tasks, heads = {}, {}
        for h in manifest.heads:
            head_type, plugin = plugins.head_type(h.head_type, h.plugin)
            task = Task(h.task, head_type, plugin, list(h.labels), HeadConfig(**h.head_config))
            module = task.build(manifest.hidden_size)
            module.load_state_dict(load_file(str(folder / h.state)))
            tasks[h.task], heads[h.task] = task, module.eval()
        shared = None
        if tokenizer_of is not None and tokenizer_of.fingerprint == manifest.encoder_fingerprint:
            shared = tokenizer_of.tokenizer
        encoder = tokenizer_only(folder, manifest, shared)
        return cls(_session(folder / GRAPH, threads, spinning), encoder, tasks, heads, manifest)

    def collate(self, chunk: list[Encoded]) -> dict[str, np.ndarray]:
        """Right-padded int64 arrays, as wide as the longest text in this batch."""
        width = max(len(e.input_ids) for e in chunk)
        ids = np.full((len(chunk), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for row, e in enumerate(chunk):
            ids[row, : len(e.input_ids)] = e.input_ids
            mask[row, : len(e.input_ids)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def run(self, chunk: list[Encoded]) -> dict[str, torch.Tensor]:
        """Logits per task for one batch, as tensors (no copy) for the head types' decode."""
        arrays = self.session.run(self._outputs, self.collate(chunk))
        return {name: torch.from_numpy(a) for name, a in zip(self._names, arrays)}

    def batches(self, encoded: list[Encoded], batch_size: int = 64) -> Batches:
        for idx in length_batches(encoded, batch_size):
            chunk = [encoded[i] for i in idx]
            yield list(zip(idx, chunk)), self.run(chunk)

    def predict(self, encoded: list[Encoded], batch_size: int = 64) -> list[dict[str, Any]]:
        """Decoded predictions per text, in input order, exactly as the PyTorch model decodes."""
        with torch.inference_mode(), _torch_single_threaded():
            return decode_batches(
                self.tasks, self.heads, self.batches(encoded, batch_size), len(encoded)
            )


def load_onnx_heads(
    registry: Registry,
    fingerprint: str,
    manifests: dict[str, HeadManifest],
    generation: int = 0,
    *,
    int8: bool = False,
    max_length: int = 128,
    threads: int | None = None,
    spinning: bool = True,
    tokenizer_of: SharedEncoder | None = None,
) -> HeadSet:
    """The release's export (built and cached on first use) as a `HeadSet`, not yet warmed up.

    The versions it reports are the registry's manifests, which the export was made from.
    """
    from mtl_registry.export.release import ensure_export
    from mtl_registry.runtime.predictor import HeadSet

    path = ensure_export(registry, fingerprint, manifests, int8=int8, max_length=max_length)
    # ensure_export has just checked every file against the manifest
    model = OnnxModel.load(path, threads, False, spinning, tokenizer_of)
    return HeadSet(model, dict(manifests), generation)
