"""Archive runs on Ray (``edgeser detect --engine ray``, ``edgeser.distributed``): the same
records as single-process ``detect``, failures as rows, a killed worker's files written exactly
once, ``--resume``, and one sentence for every input or setting that cannot be used.

One local Ray cluster on loopback (2 CPUs) serves the module. Its workers run a setup hook that
makes any file named ``crash-once*`` kill its worker process the first time it is scored (a
marker file remembers it), so the fault is a real worker death that Ray has to recover from.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from signals import speech_like

# Ray reads this on import: the test cluster (and the CLI runs that join it) stay on loopback.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "edgeser[ray]")')
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
sf = pytest.importorskip("soundfile")

import edgeser.distributed as ed  # noqa: E402
from edgeser.detector import DetectionOptions, Detector  # noqa: E402
from edgeser.distributed.writer import OutputError  # noqa: E402
from edgeser.formats import open_writer, write_result  # noqa: E402

TIMEOUT_S = 180
LOW_THRESHOLD = 0.01  # laughter: low enough that the voiced parts are events
CRASH_PREFIX = "crash-once"


# ------------------------------------------------------------------------------------------
# Fixtures and helpers
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A 2-CPU Ray cluster on loopback; yields (its address, the crash marker folder)."""
    markers = tmp_path_factory.mktemp("crash-markers")

    def crash_once_hook():
        # Runs in every worker process of this test's job (not in the CLI's jobs).
        import os as os_
        from pathlib import Path as Path_

        from edgeser.detector import Detector as Detector_

        real = Detector_.detect_file

        def detect_file(self, path, *args, **kwargs):
            name = Path_(os_.fspath(path)).name
            marker = markers / f"{name}.crashed"
            if name.startswith(CRASH_PREFIX) and not marker.exists():
                marker.write_text("killed once\n")
                os_._exit(1)
            return real(self, path, *args, **kwargs)

        Detector_.detect_file = detect_file

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20,
             logging_level=logging.ERROR, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": crash_once_hook})
    ray.data.DataContext.get_current().enable_progress_bars = False
    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127."), address
    try:
        yield address, markers
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def dimensional(tiny_bundles):
    return tiny_bundles("dimensional")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Six short speech-like clips (one at 48 kHz stereo, one in a subfolder) and a file that
    is not audio."""
    folder = tmp_path_factory.mktemp("calls")
    (folder / "day2").mkdir()
    for k in range(5):
        target = folder / ("day2" if k == 4 else ".") / f"call{k}.wav"
        sf.write(target, speech_like(2.0 + 0.7 * k, seed=k), 16000)
    sf.write(folder / "call5.wav", speech_like(3.0, rate_hz=48000, channels=2, seed=5), 48000)
    (folder / "broken.wav").write_bytes(b"RIFF, but not really audio")
    return folder


def local_records(bundle: Path, paths: list[Path], **settings) -> dict[str, list[dict]]:
    """What single-process detect --format jsonl writes for ``paths``, by source."""
    import io

    from edgeser.errors import EdgeserError

    detector = Detector.load(bundle, threads=1, **settings)
    out = io.StringIO()
    writer = open_writer("jsonl", out, detector.run_info)
    for path in paths:
        try:
            write_result(writer, detector.detect_file(path))
        except EdgeserError as err:
            writer.failure(str(path), str(err))
    return by_source(out.getvalue().splitlines()[1:])


def by_source(lines) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for line in lines:
        record = json.loads(line)
        grouped.setdefault(record["source"], []).append(record)
    return grouped


def partition_lines(out: Path) -> list[str]:
    return [line for part in sorted(out.glob("part-*.jsonl"))
            for line in part.read_text().splitlines()]


def manifest_sources(out: Path) -> Counter:
    return Counter(f["source"] for m in sorted((out / "manifest").glob("*.json"))
                   for f in json.loads(m.read_text())["files"])


def audio_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.wav"))


def cli(*args: str, home: Path, prelude: str = "pass") -> subprocess.CompletedProcess:
    """``python -m edgeser ARGS`` (after ``prelude``, Python run first in the same process)."""
    code = (f"import runpy, sys; {prelude}; sys.argv = ['edgeser'] + {list(args)!r}; "
            "runpy.run_module('edgeser', run_name='__main__')")
    env = dict(os.environ, EDGESER_HOME=str(home))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)


def one_sentence(result: subprocess.CompletedProcess, code: int, *words: str) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("edgeser: "), result.stderr
        message = lines[0]
    else:  # Click's usage box: the sentence follows "Error:" (possibly wrapped)
        message = " ".join(" ".join(line.strip("│╭╰─ ") for line in lines).split())
    for word in words:
        assert word in message, (word, message)
    return message


# ------------------------------------------------------------------------------------------
# Same records as single-process detect
# ------------------------------------------------------------------------------------------


def test_cli_archive_run_writes_the_records_of_single_process_detect(cluster, dimensional,
                                                                     clips, tmp_path):
    """`detect FOLDER --engine ray -f jsonl -o OUT` and `detect FOLDER -f jsonl` on the same
    files: the same run header and, file by file, the same records; the bad file is a failure
    row (and the failures table), the others are scored, the exit code is 1 as for detect."""
    address, _ = cluster
    out = tmp_path / "results"
    ray_run = cli("detect", str(clips), "--engine", "ray", "--address", address, "--actors", "2",
                  "-f", "jsonl", "-o", str(out), "-m", str(dimensional), home=tmp_path)
    local = cli("detect", str(clips), "-f", "jsonl", "-m", str(dimensional), home=tmp_path)
    assert ray_run.returncode == local.returncode == 1, (ray_run.stderr, local.stderr)
    assert "Traceback" not in ray_run.stderr
    broken = str(clips / "broken.wav")
    assert f"edgeser: {broken}: " in ray_run.stderr
    assert "scored 7 files" in ray_run.stderr
    assert f"1 of 7 inputs failed; {out / 'failures.jsonl'} lists them." in ray_run.stderr

    expected = local.stdout.splitlines()
    assert (out / "run.json").read_text() == expected[0] + "\n"
    written = by_source(partition_lines(out))
    assert written == by_source(expected[1:])
    assert len(written) == 7 and [r["type"] for r in written[broken]] == ["failure"]
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert failures == written[broken]
    assert manifest_sources(out) == Counter({source: 1 for source in written})


def test_parquet_tables_hold_the_jsonl_records(cluster, tiny_bundles, clips, tmp_path):
    """--format parquet: one table per record type, whose rows are the JSONL records (laughter,
    so events are in it too)."""
    bundle = tiny_bundles("laughter")
    summary = ed.write(clips, tmp_path / "pq", model=bundle, fmt="parquet", actors=2,
                       options=DetectionOptions(threshold=LOW_THRESHOLD))
    assert summary.files == 7
    assert [source for source, _ in summary.failures] == [str(clips / "broken.wav")]
    expected = local_records(bundle, audio_in(clips), threshold=LOW_THRESHOLD)
    rows: dict[str, list[dict]] = {}
    for kind in ("window", "event", "file", "failure"):
        for part in sorted((tmp_path / "pq" / kind).glob("part-*.parquet")):
            for row in pq.read_table(part).to_pylist():
                rows.setdefault(row["source"], []).append({"type": kind, **row})
    assert any(r["type"] == "event" for rs in rows.values() for r in rs)
    order = {"window": 0, "event": 1, "file": 2, "failure": 3}
    for source, records in expected.items():
        key = lambda r: (order[r["type"]], r.get("index", 0), r.get("start_sample", 0))  # noqa
        assert sorted(rows[source], key=key) == sorted(records, key=key), source
    failures = pq.read_table(tmp_path / "pq" / "failures.parquet").to_pylist()
    assert [f["source"] for f in failures] == [str(clips / "broken.wav")]


def test_python_api_returns_a_ray_dataset_from_folders_lists_and_datasets(cluster, dimensional,
                                                                           clips, tmp_path):
    """edgeser.distributed.detect: one result row per input, whatever the inputs are given as."""
    files = audio_in(clips)
    listing = tmp_path / "calls.txt"
    listing.write_text("# two calls and a missing one\n"
                       f"{files[0]}\n\n{os.path.relpath(files[1], tmp_path)}\nmissing.wav\n")
    expected = local_records(dimensional, files)

    from_list = ed.detect([listing, str(files[0])], dimensional, actors=1)  # files[0] twice
    assert isinstance(from_list, ray.data.Dataset)
    listed = from_list.take_all()
    rows = {r["source"]: r for r in listed}
    assert len(listed) == len(rows) == 3
    assert set(rows) == {str(files[0]), str(tmp_path / os.path.relpath(files[1], tmp_path)),
                         str(tmp_path / "missing.wav")}
    missing = rows[str(tmp_path / "missing.wav")]
    assert "missing.wav" in missing["error"] and missing["duration_s"] is None
    assert by_source(rows[str(files[0])]["records"].splitlines()) == \
        {str(files[0]): expected[str(files[0])]}

    paths = ray.data.from_items([{"path": str(p)} for p in files])
    rows = {r["source"]: r for r in ed.detect(paths, dimensional, actors=1).take_all()}
    assert {s: by_source(r["records"].splitlines())[s] for s, r in rows.items()} == expected
    assert rows[str(clips / "broken.wav")]["error"].startswith(str(clips / "broken.wav"))

    with pytest.raises(ed.DistributedError, match="'path' column"):
        ed.detect(ray.data.from_items([{"file": "a.wav"}]), dimensional)


# ------------------------------------------------------------------------------------------
# Fault tolerance and resume
# ------------------------------------------------------------------------------------------


def test_a_killed_worker_s_files_are_retried_and_written_once(cluster, dimensional, tmp_path):
    """A worker dies (os._exit) on its batch: Ray restarts it and runs the batch again; every
    file is in the output exactly once, with the records of single-process detect."""
    _, markers = cluster
    folder = tmp_path / "calls"
    folder.mkdir()
    names = ["a.wav", "b.wav", f"{CRASH_PREFIX}-c.wav", "d.wav", "e.wav", "f.wav"]
    for k, name in enumerate(names):
        sf.write(folder / name, speech_like(1.5 + 0.5 * k, seed=10 + k), 16000)
    out = tmp_path / "results"
    summary = ed.write(folder, out, model=dimensional, actors=2, files_per_partition=2)
    assert (markers / f"{CRASH_PREFIX}-c.wav.crashed").exists(), "the worker was never killed"
    assert summary.files == 6 and not summary.failures
    written = by_source(partition_lines(out))
    assert written == local_records(dimensional, audio_in(folder))
    file_records = Counter(r["source"] for rs in written.values() for r in rs if r["type"] == "file")
    assert file_records == Counter({str(folder / n): 1 for n in names})
    assert manifest_sources(out) == file_records
    assert not list(out.rglob("*.tmp"))


def test_resume_skips_written_files_and_drops_unfinished_partitions(cluster, dimensional, clips,
                                                                    tmp_path):
    files = audio_in(clips)
    out = tmp_path / "results"
    first = tmp_path / "first.txt"
    first.write_text("".join(f"{p}\n" for p in files[:3]))
    ed.write(first, out, model=dimensional, actors=2)
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.jsonl")}
    (out / "part-0123456789abcdef0000.jsonl").write_text('{"type":"file"}\n')  # no manifest

    with pytest.raises(OutputError, match="--resume"):
        ed.write(clips, out, model=dimensional)
    with pytest.raises(OutputError, match="another model"):
        ed.write(clips, out, model=dimensional, resume=True,
                 options=DetectionOptions(hop_s=0.5))

    summary = ed.write([str(p) for p in files], out, model=dimensional, actors=2, resume=True)
    assert summary.skipped == 3 and summary.files == len(files) - 3
    assert not (out / "part-0123456789abcdef0000.jsonl").exists()
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.jsonl")
            if p.name in kept} == kept
    assert by_source(partition_lines(out)) == local_records(dimensional, files)
    assert manifest_sources(out) == Counter({str(p): 1 for p in files})
    again = ed.write([str(p) for p in files], out, model=dimensional, resume=True)
    assert again.files == 0 and again.skipped == len(files)


# ------------------------------------------------------------------------------------------
# Bad inputs and usage
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["-", "--engine", "ray", "-o", "out"], ["stdin", "--stream"]),
    (["x.wav", "--engine", "ray", "--stream", "-o", "out"], ["stdin", "--stream"]),
    (["x.wav", "--engine", "ray", "-f", "csv", "-o", "out"], ["jsonl or parquet", "csv"]),
    (["x.wav", "--engine", "ray"], ["-o FOLDER"]),
    (["x.wav", "--engine", "ray", "-o", "out", "--threads", "2"], ["--threads-per-actor"]),
    (["x.wav", "--actors", "2", "--resume"], ["--actors, --resume", "--engine ray"]),
    (["x.wav", "--engine", "spark", "-o", "out"], ["'spark'", "local, ray"]),
])
def test_usage_errors_are_one_sentence(args, words, tmp_path):
    one_sentence(cli("detect", *args, home=tmp_path), 2, *words)


def test_bad_actor_counts_are_refused_before_anything_is_written(dimensional, clips, tmp_path):
    for settings in ({"actors": 0}, {"threads_per_actor": 0}, {"actors": True}):
        with pytest.raises(ed.DistributedError, match="must be a positive integer"):
            ed.write(clips, tmp_path / "out", model=dimensional, **settings)
    assert not (tmp_path / "out").exists()


def test_parquet_refuses_a_record_field_it_has_no_column_for(dimensional):
    from edgeser.distributed.parquet import SchemaError, tables

    run = Detector.load(dimensional, threads=1).run_info
    line = json.dumps({"type": "failure", "source": "a.wav", "error": "x.", "retries": 1})
    with pytest.raises(SchemaError, match="'retries'; write --format jsonl"):
        tables(line + "\n", run)


def test_a_missing_folder_is_one_sentence(dimensional, tmp_path):
    missing = tmp_path / "no-such-archive"
    result = cli("detect", str(missing), "--engine", "ray", "-o", str(tmp_path / "out"), "-m",
                 str(dimensional), home=tmp_path)
    one_sentence(result, 1, str(missing), "no such file or folder")
    assert not (tmp_path / "out").exists()


def test_a_list_that_names_no_files_is_one_sentence(dimensional, tmp_path):
    listing = tmp_path / "calls.txt"
    listing.write_text("# nothing yet\n\n")
    result = cli("detect", str(listing), "--engine", "ray", "-o", str(tmp_path / "out"), "-m",
                 str(dimensional), home=tmp_path)
    one_sentence(result, 1, str(listing), "names no files")


def test_without_ray_the_engine_says_what_to_install(clips, tmp_path):
    result = cli("detect", str(clips), "--engine", "ray", "-o", str(tmp_path / "out"),
                 home=tmp_path, prelude="sys.modules['ray'] = None")
    one_sentence(result, 1, 'pip install "edgeser[ray]"')


def test_ray_is_imported_only_for_archive_runs():
    code = ("import sys, edgeser.distributed, edgeser.cli; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT_S)
