"""``edgeser serve``: the server in a subprocess on a unix socket and on 127.0.0.1:0, driven by
the package's client and by plain stdlib sockets.

Results equal ``edgeser detect`` on the same audio; streams run concurrently on one model;
overflow policies (drop with counters, block then disconnect) keep memory bounded; vanished and
malformed clients get a typed error or a clean close and never take the server down; SIGTERM
drains (last windows delivered, exit 0); SIGHUP and the ``reload`` command swap the model for new
streams while open ones finish; socket permissions, stale and live sockets; systemd
notifications. The protocol parser and the batching scheduler are also tested in-process
(seeded random loops: hypothesis is not a test dependency). No test asserts on time; timeouts
only catch hangs.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from signals import speech_like

sf = pytest.importorskip("soundfile")

from edgeser.serve import protocol as P  # noqa: E402
from edgeser.serve.batching import Batcher  # noqa: E402
from edgeser.serve.client import Client, ClientError, to_pcm  # noqa: E402

TIMEOUT_S = 60
STREAM_ATOL = 1e-4  # a live stream vs file mode (README: "within 1e-4")
RECORD_TYPES = {"hello", "run", "window", "event", "file", "failure", "dropped", "error",
                "health", "reloaded", "bye"}


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def _env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env.update(EDGESER_HOME=str(home), **extra)
    return env


class ServerProcess:
    """``python -m edgeser serve ARGS`` with stderr collected by a thread."""

    def __init__(self, args: list[str], home: Path, *, env: dict | None = None,
                 wait: bool = True):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeser", "serve", *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env or _env(home))
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        if wait:
            self.wait_line("edgeser: ready")

    def _collect(self) -> None:
        for raw in self.proc.stderr:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<EOF>")
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, text: str) -> str:
        deadline = time.monotonic() + TIMEOUT_S
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                assert "<EOF>" not in self.lines, f"server ended before {text!r}:\n{self.stderr}"
                assert time.monotonic() < deadline, f"no {text!r} from the server:\n{self.stderr}"
                self._changed.wait(0.5)

    @property
    def tcp(self) -> tuple[str, int]:
        line = self.wait_line("listening on tcp:")
        host, port = re.search(r"tcp:(\S+):(\d+)", line).groups()
        return host.strip("[]"), int(port)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(TIMEOUT_S)
        self._reader.join(TIMEOUT_S)
        assert "Traceback" not in self.stderr, self.stderr
        return code

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


class Raw:
    """The protocol with nothing but the standard library (what a client in any language does)."""

    def __init__(self, address):
        if isinstance(address, tuple):
            self.sock = socket.create_connection(address, timeout=TIMEOUT_S)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(TIMEOUT_S)
            self.sock.connect(str(address))
        self.file = self.sock.makefile("rb")
        self.hello = self.record()
        assert self.hello["type"] == "hello", self.hello

    def send(self, message: dict | bytes, payload: bytes = b"") -> None:
        line = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        self.sock.sendall(line + payload)

    def record(self) -> dict | None:
        line = self.file.readline()
        if not line:
            return None
        record = json.loads(line)
        assert record["type"] in RECORD_TYPES, record
        return record

    def until(self, *types: str) -> list[dict]:
        """Records up to and including the first of ``types`` (or EOF)."""
        out = []
        while True:
            record = self.record()
            if record is None:
                return out
            out.append(record)
            if record["type"] in types:
                return out

    def rest(self) -> list[dict]:
        """Every record until the server closes the connection."""
        out = []
        while (record := self.record()) is not None:
            out.append(record)
        return out

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def s16(x: np.ndarray) -> bytes:
    return to_pcm(x, 1 if x.ndim == 1 else x.shape[1], "s16")


def push(raw: Raw, sid: str, pcm: bytes, frame: int = 4096) -> None:
    for i in range(0, len(pcm), frame):
        piece = pcm[i:i + frame]
        raw.send({"op": "audio", "stream": sid, "bytes": len(piece)}, piece)


def by_type(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r["type"] == kind]


def assert_same_results(served: list[dict], reference: list[dict]) -> None:
    """Windows, events and the summary of a served stream equal a detect run's (scores within
    STREAM_ATOL; bounds, silence and counts exactly)."""
    a, b = by_type(served, "window"), by_type(reference, "window")
    assert len(a) >= 3
    assert [(w["index"], w["start_sample"], w["end_sample"], w["silent"], w["top_label"])
            for w in a] == [(w["index"], w["start_sample"], w["end_sample"], w["silent"],
                             w["top_label"]) for w in b]
    for wa, wb in zip(a, b):
        assert wa["level_dbfs"] == pytest.approx(wb["level_dbfs"], abs=1e-3)
        if wb["scores"] is None:
            assert wa["scores"] is None
        else:
            assert wa["scores"].keys() == wb["scores"].keys()
            assert max(abs(wa["scores"][k] - wb["scores"][k]) for k in wb["scores"]) \
                <= STREAM_ATOL
    ea, eb = by_type(served, "event"), by_type(reference, "event")
    assert [(e["start_sample"], e["end_sample"], e["windows"]) for e in ea] == \
        [(e["start_sample"], e["end_sample"], e["windows"]) for e in eb]
    fa, fb = by_type(served, "file"), by_type(reference, "file")
    assert len(fa) == len(fb) == 1
    fa, fb = fa[0], fb[0]
    for key in ("rate_hz", "channels", "samples", "duration_s", "warnings"):
        assert fa[key] == fb[key], key
    sa, sb = fa["summary"], fb["summary"]
    for key in ("windows", "voiced_windows", "silent_windows", "top_label", "events", "event_s"):
        assert sa[key] == sb[key], key
    for label, value in sb["scores"].items():
        assert sa["scores"][label] == pytest.approx(value, abs=STREAM_ATOL)


def reference_records(bundle: Path, x: np.ndarray, rate_hz: int, **options) -> list[dict]:
    """What ``detect --format jsonl`` writes for ``x``, from the same API in-process."""
    import io

    from edgeser import Detector
    from edgeser.formats import open_writer, write_result

    detector = Detector.load(bundle, threads=1, **options)
    out = io.StringIO()
    writer = open_writer("jsonl", out, detector.run_info)
    write_result(writer, detector.detect(x, rate_hz, source="ref"))
    return [json.loads(line) for line in out.getvalue().splitlines()]


def wait_for(predicate, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve-home")


@pytest.fixture(scope="module")
def laughter(tiny_bundles) -> Path:
    return tiny_bundles("laughter")


@pytest.fixture(scope="module")
def server(laughter, home, tmp_path_factory):
    """One server for the tests that need no special flags: unix socket and 127.0.0.1:0."""
    folder = tmp_path_factory.mktemp("serve")
    sock = folder / "edgeser.sock"
    proc = ServerProcess(["--model", str(laughter), "--socket", str(sock), "--tcp", "0",
                          "--threads", "1"], home)
    proc.socket = sock
    yield proc
    assert proc.stop() == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------------------
# 1. Results equal detect; concurrency; per-stream settings
# ------------------------------------------------------------------------------------------


def test_served_results_equal_detect_jsonl_over_unix_and_tcp(server, laughter, home, tmp_path):
    x = speech_like(6.0, 44100, 2, seed=11, gap=(2.2, 3.8))
    wav = tmp_path / "clip.wav"
    sf.write(wav, x, 44100, subtype="PCM_16")
    pcm = sf.read(wav, dtype="int16")[0].astype("<i2").tobytes()
    cli = subprocess.run([sys.executable, "-m", "edgeser", "detect", str(wav), "-m",
                          str(laughter), "-f", "jsonl", "--threshold", "0.4", "--threads", "1"],
                         capture_output=True, timeout=TIMEOUT_S, env=_env(home),
                         stdin=subprocess.DEVNULL)
    assert cli.returncode == 0, cli.stderr
    reference = [json.loads(line) for line in cli.stdout.decode().splitlines()]
    assert by_type(reference, "event") and any(w["silent"] for w in by_type(reference, "window"))

    # The package's client, on the unix socket.
    with Client.connect(server.socket) as client:
        stream = client.open("clip", rate_hz=44100, channels=2, sample_format="s16",
                             threshold=0.4, source=str(wav))
        for i in range(0, len(pcm), 3001):  # frames that split samples
            stream.push(pcm[i:i + 3001])
        stream.end()
        served = list(stream.results(timeout=TIMEOUT_S))
    run = stream.run
    assert run["type"] == "run" and run["stream"] == "clip"
    assert {k: run[k] for k in ("schema_version", "edgeser", "model")} == \
        {k: reference[0][k] for k in ("schema_version", "edgeser", "model")}
    assert all(r["stream"] == "clip" for r in served)
    assert all(r["source"] == str(wav) for r in served if r["type"] in ("window", "event",
                                                                         "file"))
    assert_same_results(served, reference)

    # Plain stdlib sockets on TCP: the same records.
    raw = Raw(server.tcp)
    raw.send({"op": "hello", "protocol": 1})
    raw.send({"op": "open", "stream": "t", "rate_hz": 44100, "channels": 2,
              "sample_format": "s16", "threshold": 0.4, "id": 1})
    opened = raw.record()
    assert opened["type"] == "run" and opened["id"] == 1
    push(raw, "t", pcm, frame=8820)
    raw.send({"op": "end", "stream": "t"})
    assert_same_results(raw.until("file"), reference)
    raw.close()


def test_concurrent_streams_share_one_model(server, laughter):
    clips = [(speech_like(4.0, 16000, 1, seed=1), 16000, "s16"),
             (speech_like(3.2, 48000, 2, seed=2), 48000, "f32"),
             (speech_like(5.0, 22050, 1, seed=3, gap=(1.0, 2.0)), 22050, "s16"),
             (speech_like(2.6, 16000, 2, seed=4), 16000, "f32")]
    with Client.connect(server.socket) as client:
        before = client.health()
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def run(client: Client, k: int) -> None:
        try:
            x, rate, fmt = clips[k]
            channels = 1 if x.ndim == 1 else x.shape[1]
            stream = client.open(f"c{k}", rate_hz=rate, channels=channels, sample_format=fmt)
            step = rate // 20
            for i in range(0, len(x), step):
                stream.push(x[i:i + step])
            stream.end()
            results[k] = list(stream.results(timeout=TIMEOUT_S))
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    a, b = Client.connect(server.socket), Client.connect(server.tcp)
    threads = [threading.Thread(target=run, args=(a if k % 2 else b, k)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_S)
    assert not errors, errors
    for k, (x, rate, fmt) in enumerate(clips):
        if fmt == "s16":  # what the server decodes
            x = np.clip(np.round(x * 32768), -32768, 32767) / 32768
        assert_same_results(results[k], reference_records(laughter, x, rate))
    health = a.health()
    assert (health["type"], health["protocol"], health["status"]) == ("health", 1, "serving")
    assert health["model"]["bundle"] == str(laughter) and health["model"]["generation"] == 1
    assert health["uptime_s"] > 0 and health["clients"]["open"] >= 2
    latency = health["latency_s"]
    assert latency["samples"] > 0 and 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert health["streams"]["total"] - before["streams"]["total"] == 4
    assert health["streams"]["open"] == 0  # counted before each stream's final record
    assert health["model"]["inference"]["windows"] - before["model"]["inference"]["windows"] \
        == sum(by_type(r, "file")[0]["summary"]["voiced_windows"] for r in results.values())
    a.close()
    b.close()


def test_stream_settings_are_checked_by_the_detector(server, laughter):
    x = speech_like(3.0, 16000, seed=5)
    with Client.connect(server.socket) as client:
        stream = client.open(rate_hz=16000, sample_format="f32", window_s=0.5, hop_s=0.1,
                             operating_point="high-precision", merge_gap_s=0.2)
        model = stream.run["model"]
        assert (model["window_s"], model["hop_s"], model["threshold"],
                model["operating_point"], model["merge_gap_s"]) == \
            (0.5, 0.1, 0.9, "high-precision", 0.2)
        stream.push(x)
        stream.end()
        served = list(stream.results(timeout=TIMEOUT_S))
        assert_same_results(served, reference_records(
            laughter, x, 16000, window_s=0.5, hop_s=0.1, operating_point="high-precision",
            merge_gap_s=0.2))
        for options, words in [({"operating_point": "nope"}, "no operating point 'nope'"),
                               ({"threshold": 0.5, "operating_point": "default"}, "not both"),
                               ({"window_s": 0.2, "hop_s": 0.4}, "must not be longer"),
                               ({"window_s": 60}, "limit of 30 s"),
                               ({"threshold": "high"}, "finite number")]:
            with pytest.raises(ClientError) as err:
                client.open(rate_hz=16000, **options)
            assert err.value.code == "bad-option" and words in str(err.value), err.value.record
        assert client.health()["streams"]["open"] == 0


# ------------------------------------------------------------------------------------------
# 2. Malformed input, vanished clients, fuzzing
# ------------------------------------------------------------------------------------------


def test_malformed_messages_get_typed_errors_and_the_connection_goes_on(server):
    raw = Raw(server.socket)
    cases = [
        (b"this is not json\n", "bad-json"),
        (b"[1, 2]\n", "bad-json"),
        (b'{"op": "open", "threshold": NaN}\n', "bad-json"),
        (b'{"no_op": 1}\n', "bad-request"),
        (b'{"op": "dance"}\n', "unknown-op"),
        (b'{"op": "health", "colour": "red"}\n', "bad-request"),
        (b'{"op": "open", "stream": "a b", "rate_hz": 16000, "channels": 1, '
         b'"sample_format": "s16"}\n', "bad-stream-id"),
        (b'{"op": "open", "stream": "a", "rate_hz": 16000, "channels": 1, '
         b'"sample_format": "s12"}\n', "bad-format"),
        (b'{"op": "open", "stream": "a", "rate_hz": 7, "channels": 1, '
         b'"sample_format": "s16"}\n', "bad-format"),
        (b'{"op": "open", "stream": "a", "rate_hz": 16000, "channels": 0, '
         b'"sample_format": "s16"}\n', "bad-format"),
        (b'{"op": "open", "stream": "a", "rate": 16000, "channels": 1, '
         b'"sample_format": "s16"}\n', "bad-request"),
        (b'{"op": "audio", "stream": "zz", "bytes": 4}\n\x00\x01\x02\x03', "unknown-stream"),
        (b'{"op": "end", "stream": "zz"}\n', "unknown-stream"),
    ]
    for message, code in cases:
        raw.send(message)
        record = raw.record()
        assert record["type"] == "error" and record["code"] == code, (message, record)
        assert record["fatal"] is False and record["message"].endswith("."), record
    # Still a working connection: a stream opens, a second open of its id is refused.
    raw.send({"op": "open", "stream": "a", "rate_hz": 16000, "channels": 1,
              "sample_format": "f32"})
    assert raw.record()["type"] == "run"
    raw.send({"op": "open", "stream": "a", "rate_hz": 16000, "channels": 1,
              "sample_format": "f32", "id": "x"})
    assert raw.record() | {"message": ""} == {"type": "error", "code": "stream-exists",
                                              "message": "", "stream": "a", "id": "x",
                                              "fatal": False}
    # NaN samples fail the stream (one sentence), not the connection.
    bad = np.full(800, np.nan, dtype=np.float32).tobytes()
    raw.send({"op": "audio", "stream": "a", "bytes": len(bad)}, bad)
    failure = raw.until("failure")[-1]
    assert failure["type"] == "failure" and "non-finite" in failure["error"], failure
    # Bytes that do not make a whole frame at the end are said in the file record.
    raw.send({"op": "open", "stream": "t", "rate_hz": 16000, "channels": 1,
              "sample_format": "s16"})
    push(raw, "t", s16(speech_like(0.5, seed=3)) + b"\x07")
    raw.send({"op": "end", "stream": "t"})
    end = raw.until("file")[-1]
    assert end["samples"] == 8000 and end["warnings"] == [
        "the last 1 byte did not make a whole frame (2 bytes) and was ignored"]
    # An oversize frame is fatal: one error, then the server closes.
    raw.send({"op": "audio", "stream": "a", "bytes": 10**9})
    assert raw.rest() == [{"type": "error", "code": "frame-too-large", "stream": None,
                           "id": None, "fatal": True,
                           "message": "an audio frame of 1000000000 bytes is larger than "
                           "262144 bytes (the server's --max-frame)."}]
    raw.close()
    # A line without an end is fatal too; a stream too short to detect is a failure.
    raw = Raw(server.tcp)
    raw.send(b"{" + b" " * 70000)
    assert [r["code"] for r in raw.rest()] == ["line-too-long"]
    raw.close()
    with Client.connect(server.socket) as client:
        stream = client.open(rate_hz=16000, sample_format="f32")
        stream.push(np.zeros(100, dtype=np.float32))
        stream.end()
        assert "shorter than one model frame" in list(stream.results())[-1]["error"]
        health = client.health()
    assert health["errors"]["bad-json"] >= 3 and health["errors"]["frame-too-large"] >= 1
    assert server.proc.poll() is None


def test_vanished_clients_free_their_streams(server):
    pcm = s16(speech_like(3.0, 16000, seed=8))
    client = Client.connect(server.tcp)
    before = client.health()
    for how in ("mid-frame", "reset", "results-pending"):
        raw = Raw(server.socket if how != "reset" else server.tcp)
        raw.send({"op": "open", "stream": "v", "rate_hz": 16000, "channels": 1,
                  "sample_format": "s16"})
        assert raw.record()["type"] == "run"
        push(raw, "v", pcm[:32000])
        if how == "mid-frame":
            raw.send({"op": "audio", "stream": "v", "bytes": 5000}, pcm[:100])
        elif how == "reset":
            raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            push(raw, "v", pcm[32000:])
            raw.send({"op": "end", "stream": "v"})
        raw.close()
    wait_for(lambda: (lambda h: (h["streams"]["open"], h["clients"]["open"]))(client.health())
             == (before["streams"]["open"], before["clients"]["open"]),
             "the vanished clients and their streams to be freed")
    stream = client.open(rate_hz=16000, sample_format="s16")
    stream.push(pcm)
    stream.end()
    assert list(stream.results())[-1]["type"] == "file"
    client.close()


def test_parser_survives_random_bytes_and_any_split():
    rng = random.Random(20240501)
    # Valid traffic split anywhere gives the same messages as whole.
    payload = bytes(range(256)) * 3
    traffic = (b'{"op":"hello","protocol":1}\n\r\n'
               + b'{"op":"audio","stream":"a","bytes":768}\n' + payload
               + b'{"op":"audio","stream":"a","bytes":0}\n'
               + b'{"op":"end","stream":"a","id":7}\r\n')
    whole = P.Parser().feed(traffic)
    assert [type(m).__name__ for m in whole] == ["Request", "Audio", "Audio", "Request"]
    assert whole[1].payload == payload
    for _ in range(300):
        parser, got = P.Parser(), []
        cuts = sorted(rng.sample(range(1, len(traffic)), rng.randint(1, 12)))
        for a, b in zip([0] + cuts, cuts + [len(traffic)]):
            got += parser.feed(traffic[a:b])
        assert got == whole and parser.idle and parser.eof() is None
    # Truncated anywhere inside a message: the end of input says so.
    for cut in range(1, len(traffic)):
        parser = P.Parser()
        parser.feed(traffic[:cut])
        idle = parser.idle
        problem = parser.eof()
        assert (problem is None) == idle
        if problem is not None:
            assert problem.code == "truncated" and problem.fatal
    # Random bytes, and mutations of valid traffic: only messages or typed errors, bounded.
    for trial in range(2000):
        if trial % 2:
            data = bytearray(traffic)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:
            data = rng.randbytes(rng.randint(0, 3000))
        parser = P.Parser(max_line=512, max_frame=1024)
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 700)
            for message in parser.feed(data[pos:pos + step]):
                assert isinstance(message, (P.Request, P.Audio, P.ProtocolError))
                if isinstance(message, P.ProtocolError):
                    assert message.code in P.ERROR_CODES
                    P.encode(message.record())
            assert parser.buffered <= 1024
            pos += step
        end = parser.eof()
        assert end is None or end.code == "truncated"


def test_random_bytes_never_take_the_server_down(server):
    rng = random.Random(7)
    valid = (b'{"op":"open","stream":"f","rate_hz":16000,"channels":1,"sample_format":"s16"}\n'
             + b'{"op":"audio","stream":"f","bytes":6400}\n' + bytes(6400)
             + b'{"op":"health"}\n{"op":"end","stream":"f"}\n')
    for trial in range(30):
        if trial % 3 == 0:
            data = rng.randbytes(rng.randint(1, 4000))
        elif trial % 3 == 1:
            data = bytearray(valid)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:
            data = valid[:rng.randrange(1, len(valid))]
        raw = Raw(server.socket if trial % 2 else server.tcp)
        raw.sock.sendall(data)
        raw.sock.shutdown(socket.SHUT_WR)
        for record in raw.rest():  # every record is well-formed, and the server closes
            if record["type"] == "error":
                assert record["code"] in P.ERROR_CODES
        raw.close()
    assert server.proc.poll() is None
    with Client.connect(server.socket) as client:
        assert client.health()["status"] == "serving"


def test_batcher_groups_equal_lengths_from_busy_streams():
    calls: list[tuple[int, int]] = []

    def run_batch(x):
        calls.append(x.shape)
        return x[:, :2] * 2, x[:, :3]

    batcher = Batcher(run_batch, max_batch=4, wait_s=30.0)
    lengths = [400] * 10 + [800, 800]
    start = threading.Barrier(len(lengths))
    failures = []

    def stream(k: int) -> None:
        x = np.full((1, lengths[k]), k, dtype=np.float32)
        with batcher.busy():
            start.wait()
            logits, embedding = batcher.run(x)
        if not (np.all(logits == 2 * k) and logits.shape == (1, 2) and embedding.shape == (1, 3)):
            failures.append(k)

    threads = [threading.Thread(target=stream, args=(k,)) for k in range(len(lengths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_S)
    batcher.stop(TIMEOUT_S)
    assert not failures
    assert sorted(calls) == [(2, 400), (2, 800), (4, 400), (4, 400)]
    assert batcher.calls == 4 and batcher.rows == 12 and batcher.max_rows == 4
    # A lone caller (nobody busy) never waits for companions.
    lone = Batcher(run_batch, wait_s=30.0)
    assert lone.run(np.ones((1, 400), np.float32))[0].shape == (1, 2)
    lone.stop(TIMEOUT_S)


# ------------------------------------------------------------------------------------------
# 3. Overflow policies and bounded memory
# ------------------------------------------------------------------------------------------


def test_fast_senders_drop_counted_audio_and_slow_readers_are_cut_off(laughter, home, tmp_path):
    sock = tmp_path / "s.sock"
    server = ServerProcess(["--model", str(laughter), "--socket", str(sock), "--threads", "1",
                            "--queue-bytes", "65536", "--max-frame", "16384",
                            "--out-queue-bytes", "8192", "--client-timeout", "3"], home)
    try:
        warm = Client.connect(sock)
        stream = warm.open(rate_hz=16000, sample_format="s16")
        warmup = speech_like(3.0, seed=9)
        for i in range(0, len(warmup), 8000):  # 16000-byte frames: within --max-frame
            stream.push(warmup[i:i + 8000])
        stream.end()
        list(stream.results())
        baseline = server.rss_kib()

        # Fast sender, overflow "drop": 32 MB (1000 s) pushed at once, results read as they
        # come. Windows of 1 s every 20 ms make processing far slower than the push.
        pcm = s16(speech_like(10.0, seed=10))
        fast = warm.open("fast", rate_hz=16000, sample_format="s16", overflow="drop",
                         window_s=1.0, hop_s=0.02)
        sent = 0
        for _ in range(100):
            for i in range(0, len(pcm), 16000):
                fast.push(pcm[i:i + 16000])
                sent += 8000
        fast.end()
        records = list(fast.results())
        dropped = by_type(records, "dropped")
        end = records[-1]
        assert end["type"] == "file" and dropped, records[-3:]
        total = dropped[-1]["total_frames"]
        assert sum(d["frames"] for d in dropped) == total
        assert end["samples"] + total == sent  # every frame either processed or counted
        assert f"{total} frames" in end["warnings"][-1]
        assert [d["at_sample"] for d in dropped] == sorted(d["at_sample"] for d in dropped)
        health = warm.health()
        assert health["dropped"]["frames"] == total and health["dropped"]["streams"] == 1
        assert server.rss_kib() - baseline < 24 * 1024, (baseline, server.rss_kib())

        # Slow reader, overflow "block": it pushes and never reads; the server stops reading
        # it, then cuts it off, while another client's stream completes meanwhile.
        stalled = Raw(sock)
        stalled.send({"op": "open", "stream": "slow", "rate_hz": 16000, "channels": 1,
                      "sample_format": "s16", "window_s": 1.0, "hop_s": 0.02})
        stalled.sock.settimeout(1.0)
        pushed = 0
        with pytest.raises(OSError):  # the send blocks (timeout) or the server cut it off
            for _ in range(1000):
                push(stalled, "slow", pcm, frame=16000)
                pushed += len(pcm)
        assert pushed < 1000 * len(pcm)
        x = speech_like(3.0, 48000, seed=12)
        other = Client.connect(sock)
        stream = other.open(rate_hz=48000, sample_format="f32")
        for i in range(0, len(x), 4000):
            stream.push(x[i:i + 4000])
        stream.end()
        assert_same_results(list(stream.results()), reference_records(laughter, x, 48000))
        wait_for(lambda: (lambda h: (h["clients"]["slow_disconnects"], h["clients"]["open"],
                                     h["streams"]["open"]))(other.health()) == (1, 2, 0),
                 "the stalled client to be disconnected")
        assert server.rss_kib() - baseline < 24 * 1024, (baseline, server.rss_kib())
        stalled.close()
        other.close()
        warm.close()
    finally:
        assert server.stop() == 0, server.stderr
    assert "read nothing for 3 s; disconnected" in server.stderr


# ------------------------------------------------------------------------------------------
# 4. SIGTERM drain, SIGHUP and protocol reload
# ------------------------------------------------------------------------------------------


def test_sigterm_delivers_the_last_windows_and_exits_0(laughter, home, tmp_path):
    sock = tmp_path / "s.sock"
    server = ServerProcess(["--model", str(laughter), "--socket", str(sock), "--threads", "1"],
                           home)
    x = speech_like(4.3, 16000, seed=13)
    raw = Raw(sock)
    raw.send({"op": "open", "stream": "d", "rate_hz": 16000, "channels": 1,
              "sample_format": "f32"})
    push(raw, "d", x.tobytes())
    raw.send({"op": "health", "id": "sync"})  # answered once every frame before it was read
    records = raw.until("health")
    assert records[-1]["id"] == "sync"
    server.proc.send_signal(signal.SIGTERM)
    records += raw.rest()
    assert records[-1] == {"type": "bye", "reason": "shutdown"}
    assert by_type(records, "file")[0]["samples"] == len(x)
    assert_same_results(records, reference_records(laughter, x, 16000))
    assert server.proc.wait(TIMEOUT_S) == 0, server.stderr
    server.stop()
    assert not sock.exists()  # the server removed its own socket
    assert "draining: 1 connections, 1 open streams" in server.stderr
    assert "Traceback" not in server.stderr


def test_sighup_and_reload_swap_the_model_for_new_streams(tiny_bundles, home, tmp_path):
    laughter, categorical = tiny_bundles("laughter"), tiny_bundles("categorical")
    current = tmp_path / "current"
    current.symlink_to(laughter)
    sock = tmp_path / "s.sock"
    server = ServerProcess(["--model", str(current), "--socket", str(sock), "--threads", "1"],
                           home)
    x = speech_like(5.0, 16000, seed=14)
    try:
        client = Client.connect(sock)
        old = client.open("old", rate_hz=16000)
        old.push(x[:24000])
        current.unlink()
        current.symlink_to(categorical)
        server.proc.send_signal(signal.SIGHUP)
        server.wait_line("reloaded")
        new = client.open("new", rate_hz=16000)
        assert (old.run["model"]["task"], new.run["model"]["task"]) == \
            ("laughter", "emotion-categorical")
        old.push(x[24000:])
        old.end()
        new.push(x)
        new.end()
        assert_same_results(list(old.results()), reference_records(laughter, x, 16000))
        assert_same_results(list(new.results()), reference_records(categorical, x, 16000))
        assert client.health()["model"]["generation"] == 2

        current.unlink()
        current.symlink_to(laughter)
        reloaded = client.reload()
        assert reloaded["generation"] == 3 and reloaded["model"]["task"] == "laughter"
        current.unlink()
        current.symlink_to(tmp_path / "missing")
        with pytest.raises(ClientError) as err:
            client.reload()
        assert err.value.code == "reload-failed" and "keeps the model it had" in str(err.value)
        health = client.health()
        assert (health["model"]["generation"], health["model"]["task"], health["reloads"]) == \
            (3, "laughter", 2)
        client.close()
    finally:
        assert server.stop() == 0, server.stderr


# ------------------------------------------------------------------------------------------
# 5. Who may connect: socket mode, stale and live sockets; stdio; usage
# ------------------------------------------------------------------------------------------


def test_socket_mode_stale_and_live_sockets(server, laughter, home, tmp_path):
    assert stat.S_IMODE(os.stat(server.socket).st_mode) == 0o660
    # A live socket is never stolen.
    second = subprocess.run([sys.executable, "-m", "edgeser", "serve", "--model", str(laughter),
                             "--socket", str(server.socket)], capture_output=True, text=True,
                            timeout=TIMEOUT_S, env=_env(home), stdin=subprocess.DEVNULL)
    assert second.returncode == 1 and second.stderr == (
        f"edgeser: {server.socket}: another server is listening on this socket; stop it or "
        "choose another --socket.\n")
    with Client.connect(server.socket) as client:
        assert client.health()["status"] == "serving"
    # Nor is a file that is not a socket.
    plain = tmp_path / "plain"
    plain.write_text("keep me")
    third = subprocess.run([sys.executable, "-m", "edgeser", "serve", "--model", str(laughter),
                            "--socket", str(plain)], capture_output=True, text=True,
                           timeout=TIMEOUT_S, env=_env(home), stdin=subprocess.DEVNULL)
    assert third.returncode == 1 and "exists and is not a socket" in third.stderr
    assert plain.read_text() == "keep me"
    # A stale socket (nobody accepts on it) is replaced; --socket-mode applies.
    stale = tmp_path / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(stale))
    leftover.close()
    fresh = ServerProcess(["--model", str(laughter), "--socket", str(stale), "--socket-mode",
                           "600", "--threads", "1"], home)
    try:
        assert "replaced the stale socket" in fresh.stderr
        assert stat.S_IMODE(os.stat(stale).st_mode) == 0o600
        with Client.connect(stale) as client:
            assert client.hello["protocol"] == 1
    finally:
        assert fresh.stop() == 0


def test_streams_and_clients_are_bounded(laughter, home, tmp_path):
    sock = tmp_path / "s.sock"
    server = ServerProcess(["--model", str(laughter), "--socket", str(sock), "--threads", "1",
                            "--max-streams", "2", "--max-streams-per-client", "1",
                            "--max-clients", "3"], home)
    try:
        a, b, c = Client.connect(sock), Client.connect(sock), Client.connect(sock)
        assert a.hello["limits"] | {"client_timeout_s": 0} == {
            "max_line_bytes": 65536, "max_frame_bytes": 262144, "queue_bytes": 524288,
            "out_queue_bytes": 262144, "max_streams": 2, "max_streams_per_client": 1,
            "max_clients": 3, "client_timeout_s": 0, "overflow": "block", "max_window_s": 30.0,
            "sample_formats": ["u8", "s16", "s24", "s32", "f32", "f64"]}
        a.open("one", rate_hz=16000)
        with pytest.raises(ClientError, match="--max-streams-per-client") as err:
            a.open("two", rate_hz=16000)
        assert err.value.code == "too-many-streams"
        b.open("one", rate_hz=16000)
        with pytest.raises(ClientError, match="--max-streams") as err:
            c.open("one", rate_hz=16000)
        assert err.value.code == "too-many-streams"
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.settimeout(TIMEOUT_S)
        extra.connect(str(sock))
        refused = [json.loads(line) for line in extra.makefile("rb")]
        assert [(r["type"], r["code"], r["fatal"]) for r in refused] == \
            [("error", "too-many-clients", True)]
        extra.close()
        health = a.health()
        assert (health["streams"]["open"], health["clients"]["open"],
                health["clients"]["refused"]) == (2, 3, 1)
        for client in (a, b, c):
            client.close()
    finally:
        assert server.stop() == 0


def test_stdio_serves_one_client(laughter, home):
    x = speech_like(2.5, 16000, seed=15)
    pcm = s16(x)
    stdin = (b'{"op":"open","stream":"io","rate_hz":16000,"channels":1,"sample_format":"s16"}\n'
             + f'{{"op":"audio","stream":"io","bytes":{len(pcm)}}}\n'.encode() + pcm)
    # No "end": closing stdin ends the stream with its last results.
    result = subprocess.run([sys.executable, "-m", "edgeser", "serve", "--model", str(laughter),
                             "--stdio", "--threads", "1"], input=stdin, capture_output=True,
                            timeout=TIMEOUT_S, env=_env(home))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [records[0]["type"], records[1]["type"], records[-1]] == \
        ["hello", "run", {"type": "bye", "reason": "eof"}]
    x16 = np.round(x * 32768).clip(-32768, 32767) / 32768
    assert_same_results(records, reference_records(laughter, x16, 16000))


@pytest.mark.parametrize("args, words", [
    ([], "say where to serve"),
    (["--tcp", "localhost:http"], "does not end in a port number"),
    (["--tcp", ":80"], "has no address"),
    (["--socket", "x.sock", "--socket-mode", "0999"], "not an octal mode"),
    (["--stdio", "--tcp", "0"], "drop --socket and --tcp"),
    (["--socket", "x.sock", "--overflow", "maybe"], "block, drop"),
    (["--socket", "x.sock", "--max-frame", "4096", "--queue-bytes", "1024"], "largest frame"),
])
def test_usage_errors_exit_2(args, words, home, tmp_path):
    result = subprocess.run([sys.executable, "-m", "edgeser", "serve", *args],
                            capture_output=True, text=True, timeout=TIMEOUT_S, env=_env(home),
                            cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and words in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------
# 6. systemd
# ------------------------------------------------------------------------------------------


def test_systemd_ready_watchdog_and_stopping(laughter, home, tmp_path):
    pytest.importorskip("sdnotify", reason="the serve extra is not installed "
                        "(pip install 'edgeser[serve]')")
    notify = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.settimeout(TIMEOUT_S)
    server = ServerProcess(["--model", str(laughter), "--socket", str(tmp_path / "s.sock"),
                            "--threads", "1"], home,
                           env=_env(home, NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="200000"))
    try:
        seen: list[str] = []
        while not {"READY=1", "WATCHDOG=1"} <= set(seen):
            seen += listener.recv(4096).decode().splitlines()
        assert seen.index("READY=1") < seen.index("WATCHDOG=1")
        assert any(line.startswith("STATUS=serving ckpt-laughter") for line in seen)
        server.proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in seen:
            seen += listener.recv(4096).decode().splitlines()
    finally:
        assert server.stop() == 0, server.stderr
        listener.close()


def test_systemd_without_the_library_says_what_to_install(laughter, home, tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sdnotify.py").write_text("raise ImportError('hidden by the test')\n")
    env = _env(home, NOTIFY_SOCKET=str(tmp_path / "notify.sock"),
               PYTHONPATH=os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-m", "edgeser", "serve", "--model", str(laughter),
                             "--socket", str(tmp_path / "s.sock")], capture_output=True,
                            text=True, timeout=TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr == ("edgeser: NOTIFY_SOCKET is set (a systemd notify service) but the "
                             "sd_notify library is not installed; pip install "
                             "'edgeser[serve]'.\n")
