"""The ``--format`` writers, on results built by hand (no model needed)."""

from __future__ import annotations

import csv
import io
import json
import re
from fractions import Fraction

import pytest

import edgeser
from edgeser.formats import FORMATS, LABEL_FORMATS, label_suffix, open_writer, write_result
from edgeser.formats._common import seconds_text
from edgeser.results import DetectionResult, Event, RunInfo, Summary, WindowResult

DIM_LABELS = ("arousal", "dominance", "valence")
CAT_LABELS = ("angry", "happy", "neutral", "sad")


def _result(run: RunInfo, source: str, samples: int, windows, events=(), summary=None) -> DetectionResult:
    voiced = [w for w in windows if not w.silent]
    summary = summary or Summary(windows=len(windows), voiced_windows=len(voiced))
    return DetectionResult(source=source, task=run.task, labels=run.labels, rate_hz=44_100, channels=2,
                           samples=samples, window_s=run.window_s, hop_s=run.hop_s,
                           windows=tuple(windows), events=tuple(events), summary=summary,
                           threshold=run.threshold, warnings=("ended early: truncated file",))


DIM_RUN = RunInfo("org/dim", "/b/dim", "emotion-dimensional", DIM_LABELS, "regression", 1.0, 0.5, -60.0)
# Starts at sample 1 so every time has the full 7 decimals.
DIM = _result(DIM_RUN, "speech.wav", 32_001, [
    WindowResult(0, 1, 16_001, -23.5, False, dict(zip(DIM_LABELS, (0.52, 0.48, 0.61)))),
    WindowResult(1, 8_001, 24_001, -200.0, True),
    WindowResult(2, 16_001, 32_001, -20.25, False, dict(zip(DIM_LABELS, (0.7, 0.5, 0.3)))),
], summary=Summary(3, 2, dict(zip(DIM_LABELS, (0.61, 0.49, 0.455)))))

CAT_RUN = RunInfo("org/cat", "/b/cat", "emotion-categorical", CAT_LABELS, "class-logits", 1.0, 0.5, -60.0)
CAT = _result(CAT_RUN, "talk.wav", 24_000, [
    WindowResult(0, 0, 16_000, -18.0, False, dict(zip(CAT_LABELS, (0.1, 0.7, 0.15, 0.05))), "happy"),
    WindowResult(1, 8_000, 24_000, -19.0, False, dict(zip(CAT_LABELS, (0.6, 0.2, 0.1, 0.1))), "angry"),
], summary=Summary(2, 2, dict(zip(CAT_LABELS, (0.35, 0.45, 0.125, 0.075))), "happy"))


def _laugh_run(label: str = "laughter") -> RunInfo:
    return RunInfo("org/laugh", "/b/laugh", "laughter", (label, "speech"), "class-logits", 1.0, 0.5, -60.0,
                   positive_label=label, threshold=0.5, operating_point="balanced", min_duration_s=0.2,
                   merge_gap_s=0.5)


def _laugh(label: str = "laughter", samples: int = 72_000) -> DetectionResult:
    p = [0.1, 0.93, 0.8, None, 0.2, 0.81, 0.3]
    windows = [WindowResult(i, 8_000 * i, 8_000 * i + 16_000, -200.0 if q is None else -20.0, q is None,
                            None if q is None else {label: q, "speech": 1 - q},
                            None if q is None else (label if q >= 0.5 else "speech"))
               for i, q in enumerate(p)]
    events = [Event(label, 8_000, 32_000, 0.93, 8_000, 24_000, 2),
              Event(label, 40_000, 64_000, 0.81, 40_000, 56_000, 1)]
    return _result(_laugh_run(label), "party.wav", samples, windows, events, Summary(7, 6, events=2, event_s=3.0))


LAUGH_RUN, LAUGH = _laugh_run(), _laugh()


def _render(fmt: str, run: RunInfo, *results: DetectionResult, failures=(), **options) -> str:
    out = io.StringIO()
    writer = open_writer(fmt, out, run, **options)
    for result in results:
        write_result(writer, result)
    for source, message in failures:
        writer.failure(source, message)
    writer.finish()
    return out.getvalue()


# -- exact times --------------------------------------------------------------------------------

@pytest.mark.parametrize("samples, text", [
    (0, "0"), (1, "0.0000625"), (16_000, "1"), (24_000, "1.5"), (16_001, "1.0000625"),
    (160_000, "10"), (Fraction(1, 2), "0.00003125"), (10**12 + 1, "62500000.0000625"),
])
def test_seconds_text_is_the_exact_shortest_decimal(samples, text):
    assert seconds_text(samples) == text
    assert Fraction(text) * 16_000 == samples


