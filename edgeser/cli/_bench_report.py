"""The human report of ``edgeser bench``: every line names the device that ran, and carries the
fallback marker when a fallback replaced the device asked for."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text


def _line(text: str, mark: str) -> str:
    return text + mark


def print_report(report, console: Console | None = None) -> None:
    if console is None:
        console = Console(highlight=False, soft_wrap=True)  # report lines never wrap
        if not console.is_terminal:
            console = Console(highlight=False, soft_wrap=True, width=200)
    mark = f"  [fallback: {report.requested} was asked for]" if report.fallback else ""
    m = report.machine
    lines = [
        f"bundle     {report.bundle} ({report.model_id}, {report.precision}, "
        f"{report.model_bytes / 2**20:.1f} MiB)",
        f"device     {report.device}; ran on {', '.join(report.providers)}; "
        f"{report.threads} threads",
        f"machine    {m['cpu']}, {m['cores']} cores, {m['platform']}",
        f"versions   python {m['python']}, onnxruntime {m['onnxruntime']}, numpy {m['numpy']}, "
        f"edgeser {m['edgeser']} (frontend {m['frontend']}), {m['date_utc']} UTC",
    ]
    if "jetson" in m:
        lines.append(f"jetson     {m['jetson']}")
    if report.tuning:
        lines.append(f"tuning     {report.tuning}")
    if report.fallback:
        lines.insert(0, f"fallback   {report.fallback}")
    for line in lines:
        console.print(_line(line, mark), markup=False)

    table = Table(title=None)
    for column in ("window s", "runs", "p50 ms", "p90 ms", "p99 ms", "max ms", "RTF",
                   "win/s b1", "best batch", "win/s best", "frontend", "device"):
        table.add_column(column, justify="right" if column != "device" else "left",
                         overflow="fold")
    for w in report.windows:
        lat = w.latency
        table.add_row(
            f"{w.window_s:g}", str(lat.runs), f"{lat.p50_ms:.1f}", f"{lat.p90_ms:.1f}",
            "-" if lat.p99_ms is None else f"{lat.p99_ms:.1f}", f"{lat.max_ms:.1f}",
            f"{w.real_time_factor:.3f}", f"{w.windows_per_s:.2f}", str(w.best_batch),
            f"{w.best_windows_per_s:.2f}", f"{100 * w.frontend_share:.1f}%",
            Text(report.device),  # Text: the label's brackets are not markup
        )
    console.print(table)
    c = report.cold_start
    if c is not None:
        console.print(_line(
            f"cold start imports {c.imports_s:.2f} s + session {c.session_s:.2f} s + first window "
            f"{c.first_inference_s:.2f} s = {c.total_s:.2f} s; RSS {c.rss_after_imports_mb:.0f} MB "
            f"after imports, {c.rss_after_session_mb:.0f} MB after session, peak "
            f"{c.peak_rss_mb:.0f} MB", mark), markup=False)
    console.print(_line(f"memory     peak RSS of this run {report.peak_rss_mb:.0f} MB; model "
                        f"file {report.model_bytes / 2**20:.1f} MiB", mark), markup=False)
    console.print(_line("p99 needs 1000 runs (use --runs 1000); RTF = p50 latency / window "
                        "length; frontend = decode + resample + normalise share per second of "
                        "audio at the bundle's hop", mark), markup=False)
