"""The serving-side model: the active encoder loaded once, the active heads, hot swaps.

A request reads `Runtime.heads` once and uses that immutable `HeadSet` from start to
end, so a swap (which builds a new HeadSet, warms it up, then replaces the reference)
never mixes versions inside one request and never blocks one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from mtl_registry.encoder.backbone import SharedEncoder
from mtl_registry.errors import FingerprintMismatch, MtlRegError, RegistryError
from mtl_registry.model import MultiTaskModel, load_encoder, load_head
from mtl_registry.plugins import host
from mtl_registry.registry import HeadManifest, Registry

if TYPE_CHECKING:
    from mtl_registry.runtime.onnx_backend import OnnxModel

WARMUP_TEXTS = ["hello", "is vol 3 of one piece in stock?? need it asap"]
# torch: PyTorch eager; onnx / onnx-int8: the release exported as one ONNX graph (fp32 / INT8)
BACKENDS = ("torch", "onnx", "onnx-int8")


@dataclass(frozen=True)
class HeadSet:
    """An immutable set of heads on one encoder."""

    model: MultiTaskModel | OnnxModel
    manifests: dict[str, HeadManifest]
    generation: int = 0

    @property
    def encoder(self) -> SharedEncoder:
        return self.model.encoder

    @property
    def versions(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.fingerprint,
            "heads": {t: m.version for t, m in sorted(self.manifests.items())},
        }

    def predict(self, texts: list[str], batch_size: int = 64) -> list[dict[str, Any]]:
        preds = self.model.predict(self.encoder.tokenize(texts), batch_size)
        versions = self.versions
        return [{"text": t, "predictions": p, "versions": versions} for t, p in zip(texts, preds)]


def load_heads(
    registry: Registry,
    encoder: SharedEncoder,
    manifests: dict[str, HeadManifest],
    generation: int = 0,
    warm_up: bool = True,
) -> HeadSet:
    """Load, check and (unless told not to) warm up a head set. Raises instead of returning
    a half-working set: a head that cannot decode the warm-up texts never goes live."""
    plugins = host()
    tasks, modules = {}, {}
    for name, manifest in manifests.items():
        head_type, plugin = plugins.head_type(manifest.head_type, manifest.plugin)
        tasks[name], modules[name] = load_head(registry, manifest, encoder, head_type, plugin)
    heads = HeadSet(MultiTaskModel(encoder, tasks, modules).eval(), dict(manifests), generation)
    if warm_up:
        heads.predict(WARMUP_TEXTS)
    return heads


@dataclass
class SwapRecord:
    """What the runtime last did for one task, for /heads and for debugging."""

    wanted: int | None = None
    error: str | None = None
    at: float = field(default_factory=time.time)


class Runtime:
    """Predictions from the registry's active encoder and heads, kept in sync on request."""

    def __init__(
        self,
        registry: Registry,
        max_length: int = 128,
        backend: str = "torch",
        threads: int | None = None,
        spinning: bool = True,
    ) -> None:
        """`threads`: intra-op threads (default: one per core). For PyTorch the setting is
        process-wide; on a loaded two-core machine one thread avoids its pool stalling.
        `spinning` (ONNX backends): pool threads wait for work by spinning, the fastest
        when this process has the cores to itself; turn it off when it shares them."""
        if backend not in BACKENDS:
            raise RegistryError(f"unknown backend '{backend}'; choose from {', '.join(BACKENDS)}")
        self.registry = registry.require()
        self.max_length = max_length
        self.backend = backend
        self.threads = threads
        self.spinning = spinning
        if threads and backend == "torch":
            torch.set_num_threads(threads)
        self._swap_lock = threading.Lock()  # serialises swaps; predictions never wait on it
        # One model call at a time (predictions and swap warm-ups): on CPU one forward pass
        # already uses every core, and two at once only slow each other down.
        self._compute = threading.Lock()
        self.swaps: dict[str, SwapRecord] = {}
        active = registry.active()
        if active.encoder is None:
            raise RegistryError(f"{registry.root}: no active encoder; run `mtlreg init`")
        if not active.heads:
            raise RegistryError(f"{registry.root}: no active heads; run `mtlreg train` first")
        self.heads = self._load(active.encoder, active.heads, active.generation)

    def _load(
        self,
        fingerprint: str,
        heads: dict[str, int],
        generation: int,
        current: SharedEncoder | None = None,
    ) -> HeadSet:
        """A checked, warmed-up head set on this runtime's backend. `current`: the encoder
        now serving, whose tokenizer an export of the same encoder shares."""
        manifests = {t: self.registry.head_manifest(t, v) for t, v in heads.items()}
        if self.backend == "torch":
            encoder = load_encoder(self.registry, fingerprint, self.max_length)
            return self._warmed(
                load_heads(self.registry, encoder, manifests, generation, warm_up=False)
            )
        from mtl_registry.runtime.onnx_backend import load_onnx_heads

        loaded = load_onnx_heads(
            self.registry,
            fingerprint,
            manifests,
            generation,
            int8=self.backend == "onnx-int8",
            max_length=self.max_length,
            threads=self.threads,
            spinning=self.spinning,
            tokenizer_of=current,
        )
        return self._warmed(loaded)

    def _warmed(self, heads: HeadSet) -> HeadSet:
        """Warm-up between requests, never beside one: a swap does not slow serving down."""
        with self._compute:
            heads.predict(WARMUP_TEXTS)
        return heads

    @property
    def encoder(self) -> SharedEncoder:
        return self.heads.encoder

    def predict(self, texts: list[str], batch_size: int = 64) -> list[dict[str, Any]]:
        """One consistent head set per call; concurrent calls take turns (see `_compute`)."""
        with self._compute:
            return self.heads.predict(texts, batch_size)

    def swap(self, task: str, version: int) -> bool:
        """Put one head version live. On any failure the old head keeps serving."""
        with self._swap_lock:
            current = self.heads
            wanted = {**current.versions["heads"], task: version}
            if self.backend != "torch":
                return self._rebuild(current, wanted, current.generation)
            return self._replace(current, wanted, current.generation)

    def sync(self) -> bool:
        """Follow the registry's active pointers. Returns whether anything changed."""
        with self._swap_lock:
            active = self.registry.active()
            current = self.heads
            if active.generation == current.generation:
                return False
            if active.encoder != current.encoder.fingerprint:
                return self._reload(active.encoder, active.heads, active.generation)
            if self.backend != "torch":
                return self._rebuild(current, active.heads, active.generation)
            return self._replace(current, active.heads, active.generation)

    def _rebuild(self, current: HeadSet, wanted: dict[str, int], generation: int) -> bool:
        """ONNX backends: every head lives in the one graph, so a changed head means the
        release's export is loaded (built on first use) beside the old one, then swapped in."""
        changed = {t: v for t, v in wanted.items() if current.versions["heads"].get(t) != v}
        if not changed and set(wanted) == set(current.manifests):
            self.heads = HeadSet(current.model, current.manifests, generation)
            return False
        ok = self._reload(current.encoder.fingerprint, wanted, generation)
        error = None if ok else self.swaps["*"].error
        for task, version in changed.items():
            self.swaps[task] = SwapRecord(wanted=version, error=error)
        return ok

    def _replace(self, current: HeadSet, wanted: dict[str, int], generation: int) -> bool:
        manifests, checked = {}, {}
        for task, version in wanted.items():
            old = current.manifests.get(task)
            if old is not None and old.version == version:
                manifests[task] = old
                continue
            try:
                manifest = self.registry.head_manifest(task, version)
                if manifest.encoder_fingerprint != current.encoder.fingerprint:
                    raise FingerprintMismatch(
                        f"head {task} v{version} was trained on encoder "
                        f"{manifest.encoder_fingerprint}, but this runtime serves encoder "
                        f"{current.encoder.fingerprint}"
                    )
                fresh = load_heads(self.registry, current.encoder, {task: manifest}, warm_up=False)
                checked[task] = self._warmed(fresh).model
                manifests[task] = manifest
                self.swaps[task] = SwapRecord(wanted=version)
            except (MtlRegError, OSError, RuntimeError, ValueError) as exc:
                self.swaps[task] = SwapRecord(wanted=version, error=f"{type(exc).__name__}: {exc}")
                if old is not None:
                    manifests[task] = old
        if manifests == current.manifests:
            self.heads = HeadSet(current.model, current.manifests, generation)
            return False
        tasks, modules = {}, {}
        for t in manifests:  # modules already loaded: the live ones, or the ones just checked
            source = checked.get(t, current.model)
            tasks[t], modules[t] = source.tasks[t], source.heads[t]
        model = MultiTaskModel(current.encoder, tasks, modules).eval()
        self.heads = HeadSet(model, manifests, generation)
        return True

    def _reload(self, fingerprint: str | None, heads: dict[str, int], generation: int) -> bool:
        """A new encoder (a new release): load everything beside the old set, then swap."""
        try:
            if fingerprint is None:
                raise RegistryError("the registry has no active encoder")
            self.heads = self._load(fingerprint, heads, generation, self.heads.encoder)
            return True
        except (MtlRegError, OSError, RuntimeError, ValueError) as exc:
            self.swaps["*"] = SwapRecord(error=f"reload onto encoder {fingerprint}: {exc}")
            self.heads = HeadSet(self.heads.model, self.heads.manifests, generation)
            return False

    def status(self) -> list[dict[str, Any]]:
        current = self.heads
        rows = []
        for task, manifest in sorted(current.manifests.items()):
            swap = self.swaps.get(task)
            rows.append(
                {
                    "task": task,
                    "version": manifest.version,
                    "head_type": manifest.head_type,
                    "encoder_fingerprint": manifest.encoder_fingerprint,
                    "state": "serving" if not swap or not swap.error else "serving-previous",
                    "last_swap_error": swap.error if swap else None,
                    "wanted_version": swap.wanted if swap else manifest.version,
                }
            )
        return rows


class RegistryWatcher:
    """Polls the active pointers and calls `Runtime.sync` when they change."""

    def __init__(self, runtime: Runtime, interval: float = 0.2) -> None:
        self.runtime = runtime
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="registry-watcher", daemon=True)

    def start(self) -> RegistryWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.runtime.registry.active_path.stat()
            return st.st_mtime_ns, st.st_ino
        except FileNotFoundError:
            return None

    def _loop(self) -> None:
        seen = self._stamp()
        while not self._stop.wait(self.interval):
            stamp = self._stamp()
            if stamp != seen:
                seen = stamp
                try:
                    self.runtime.sync()
                except Exception as exc:  # keep watching whatever one sync did
                    self.runtime.swaps["*"] = SwapRecord(error=f"sync failed: {exc}")