def test_times_are_exact_in_every_text_format():
    assert _render("audacity", DIM_RUN, DIM).startswith("0.0000625\t1.0000625\t")
    row = next(csv.DictReader(io.StringIO(_render("csv", DIM_RUN, DIM))))
    assert (row["start_s"], row["end_s"]) == ("0.0000625", "1.0000625")
    assert float(row["start_s"]) * 16_000 == 1
    # TextGrid points sit at window centres: (1 + 16001) / 2 samples.
    assert "number = 0.5000625\n" in _render("textgrid", DIM_RUN, DIM)


# -- json / jsonl -------------------------------------------------------------------------------

def test_json_is_one_document_with_model_files_and_failures():
    out = io.StringIO()
    writer = open_writer("json", out, LAUGH_RUN)
    writer.window("broken.wav", LAUGH.windows[0])  # a stream that broke: its window must not leak
    writer.failure("broken.wav", "decoder error")
    write_result(writer, LAUGH)
    writer.finish()
    text = out.getvalue()
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2) + "\n"
    assert doc["schema_version"] == 1 and doc["edgeser"] == edgeser.__version__
    assert doc["model"]["labels"] == ["laughter", "speech"] and doc["model"]["threshold"] == 0.5
    assert doc["failures"] == [{"source": "broken.wav", "error": "decoder error"}]
    (file,) = doc["files"]
    assert (file["source"], file["samples"], file["duration_s"]) == ("party.wav", 72_000, 4.5)
    assert file["summary"] == {"windows": 7, "voiced_windows": 6, "silent_windows": 1, "scores": None,
                               "top_label": None, "events": 2, "event_s": 3.0}
    assert file["warnings"] == ["ended early: truncated file"]
    assert [w["index"] for w in file["windows"]] == list(range(7))
    silent = file["windows"][3]
    assert silent["silent"] and silent["scores"] is None and silent["level_dbfs"] == -200.0
    assert file["events"][0] == {"label": "laughter", "start_sample": 8_000, "end_sample": 32_000,
                                 "start_s": 0.5, "end_s": 2.0, "duration_s": 1.5, "peak": 0.93,
                                 "peak_s": 1.0, "windows": 2}


def test_json_sample_indices_and_seconds_agree():
    doc = json.loads(_render("json", DIM_RUN, DIM, CAT))
    assert [f["source"] for f in doc["files"]] == ["speech.wav", "talk.wav"] and doc["failures"] == []
    for w in doc["files"][0]["windows"]:
        # The float is the nearest double to sample / 16000, so the sample index comes back from it.
        assert w["start_s"] == w["start_sample"] / 16_000 and round(w["end_s"] * 16_000) == w["end_sample"]


def test_jsonl_lines_are_typed_records_in_order():
    text = _render("jsonl", LAUGH_RUN, LAUGH, failures=[("gone.wav", "no such file")])
    records = [json.loads(line) for line in text.splitlines()]
    assert records[0] == {"type": "run", "schema_version": 1, "edgeser": edgeser.__version__,
                          "model": json.loads(_render("json", LAUGH_RUN))["model"]}
    types = [r["type"] for r in records]
    # Each event right after its last window (stop 32000 -> window 2; 64000 -> window 6).
    assert types == ["run", "window", "window", "window", "event", "window", "window", "window",
                     "window", "event", "file", "failure"]
    assert all(r["source"] == "party.wav" for r in records[1:-1])
    assert records[-2]["summary"]["events"] == 2
    assert records[-1] == {"type": "failure", "source": "gone.wav", "error": "no such file"}
    assert " " not in text.splitlines()[1]  # compact


# -- csv ----------------------------------------------------------------------------------------

def test_csv_has_one_row_per_window_and_a_column_per_label():
    rows = list(csv.DictReader(io.StringIO(_render("csv", DIM_RUN, DIM, CAT, failures=[("x.wav", "bad")]))))
    assert len(rows) == len(DIM.windows) + len(CAT.windows)
    assert list(rows[0]) == ["source", "index", "start_sample", "end_sample", "start_s", "end_s",
                             "level_dbfs", "silent", *DIM_LABELS, "top_label"]
    assert rows[0]["source"] == "speech.wav" and float(rows[0]["arousal"]) == 0.52
    assert rows[1]["silent"] == "true" and [rows[1][k] for k in DIM_LABELS] == ["", "", ""]
    assert rows[1]["level_dbfs"] == "-200.0"
    # The second file's run shares the header: its labels are not columns (one run, one model).
    cat_rows = list(csv.DictReader(io.StringIO(_render("csv", CAT_RUN, CAT))))
    assert [(r["happy"], r["top_label"]) for r in cat_rows] == [("0.7", "happy"), ("0.2", "angry")]


# -- audacity -----------------------------------------------------------------------------------

