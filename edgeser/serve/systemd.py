"""systemd readiness and watchdog notifications (``Type=notify``, ``WatchdogSec=``).

Active only when systemd set ``NOTIFY_SOCKET``; the ``sdnotify`` library (the ``serve`` extra)
is imported only then. The server sends ``READY=1`` once it listens with the model loaded,
``WATCHDOG=1`` every half ``WATCHDOG_USEC`` while inference is not stuck, ``RELOADING=1`` /
``READY=1`` around a reload (with ``MONOTONIC_USEC`` for ``Type=notify-reload``) and
``STOPPING=1`` when it drains; ``STATUS=`` says what it serves.
"""

from __future__ import annotations

import os
import time

INSTALL_HINT = "pip install 'edgeser[serve]'"


class NotifierMissing(Exception):
    """NOTIFY_SOCKET is set but the library is not installed (one sentence)."""


class Notifier:
    def __init__(self, sender, watchdog_interval_s: float | None):
        self._sender = sender
        self.watchdog_interval_s = watchdog_interval_s
        self._next_ping = time.monotonic()

    @classmethod
    def from_environment(cls) -> "Notifier | None":
        """A notifier when running under systemd (NOTIFY_SOCKET set), else None."""
        if not os.environ.get("NOTIFY_SOCKET"):
            return None
        try:
            import sdnotify
        except ImportError:
            raise NotifierMissing(
                "NOTIFY_SOCKET is set (a systemd notify service) but the sd_notify library is "
                f"not installed; {INSTALL_HINT}.") from None
        interval = None
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            interval = int(usec) / 1e6 / 2
        return cls(sdnotify.SystemdNotifier(), interval)

    def _send(self, state: str) -> None:
        self._sender.notify(state)

    def ready(self, status: str = "") -> None:
        self._send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def watchdog_due(self) -> bool:
        return self.watchdog_interval_s is not None and time.monotonic() >= self._next_ping

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")
        self._next_ping = time.monotonic() + (self.watchdog_interval_s or 0)
