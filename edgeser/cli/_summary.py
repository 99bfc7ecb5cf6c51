"""The table that ends ``edgeser export``: where it wrote, sizes, parity."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB" if n_bytes >= 2**20 else f"{n_bytes / 1024:.1f} KiB"


def selection_text(selection) -> str:
    """One line: the target, the FP32 time and each INT8 candidate's time and gate verdict."""
    tries = ", ".join(f"{t['recipe']} {t['latency_ms']:.0f} ms ({t['gate']})"
                      if "latency_ms" in t else f"{t['recipe']} ({t['gate']})"
                      for t in selection["tries"])
    return (f"--target {selection['target']} (built on {selection['machine']}, order "
            f"{selection['order_from']}): {tries}; FP32 {selection['fp32_latency_ms']:.0f} ms")


def export_summary(result, console: Console | None = None) -> None:
    table = Table(title=f"edgeser bundle: {result.model_id}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")
    table.add_row("written to", str(result.bundle))
    table.add_row("task", f"{result.task} ({result.family})")
    table.add_row("labels", ", ".join(result.labels))
    for name, size in sorted(result.file_bytes.items()):
        table.add_row(name, _mib(size))
    p = result.parity
    q = result.quantization
    table.add_row("precision", q.precision + (f" (--recipe {q.preset})" if q.preset else ""))
    if q.selection is not None:
        table.add_row("recipe choice", selection_text(q.selection))
    table.add_row("parity audio", f"{p['windows']} windows: {result.eval_audio}")
    table.add_row("ONNX vs PyTorch", f"max abs error logits {p['logits_max_abs_error']:.1e}, "
                  f"embedding {p['embedding_max_abs_error']:.1e}")
    gate = p.get("gate")
    if gate is not None:
        verdict = "passed" if gate["passed"] else "FAILED, written with --allow-degraded: " + "; ".join(gate["failures"])
        table.add_row("fidelity gate", f"{verdict} (CCC >= {gate['ccc_min']}, agreement >= {gate['agreement_min']:.0%})")
    if "top1_agreement" in p:
        table.add_row("top-1 agreement", f"{100 * p['top1_agreement']:.2f}% "
                      f"(max prob error {p['max_prob_error']:.1e})")
    for label, m in p.get("outputs", {}).items():
        table.add_row(f"CCC {label}", f"{m['ccc']:.6f} (max abs error {m['max_abs_error']:.1e})")
    (console or Console()).print(table)