def test_audacity_laughter_labels_are_the_events():
    assert _render("audacity", LAUGH_RUN, LAUGH).splitlines() == [
        "0.5\t2\tlaughter 0.93", "2.5\t4\tlaughter 0.81"]


def test_audacity_emotion_labels_are_the_voiced_windows():
    assert _render("audacity", DIM_RUN, DIM).splitlines() == [
        "0.0000625\t1.0000625\tarousal=0.52 dominance=0.48 valence=0.61",
        "1.0000625\t2.0000625\tarousal=0.70 dominance=0.50 valence=0.30"]
    assert _render("audacity", CAT_RUN, CAT).splitlines() == ["0\t1\thappy 0.70", "0.5\t1.5\tangry 0.60"]


# -- textgrid -----------------------------------------------------------------------------------

def _praat_string(text: str) -> str:
    assert text[0] == text[-1] == '"'
    return text[1:-1].replace('""', '"')


def _parse_textgrid(text: str) -> tuple[Fraction, list[dict]]:
    """Just enough of Praat's long text format to read the tiers back."""
    assert text.startswith('File type = "ooTextFile"\nObject class = "TextGrid"\n')
    xmax = Fraction(re.search(r"^xmax = (\S+)$", text, re.M).group(1))
    tiers = []
    for item in re.split(r"^    item \[\d+\]:$", text, flags=re.M)[1:]:
        fields = dict(re.findall(r"^        (class|name|xmax) = (.*)$", item, re.M))
        intervals = [(Fraction(a), Fraction(b), _praat_string(t)) for a, b, t in re.findall(
            r"xmin = (\S+)\n\s+xmax = (\S+)\n\s+text = (\".*\")$", item, re.M)]
        points = [(Fraction(n), _praat_string(m)) for n, m in re.findall(
            r"number = (\S+)\n\s+mark = (\".*\")$", item, re.M)]
        size = re.search(r"(?:intervals|points): size = (\d+)", item).group(1)
        assert int(size) == len(intervals) + len(points)
        tiers.append({"class": _praat_string(fields["class"]), "name": _praat_string(fields["name"]),
                      "xmax": Fraction(fields["xmax"]), "intervals": intervals, "points": points})
    assert f"size = {len(tiers)}\n" in text
    return xmax, tiers


def _assert_partition(intervals, xmax):
    assert intervals[0][0] == 0 and intervals[-1][1] == xmax
    assert all(a[1] == b[0] for a, b in zip(intervals, intervals[1:]))
    assert all(start < stop for start, stop, _ in intervals)


def test_textgrid_laughter_intervals_tile_the_file():
    xmax, (events, probability) = _parse_textgrid(_render("textgrid", LAUGH_RUN, LAUGH))
    assert xmax == Fraction(9, 2) and events["xmax"] == xmax
    assert (events["class"], events["name"]) == ("IntervalTier", "laughter")
    _assert_partition(events["intervals"], xmax)
    assert [(a, b) for a, b, t in events["intervals"] if t == "laughter"] == [
        (Fraction(1, 2), 2), (Fraction(5, 2), 4)]
    assert {t for _, _, t in events["intervals"]} == {"laughter", ""}
    assert (probability["class"], probability["name"]) == ("TextTier", "laughter probability")
    assert probability["points"][:3] == [(Fraction(1, 2), "0.100"), (1, "0.930"), (Fraction(3, 2), "0.800")]
    assert len(probability["points"]) == 6  # voiced windows only


def test_textgrid_doubles_quotes_and_clips_to_the_file():
    # The last event reaches past the end of a shorter file: it is cut at xmax.
    xmax, (events, probability) = _parse_textgrid(_render("textgrid", _laugh_run('la"ugh'),
                                                          _laugh('la"ugh', samples=60_000)))
    assert 'name = "la""ugh"' in _render("textgrid", _laugh_run('la"ugh'), _laugh('la"ugh'))
    assert events["name"] == 'la"ugh' and probability["name"] == 'la"ugh probability'
    _assert_partition(events["intervals"], xmax)
    assert events["intervals"][-1] == (Fraction(5, 2), Fraction(15, 4), 'la"ugh')
    times = [t for t, _ in probability["points"]]
    assert times == sorted(set(times)) and times[-1] <= xmax


def test_textgrid_emotion_tiers():
    _, (emotion,) = _parse_textgrid(_render("textgrid", CAT_RUN, CAT))
    assert emotion["name"] == "emotion" and emotion["points"] == [(Fraction(1, 2), "happy 0.700"),
                                                                 (1, "angry 0.600")]
    _, tiers = _parse_textgrid(_render("textgrid", DIM_RUN, DIM))
    assert [t["name"] for t in tiers] == list(DIM_LABELS)
    assert [m for _, m in tiers[2]["points"]] == ["0.610", "0.300"]  # the silent window has no point


# -- table --------------------------------------------------------------------------------------

