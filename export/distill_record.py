"""The distillation record a student carries (``config.json`` key ``edgeser_distillation``,
written by ``edgeser distill``) and what ``edgeser export`` makes of it for the bundle's manifest.

The export never calls a student faithful on the record's word alone: the record's held-out CCCs
are checked against its ``min_ccc`` again, the student's weights must be the ones the record was
written for (sha256), and a student pruned further at export (``--layers``) is no longer the one
that was measured. Any of these makes ``faithful`` false in the manifest, with the reasons in
``export_check``, and the export says so on stderr.
"""

from __future__ import annotations

import copy
import math
import sys

from edgeser.export.students import RECORD_KEY


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def check(record: dict, weights: tuple, layers: int | None) -> list:
    """Why this record does not make the student faithful (empty: it does)."""
    reasons = []
    if record.get("faithful") is not True:
        failures = record.get("failures") or []
        reasons.append("distillation marked it unfaithful"
                       + (f" ({'; '.join(map(str, failures))})" if failures else ""))
    min_ccc = _number(record.get("min_ccc"))
    heldout = record.get("heldout") if isinstance(record.get("heldout"), dict) else {}
    outputs = heldout.get("outputs") if isinstance(heldout.get("outputs"), dict) else {}
    if min_ccc is None or not outputs:
        reasons.append("the record has no held-out CCC to check")
    else:
        low = [f"{label} {_number((m or {}).get('ccc'))}" for label, m in outputs.items()
               if not isinstance(m, dict) or _number(m.get("ccc")) is None
               or _number(m.get("ccc")) < min_ccc]
        if low and record.get("faithful") is True:
            reasons.append(f"held-out CCC below {min_ccc:g} ({', '.join(low)})")
    student = record.get("student") if isinstance(record.get("student"), dict) else {}
    recorded = student.get("weights")
    actual = {w.name: w.sha256 for w in weights}
    if not isinstance(recorded, list) or {(w or {}).get("file"): (w or {}).get("sha256")
                                          for w in recorded if isinstance(w, dict)} != actual:
        reasons.append("the weights are not the ones the record was written for")
    student_layers = student.get("layers")
    if layers is not None and layers != student_layers:
        reasons.append(f"--layers {layers} prunes the measured student of {student_layers} layers")
    return reasons


def for_manifest(config: dict, weights: tuple, label: str, layers: int | None = None,
                 warn=None) -> dict | None:
    """The manifest's ``distillation`` value for a checkpoint (None when it is not a student);
    warns (stderr by default) when the student is not faithful."""
    if RECORD_KEY not in config:
        return None
    record = config[RECORD_KEY]
    if not isinstance(record, dict):
        record, reasons = {}, ["its distillation record is not a JSON object"]
    else:
        record = copy.deepcopy(record)
        reasons = check(record, weights, layers)
    record = _json_safe(record)
    record["faithful"] = not reasons
    record["export_check"] = {"faithful": not reasons, "reasons": reasons}
    if reasons:
        message = (f"{label} is a distilled student that is not faithful to its teacher: "
                   f"{'; '.join(reasons)}; the bundle records faithful=false.")
        (warn or _stderr)(message)
    return record


def _stderr(message: str) -> None:
    print(f"edgeser: warning: {message}", file=sys.stderr)
