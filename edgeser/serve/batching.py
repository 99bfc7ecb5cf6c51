"""The inference scheduler: windows of equal length from different streams in one model call.

Each stream runs in its own worker thread and calls ``run(x)`` (``x`` is ``[rows, samples]``,
prepared windows of one length) from inside :meth:`edgeser.streaming.DetectionStream.feed`; the
call blocks until its rows are inferred. One scheduler thread per loaded model takes the oldest
request, adds the waiting requests of the same length (oldest first) up to ``max_batch`` rows,
runs them as one batch and hands each caller its rows.

It waits for companions only where one can come: a worker announces with :meth:`busy` that it is
inside ``feed``/``close``. When every busy worker already waits in the queue, nobody else can
submit soon and the batch runs at once (a lone stream never waits); otherwise the scheduler waits
at most ``wait_s`` (the latency budget, ``--batch-wait-ms``) for the busy ones. Under light load
batches are therefore single windows at the lowest latency; under load, when windows queue up
behind a running inference call, they are grouped and the per-call overhead is shared.

A window's result does not depend on its batch companions for the runtime's recipes (FP32, FP16,
blockwise INT8, static INT8); dynamic-INT8 bundles compute one activation scale per call and do
(see the README).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from typing import Callable, Iterator

import numpy as np

from edgeser.errors import DetectionError

RunFn = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


class _Request:
    __slots__ = ("x", "t", "done", "result", "error")

    def __init__(self, x: np.ndarray):
        self.x = x
        self.t = time.monotonic()
        self.done = threading.Event()
        self.result: tuple[np.ndarray, np.ndarray] | None = None
        self.error: BaseException | None = None

    @property
    def rows(self) -> int:
        return self.x.shape[0]

    @property
    def length(self) -> int:
        return self.x.shape[1]


class Batcher:
    """Groups ``run`` calls from several threads into batched calls of ``run_batch``."""

    def __init__(self, run_batch: RunFn, *, max_batch: int = 8, wait_s: float = 0.005,
                 name: str = "edgeser-batcher"):
        self._run = run_batch
        self.max_batch = max(1, int(max_batch))
        self.wait_s = max(0.0, float(wait_s))
        self._cond = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._busy = 0
        self._stopping = False
        self._running_since: float | None = None
        # Counters (read under no lock: plain ints, updated by the scheduler thread only).
        self.calls = 0
        self.rows = 0
        self.max_rows = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # -- the callers' side ---------------------------------------------------------------------

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Wrap a stream's ``feed``/``close``: the scheduler may wait for its windows."""
        with self._cond:
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(logits, embedding)`` for the rows of ``x``, inferred in some batch."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] == 0:
            raise DetectionError(f"a batch must be [rows, samples], got shape {x.shape}.")
        request = _Request(x)
        with self._cond:
            if self._stopping:
                raise DetectionError("the model was unloaded while a stream was using it.")
            self._queue.append(request)
            self._cond.notify_all()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    # -- state ---------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stuck_for(self) -> float:
        """Seconds the current inference call has been running (0 when idle)."""
        since = self._running_since
        return 0.0 if since is None else time.monotonic() - since

    def stop(self, timeout: float | None = None) -> None:
        """Finish the queued requests, then end the scheduler thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- the scheduler -------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                group = self._collect()
            self._execute(group)

    def _collect(self) -> list[_Request]:
        """Under the lock: the batch to run now (waiting within the budget for companions)."""
        first = self._queue[0]
        deadline = first.t + self.wait_s
        while True:
            group, rows = self._same_length(first.length)
            if rows >= self.max_batch or len(self._queue) >= self._busy or self._stopping:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        for request in group:
            self._queue.remove(request)
        return group

    def _same_length(self, length: int) -> tuple[list[_Request], int]:
        group: list[_Request] = []
        rows = 0
        for request in self._queue:
            if request.length != length:
                continue
            if group and rows + request.rows > self.max_batch:
                break
            group.append(request)
            rows += request.rows
        return group, rows

    def _execute(self, group: list[_Request]) -> None:
        x = group[0].x if len(group) == 1 else np.concatenate([r.x for r in group])
        self._running_since = time.monotonic()
        try:
            logits, embedding = self._run(x)
        except BaseException as err:  # handed to every caller; the scheduler carries on
            for request in group:
                request.error = err
                request.done.set()
            return
        finally:
            self._running_since = None
        self.calls += 1
        self.rows += x.shape[0]
        self.max_rows = max(self.max_rows, x.shape[0])
        start = 0
        for request in group:
            stop = start + request.rows
            request.result = (logits[start:stop], embedding[start:stop])
            request.done.set()
            start = stop