def test_table_detailed_shows_windows_scores_and_silence():
    text = _render("table", DIM_RUN, DIM)
    assert "\x1b" not in text
    assert "speech.wav: 2.0000625 s, 44100 Hz, 2 channels" in text
    for expected in (*DIM_LABELS, "0.520", "0.480", "0.610", "silent", "-23.5", "0.0000625–1.0000625",
                     "2/3 windows voiced", "mean arousal=0.610", "warning: ended early: truncated file"):
        assert expected in text
    cat = _render("table", CAT_RUN, CAT)
    assert "top" in cat and "happy" in cat and "0.700" in cat and "top happy" in cat


def test_table_detailed_laughter_shows_events_or_says_there_are_none():
    text = _render("table", LAUGH_RUN, LAUGH, failures=[("gone.wav", "no such file")])
    for expected in ("peak", "0.930", "0.810", "2 laughter events, 3 s in total", "gone.wav: failed"):
        assert expected in text
    quiet = _result(LAUGH_RUN, "quiet.wav", 16_000, [WindowResult(0, 0, 16_000, -30.0, False,
                                                                  {"laughter": 0.1, "speech": 0.9}, "speech")])
    assert "no laughter above threshold 0.5" in _render("table", LAUGH_RUN, quiet)


def test_table_for_a_folder_has_one_row_per_file_and_the_failures():
    second = _result(CAT_RUN, "b.wav", 16_000, [])
    text = _render("table", CAT_RUN, CAT, second, failures=[("c.wav", "unreadable")], detailed=False)
    lines = text.splitlines()
    rows = [line for line in lines if "warning" not in line]
    for source in ("talk.wav", "b.wav", "c.wav"):
        assert sum(source in line for line in rows) == 1
    assert "talk.wav: warning: ended early: truncated file" in lines
    assert "failed" in text and "mean score" in text
    assert "unreadable" not in text  # the sentence is said once, on stderr
    row = next(line for line in rows if "talk.wav" in line)
    assert "happy" in row and "0.450" in row and "2/2" in row
    assert "0.0000625" not in text and "silent" not in text  # nothing per window
    dim = _render("table", DIM_RUN, DIM, detailed=False)
    assert "mean valence" in dim and "0.455" in dim


def test_table_live_is_one_plain_line_per_record():
    lines = _render("table", LAUGH_RUN, LAUGH, live=True).splitlines()
    assert len(lines) == len(LAUGH.windows) + len(LAUGH.events) + 2  # + summary, warning
    assert lines[2] == "1–2 s  laughter=0.800 speech=0.200  top laughter"
    assert lines[3] == "laughter 0.5–2 s peak 0.93"
    assert lines[4] == "1.5–2.5 s  silent"
    assert lines[-2] == "party.wav: 6/7 windows voiced; 2 laughter events, 3 s in total"


# -- live, errors, write_result -----------------------------------------------------------------

class _FlushCheckingIO(io.StringIO):
    def __init__(self):
        super().__init__()
        self.flushes, self.flushed_chars = 0, 0

    def flush(self):
        self.flushes += 1
        self.flushed_chars = len(self.getvalue())


@pytest.mark.parametrize("fmt", FORMATS)
def test_live_writers_flush_every_record(fmt):
    out = _FlushCheckingIO()
    writer = open_writer(fmt, out, LAUGH_RUN, live=True)
    calls = [lambda w=w: writer.window("party.wav", w) for w in LAUGH.windows]
    calls += [lambda e=e: writer.event("party.wav", e) for e in LAUGH.events]
    calls += [lambda: writer.file_done(LAUGH.end), lambda: writer.failure("x.wav", "broken"), writer.finish]
    for call in calls:
        call()
        assert out.flushed_chars == len(out.getvalue())  # nothing written is left unflushed
    assert out.flushes >= 1 and out.getvalue()


def test_unknown_format_and_label_suffixes():
    with pytest.raises(ValueError, match="unknown format"):
        open_writer("xml", io.StringIO(), DIM_RUN)
    assert [label_suffix(f) for f in LABEL_FORMATS] == [".txt", ".TextGrid"]
    with pytest.raises(ValueError):
        label_suffix("json")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("detailed", [True, False])
def test_write_result_is_the_same_as_feeding_by_hand(fmt, detailed):
    out = io.StringIO()
    writer = open_writer(fmt, out, LAUGH_RUN, detailed=detailed)
    w = LAUGH.windows
    for record in (*w[:3], LAUGH.events[0], *w[3:], LAUGH.events[1]):
        (writer.event if isinstance(record, Event) else writer.window)("party.wav", record)
    writer.file_done(LAUGH.end)
    writer.finish()
    assert _render(fmt, LAUGH_RUN, LAUGH, detailed=detailed) == out.getvalue()
