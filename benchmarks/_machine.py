"""Shared helpers for the benchmarks in this folder: what machine a figure came from, thread
pinning, and rewriting one marked section of RESULTS.md.

Import this module *before* numpy/scipy/onnxruntime when you call :func:`force_single_thread`:
thread pools read their environment variables once, when the library is first imported. This
module itself imports nothing heavy at import time.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import sys
import tempfile
from importlib import metadata

# Every thread-count variable the usual native runtimes read (OpenMP, BLAS flavours, numexpr,
# TBB/rayon-style pools). Reported as set/unset by machine_report().
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "TBB_NUM_THREADS",
)

# ISA features that matter for the kernels we benchmark (x86 names, then Arm names).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
             "avx_vnni", "avx512_bf16", "amx_tile", "neon", "asimd", "asimddp", "dotprod",
             "sve", "sve2", "i8mm", "bf16")

DEFAULT_PACKAGES = ("numpy", "scipy", "soxr", "onnxruntime", "edgeser")


def force_single_thread() -> None:
    """Pin every known thread pool to one thread (call before importing numpy/scipy)."""
    for name in THREAD_ENV_VARS:
        os.environ[name] = "1"


def _cpuinfo() -> dict[str, str]:
    """First-processor fields of /proc/cpuinfo (empty off Linux)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    info = _cpuinfo()
    for key in ("model name", "cpu model", "hardware", "processor"):
        value = info.get(key, "")
        if value and not value.isdigit():
            return value
    if "cpu implementer" in info:  # Arm without a model-name line
        return f"Arm implementer {info['cpu implementer']} part {info.get('cpu part', '?')}"
    return platform.processor() or platform.machine() or "unknown"


def isa_flags() -> list[str]:
    """The interesting ISA flags this CPU advertises (x86 'flags' or Arm 'Features')."""
    info = _cpuinfo()
    have = set((info.get("flags", "") + " " + info.get("features", "")).split())
    found = [flag for flag in ISA_FLAGS if flag in have]
    # Arm spells the dot-product extension 'asimddp'; report it under its common name too.
    if "asimddp" in have and "dotprod" not in found:
        found.append("dotprod")
    if platform.machine() in ("aarch64", "arm64") and "neon" not in found and "asimd" in have:
        found.append("neon")
    return found


def core_count() -> str:
    logical = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = logical
    return f"{logical} logical, {usable} usable by this process"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def edgeser_backend() -> str:
    try:
        from edgeser import frontend  # imports numpy: call after force_single_thread()
    except Exception as exc:  # pragma: no cover - report, never fail a benchmark on it
        return f"unavailable ({type(exc).__name__}: {exc})"
    backend = frontend.BACKEND
    if backend == "native":  # fingerprint the compiled module: it can be rebuilt between runs
        import hashlib
        from importlib.util import find_spec

        spec = find_spec("edgeser._native")
        if spec is not None and spec.origin and os.path.exists(spec.origin):
            with open(spec.origin, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()[:12]
            built = _dt.datetime.fromtimestamp(os.path.getmtime(spec.origin), _dt.timezone.utc)
            backend += (f" ({os.path.basename(spec.origin)}, sha256 {digest}, "
                        f"built {built.strftime('%Y-%m-%d %H:%M:%S')} UTC)")
    return backend


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine_report(packages: tuple[str, ...] = DEFAULT_PACKAGES) -> str:
    """A plain-text, multi-line description of this machine and software stack."""
    lines = [
        f"date (UTC):     {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S')}",
        f"cpu:            {cpu_model()}",
        f"cores:          {core_count()}",
        f"isa flags:      {' '.join(isa_flags()) or 'none of interest found'}",
        f"load average:   {load_average()} (1/5/15 min, at report time)",
        f"os:             {platform.platform()}",
        f"python:         {platform.python_version()} ({platform.python_implementation()}, "
        f"{sys.executable})",
    ]
    for name in packages:
        lines.append(f"{name + ':':<16}{package_version(name)}")
    if "edgeser" in packages:
        lines.append(f"edgeser frontend backend: {edgeser_backend()}")
    env = ", ".join(f"{k}={os.environ[k]}" if k in os.environ else f"{k} unset"
                    for k in THREAD_ENV_VARS)
    lines.append(f"thread env:     {env}")
    return "\n".join(lines)


RESULTS_TITLE = "# edgeser benchmark results"
RESULTS_INTRO = (
    "Every figure in this file is produced by a committed script in `benchmarks/`, named beside "
    "it together with the exact command line and a report of the machine it ran on; a section "
    "is rewritten only by rerunning its script with `--write-results`, never by hand."
)


def replace_section(path: str, name: str, body: str) -> None:
    """Replace the text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path``
    (creating the file, with title and intro, or appending the markers when missing) and write
    the file atomically (temporary file in the same folder, then os.replace)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        text = f"{RESULTS_TITLE}\n\n{RESULTS_INTRO}\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".results-", suffix=".md.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        os.chmod(tmp, mode)  # mkstemp makes 0600; keep the usual mode of a tracked file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


if __name__ == "__main__":
    print(machine_report())
