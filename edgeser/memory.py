"""Resident memory of this process, for benchmarks and reports (Linux ``/proc``; elsewhere the
peak from ``getrusage`` and NaN for the current value)."""

from __future__ import annotations

__all__ = ["rss_mb", "peak_rss_mb"]


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Resident memory now, in MB (2**20 bytes)."""
    value = _status_mb("VmRSS")
    return float("nan") if value is None else value


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    value = _status_mb("VmHWM")
    if value is None:
        import resource
        import sys

        # ru_maxrss is KiB on Linux, bytes on macOS.
        scale = 2**20 if sys.platform == "darwin" else 1024
        value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
    return value
