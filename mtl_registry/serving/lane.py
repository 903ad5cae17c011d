"""One inference lane for the server: requests that arrive together share one model call.

On a few cores, requests that each run the model at once oversubscribe them (every
backend has its own intra-op thread pool). The lane runs one batch at a time on all the
cores; whatever arrives while a batch runs is merged into the next one, which costs less
per text than running the texts one by one.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from mtl_registry.runtime import Runtime

Results = list[dict[str, Any]]


@dataclass
class _Job:
    texts: list[str]
    future: Future[Results] = field(default_factory=Future)


class InferenceLane:
    """A worker thread that owns every call into the model while the server runs."""

    def __init__(self, runtime: Runtime, max_texts: int = 64) -> None:
        self.runtime = runtime
        self.max_texts = max_texts
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._carry: _Job | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="inference-lane", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str]) -> Future[Results]:
        """Queue texts; the future gets one result per text, all from one head set."""
        job = _Job(list(texts))
        self._jobs.put(job)
        return job.future

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def _next_batch(self) -> list[_Job] | None:
        """The oldest waiting job, plus any others queued behind it that fit in max_texts."""
        if self._carry is not None:
            first, self._carry = self._carry, None
        elif self._stopping:
            return None
        else:
            first = self._jobs.get()
        if first is None:
            return None
        batch, size = [first], len(first.texts)
        while size < self.max_texts:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:  # close(): finish what is queued before it, then stop
                self._stopping = True
                break
            if size + len(job.texts) > self.max_texts:
                self._carry = job
                break
            batch.append(job)
            size += len(job.texts)
        return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        try:  # one call, so one head set and one version set for the whole batch
            results = self.runtime.predict([t for job in batch for t in job.texts])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            for job in batch:  # one bad request must not fail the others merged with it
                self._run([job])
            return
        start = 0
        for job in batch:
            job.future.set_result(results[start : start + len(job.texts)])
            start += len(job.texts)
