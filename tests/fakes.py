"""Stand-ins for system files and commands, for tests of device detection."""

from __future__ import annotations

import subprocess
from pathlib import Path


def write(root: Path, rel: str, text: str) -> None:
    """Write ``text`` at ``root/rel`` (a fake system file), creating folders."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


class FakeRun:
    """``subprocess.run`` stand-in: records the command, returns ``stdout`` or raises."""

    def __init__(self, stdout: str = "", returncode: int = 0, raises: Exception | None = None):
        self.stdout, self.returncode, self.raises = stdout, returncode, raises
        self.calls: list = []

    def __call__(self, args, **kwargs):
        self.calls.append((list(args), kwargs))
        if self.raises is not None:
            raise self.raises
        return subprocess.CompletedProcess(args, self.returncode, stdout=self.stdout, stderr="")
