"""Counters and result latency of a running server, for the ``health`` record.

Everything here is bounded: counters are integers, latencies a ring of the most recent
``LATENCY_SAMPLES`` values (percentiles describe recent traffic, not the whole uptime).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import numpy as np

LATENCY_SAMPLES = 4096


class Metrics:
    """Thread-safe counters of one server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.clients_open = 0
        self.clients_total = 0
        self.clients_refused = 0
        self.streams_open = 0
        self.streams_total = 0
        self.streams_failed = 0
        self.windows = 0
        self.events = 0
        self.dropped_frames = 0
        self.dropped_bytes = 0
        self.streams_with_drops = 0
        self.slow_disconnects = 0
        self.errors: Counter[str] = Counter()
        self.reloads = 0
        self._latency = np.zeros(LATENCY_SAMPLES, dtype=np.float64)
        self._latency_n = 0

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def open_stream(self, limit: int) -> bool:
        """Count a stream as open unless ``limit`` streams already are."""
        with self._lock:
            if self.streams_open >= limit:
                return False
            self.streams_open += 1
            self.streams_total += 1
            return True

    def error(self, code: str) -> None:
        with self._lock:
            self.errors[code] += 1

    def latency(self, seconds: float) -> None:
        with self._lock:
            self._latency[self._latency_n % LATENCY_SAMPLES] = seconds
            self._latency_n += 1

    def latency_summary(self) -> dict[str, Any]:
        with self._lock:
            n = min(self._latency_n, LATENCY_SAMPLES)
            values = self._latency[:n].copy()
        if n == 0:
            return {"p50": None, "p99": None, "max": None, "samples": 0}
        p50, p99 = np.percentile(values, [50, 99])
        return {"p50": round(float(p50), 6), "p99": round(float(p99), 6),
                "max": round(float(values.max()), 6), "samples": int(n)}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "uptime_s": round(time.monotonic() - self.started, 3),
                "clients": {"open": self.clients_open, "total": self.clients_total,
                            "refused": self.clients_refused,
                            "slow_disconnects": self.slow_disconnects},
                "streams": {"open": self.streams_open, "total": self.streams_total,
                            "failed": self.streams_failed},
                "windows": self.windows,
                "events": self.events,
                "dropped": {"frames": self.dropped_frames, "bytes": self.dropped_bytes,
                            "streams": self.streams_with_drops},
                "errors": dict(sorted(self.errors.items())),
                "reloads": self.reloads,
            }
