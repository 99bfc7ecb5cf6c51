"""The bounded queues between a connection's threads: records out (:class:`OutQueue`) and a
stream's audio in (:class:`InputQueue`, with its overflow policy). Every wait has a short tick so
a blocked thread notices a dead connection or a drain."""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable

TICK_S = 0.25
# Records are coalesced into writes of up to this many bytes.
WRITE_BYTES = 64 * 1024


class OutQueue:
    """A connection's outgoing records, at most ``limit`` bytes (one record always fits)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._cond = threading.Condition()
        self._items: collections.deque[tuple[bytes, float | None]] = collections.deque()
        self._size = 0
        self._finished = False
        self.dead = False

    def put(self, data: bytes, t0: float | None = None) -> bool:
        """Queue a record, waiting for room; False once the connection is dead."""
        with self._cond:
            while self._size and self._size + len(data) > self.limit and not self.dead:
                self._cond.wait(TICK_S)
            if self.dead:
                return False
            self._items.append((data, t0))
            self._size += len(data)
            self._cond.notify_all()
            return True

    def take(self) -> list[tuple[bytes, float | None]] | None:
        """Queued records (up to WRITE_BYTES); [] after a tick with nothing; None when finished
        and empty, or dead."""
        with self._cond:
            if not self._items and not self._finished and not self.dead:
                self._cond.wait(TICK_S)
            if self.dead or (not self._items and self._finished):
                return None
            out, size = [], 0
            while self._items and (not out or size + len(self._items[0][0]) <= WRITE_BYTES):
                item = self._items.popleft()
                out.append(item)
                size += len(item[0])
            self._size -= size
            self._cond.notify_all()
            return out

    def finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def kill(self) -> None:
        with self._cond:
            self.dead = True
            self._items.clear()
            self._size = 0
            self._cond.notify_all()


class InputQueue:
    """A stream's queued audio (whole frames), at most ``limit`` bytes, with its overflow policy:
    ``block`` waits for room, ``drop`` discards the oldest queued audio and counts it."""

    def __init__(self, limit: int, policy: str):
        self.limit, self.policy = limit, policy
        self._cond = threading.Condition()
        self._items: collections.deque[Any] = collections.deque()
        self._size = 0
        self._closed = False
        self._dropped = 0  # bytes dropped since take_dropped

    def put_audio(self, data: bytes, t0: float, stop: Callable[[], bool]) -> int:
        """Queue ``data``; returns the bytes dropped to make room (policy ``drop``). Gives up
        (discarding ``data``) when the queue is closed or ``stop()`` becomes true."""
        dropped = 0
        with self._cond:
            if self.policy == "drop":
                while self._size and self._size + len(data) > self.limit:
                    index = next((i for i, item in enumerate(self._items)
                                  if isinstance(item, tuple)), None)
                    if index is None:
                        break
                    old = self._items[index][0]
                    del self._items[index]
                    self._size -= len(old)
                    dropped += len(old)
                self._dropped += dropped
            else:
                while self._size and self._size + len(data) > self.limit and not self._closed:
                    if stop():
                        return 0
                    self._cond.wait(TICK_S)
            if self._closed:
                return dropped
            self._items.append((data, t0))
            self._size += len(data)
            self._cond.notify_all()
        return dropped

    def put_control(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def get(self) -> tuple[Any, int]:
        """The next item and the bytes dropped (before it) since the last call."""
        with self._cond:
            while not self._items:
                self._cond.wait()
            item = self._items.popleft()
            if isinstance(item, tuple):
                self._size -= len(item[0])
                self._cond.notify_all()
            dropped, self._dropped = self._dropped, 0
            return item, dropped

    def close(self) -> None:
        """No more audio is taken (the stream ended or failed)."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._size = 0
            self._cond.notify_all()
