"""The detection server behind ``edgeser serve``: listeners, connections, stream workers, drain
and reload. The wire protocol is specified in :mod:`edgeser.serve.protocol`.

Threads, and why not asyncio: the work is CPU-bound inference in ONNX Runtime (which releases the
GIL) fed by small blocking steps (PCM conversion, resampling, normalisation) that the detection
stream runs synchronously, so every stream needs a thread of its own to run them anyway. Per
connection a reader thread parses the client's bytes and routes audio into per-stream input
queues, and a writer thread sends that connection's records; per open stream a worker thread feeds
its :class:`~edgeser.streaming.DetectionStream`; per loaded model one scheduler thread batches
inference (:mod:`edgeser.serve.batching`). Threads block only on their own connection's queues or
socket, with short timeouts, so one stalled or vanished client never holds another's. Every
buffer has a byte limit (see the protocol's "Flow control"), so memory is bounded by the limits
times the connection and stream counts, whatever clients send.

Signals: SIGTERM and SIGINT drain (no new connections or streams; audio already received is
processed; each open stream gets its last windows, events and ``file`` record; connections get
``bye``; exit 0). SIGHUP reloads the bundle (see :mod:`edgeser.serve.models`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeser import __version__
from edgeser.contract import SAMPLE_FORMAT_BYTES, SAMPLE_FORMATS, SAMPLE_RATE_HZ
from edgeser.detector import DetectionOptions, Detector
from edgeser.errors import AudioError, EdgeserError
from edgeser.formats._common import (event_record, failure_record, file_record, model_record,
                                     window_record)
from edgeser.results import RESULT_SCHEMA_VERSION, RunInfo
from edgeser.serve import protocol as P
from edgeser.serve.metrics import Metrics
from edgeser.serve.models import LoadedModel
from edgeser.serve.queues import TICK_S, InputQueue, OutQueue
from edgeser.serve.transport import (Gone, ServeError, Transport, log, parse_tcp, tcp_listener,
                                     unix_listener)

__all__ = ["Server", "ServeError", "ServeOptions", "parse_tcp"]

# What a stream's queue holds after its audio: end with results, or cancel (client gone).
_END = "end"
_CANCEL = "cancel"
# Failed streams whose late audio is discarded quietly, per connection.
_FAILED_KEPT = 64
_MAX_CHANNELS = 256
_MIN_RATE_HZ, _MAX_RATE_HZ = 1_000, 384_000


@dataclass(frozen=True)
class ServeOptions:
    """Where to listen and the limits (the flags of ``edgeser serve``)."""

    socket_path: Path | None = None
    socket_mode: int = 0o660
    tcp: tuple[str, int] | None = None
    stdio: bool = False
    max_line: int = P.DEFAULT_MAX_LINE_BYTES
    max_frame: int = P.DEFAULT_MAX_FRAME_BYTES
    queue_bytes: int = P.DEFAULT_QUEUE_BYTES
    out_queue_bytes: int = P.DEFAULT_OUT_QUEUE_BYTES
    max_streams: int = P.DEFAULT_MAX_STREAMS
    max_streams_per_client: int = P.DEFAULT_MAX_STREAMS_PER_CLIENT
    max_clients: int = P.DEFAULT_MAX_CLIENTS
    client_timeout_s: float = P.DEFAULT_CLIENT_TIMEOUT_S
    overflow: str = "block"
    batch_wait_s: float = 0.005
    drain_timeout_s: float = 30.0

    def limits(self) -> dict[str, Any]:
        return {"max_line_bytes": self.max_line, "max_frame_bytes": self.max_frame,
                "queue_bytes": self.queue_bytes, "out_queue_bytes": self.out_queue_bytes,
                "max_streams": self.max_streams,
                "max_streams_per_client": self.max_streams_per_client,
                "max_clients": self.max_clients, "client_timeout_s": self.client_timeout_s,
                "overflow": self.overflow, "max_window_s": P.MAX_WINDOW_S,
                "sample_formats": list(SAMPLE_FORMATS)}




# ---------------------------------------------------------------------------------------------
# Streams


@dataclass
class _EndItem:
    kind: str  # _END or _CANCEL
    trailing_bytes: int = 0
    t0: float = field(default_factory=time.monotonic)


class StreamWorker:
    """One open stream: its input queue, detection stream and worker thread."""

    def __init__(self, conn: "Connection", sid: str, source: str, model: LoadedModel,
                 stream, run_info: RunInfo, rate_hz: int, channels: int, sample_format: str,
                 policy: str):
        self.conn, self.id, self.source = conn, sid, source
        self.model, self.stream, self.run_info = model, stream, run_info
        self.rate_hz, self.channels, self.sample_format = rate_hz, channels, sample_format
        self.frame_bytes = channels * SAMPLE_FORMAT_BYTES[sample_format]
        self.queue = InputQueue(conn.server.options.queue_bytes, policy)
        self.carry = b""  # reader side: bytes of an incomplete frame
        self.failed = False
        self.done = threading.Event()
        self._released = False
        self._frames_in = 0  # frames fed to the detection stream
        self._dropped_frames = 0
        self.thread = threading.Thread(target=self._work, name=f"edgeser-stream-{sid}",
                                       daemon=True)

    # -- the reader's side ---------------------------------------------------------------------

    def push(self, payload: bytes, t0: float) -> None:
        data = self.carry + payload if self.carry else payload
        whole = len(data) - len(data) % self.frame_bytes
        self.carry = data[whole:]
        if not whole:
            return
        dropped = self.queue.put_audio(data[:whole] if whole < len(data) else data, t0,
                                       self.conn.stopping)
        if dropped:
            metrics = self.conn.server.metrics
            first = self._dropped_frames == 0
            self._dropped_frames += dropped // self.frame_bytes
            metrics.add(dropped_bytes=dropped, dropped_frames=dropped // self.frame_bytes,
                        streams_with_drops=int(first))

    def end(self, kind: str = _END) -> None:
        self.queue.put_control(_EndItem(kind, len(self.carry)))
        self.carry = b""

    # -- the worker ----------------------------------------------------------------------------

    def _work(self) -> None:
        dropped_total = 0
        try:
            while True:
                item, dropped = self.queue.get()
                dropped //= self.frame_bytes
                if dropped:
                    dropped_total += dropped
                    self._emit({"type": "dropped", "stream": self.id, "frames": dropped,
                                "total_frames": dropped_total,
                                "at_sample": self._frames_in * SAMPLE_RATE_HZ // self.rate_hz})
                if isinstance(item, _EndItem):
                    if item.kind == _CANCEL:
                        return
                    self._finish(item, dropped_total)
                    return
                data, t0 = item
                try:
                    chunk = _pcm(data, self.channels, self.sample_format)
                except EdgeserError as err:
                    raise AudioError(f"{self.source}: {str(err).rstrip('.')} (at "
                                     f"{self._frames_in / self.rate_hz:.3f} s).") from None
                with self.model.batcher.busy():
                    step = self.stream.feed(chunk)
                self._frames_in += len(chunk)
                self._emit_step(step, t0)
        except Gone:
            return
        except EdgeserError as err:
            self._fail(str(err))
        except Exception as err:  # a bug: said on the stream and in the log, never a crash
            log(f"internal error in stream {self.id!r} of {self.conn.transport.name}: "
                 f"{type(err).__name__}: {err}")
            self._fail(f"{self.source}: internal error ({type(err).__name__}); the server log "
                       "has details.")
        finally:
            self._release()
            self.done.set()

    def _release(self) -> None:
        """The stream stops counting as open (before its final record, so a client that saw
        the record sees the counters updated) and lets go of its model."""
        if not self._released:
            self._released = True
            self.queue.close()
            self.model.release()
            self.conn.server.metrics.add(streams_open=-1)

    def _finish(self, item: _EndItem, dropped_total: int) -> None:
        if item.trailing_bytes:
            n = item.trailing_bytes
            self.stream.warnings.append(
                f"the last {n} byte{'s' if n > 1 else ''} did not make a whole frame "
                f"({self.frame_bytes} bytes) and {'were' if n > 1 else 'was'} ignored")
        if dropped_total:
            self.stream.warnings.append(
                f"{dropped_total} frames ({dropped_total / self.rate_hz:.3f} s) of audio were "
                "dropped because the client sent faster than the stream was processed "
                "(overflow: drop)")
        with self.model.batcher.busy():
            step = self.stream.close()
        self._emit_step(step, item.t0)
        self._release()
        self._emit({"type": "file", "stream": self.id} | file_record(step.end))

    def _fail(self, message: str) -> None:
        self.failed = True
        self.conn.server.metrics.add(streams_failed=1)
        self._release()
        with contextlib.suppress(Gone):
            self._emit({"type": "failure", "stream": self.id}
                       | failure_record(self.source, message))

    def _emit_step(self, step, t0: float) -> None:
        for w in step.windows:
            self._emit({"type": "window", "stream": self.id, "source": self.source}
                       | window_record(w), t0)
        for e in step.events:
            self._emit({"type": "event", "stream": self.id, "source": self.source}
                       | event_record(e))
        if step.windows or step.events:
            self.conn.server.metrics.add(windows=len(step.windows), events=len(step.events))

    def _emit(self, record: dict, t0: float | None = None) -> None:
        if not self.conn.out.put(P.encode(record), t0):
            raise Gone


def _pcm(data: bytes, channels: int, sample_format: str):
    from edgeser import frontend

    try:
        return frontend.pcm_to_float(data, channels, sample_format)
    except frontend.FrontendError as err:
        if "NaN" in str(err):
            raise AudioError("contains a non-finite sample (NaN or infinity)") from None
        raise


# ---------------------------------------------------------------------------------------------
# Connections


class Connection:
    """One client: a reader thread (parse, route, answer) and a writer thread (send records)."""

    def __init__(self, server: "Server", transport: Transport):
        self.server, self.transport = server, transport
        o = server.options
        self.out = OutQueue(o.out_queue_bytes)
        self.parser = P.Parser(o.max_line, o.max_frame)
        self.streams: dict[str, StreamWorker] = {}
        self.draining = False
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"edgeser-read-{transport.name}",
                                        daemon=True)
        self._writer = threading.Thread(target=self._write,
                                        name=f"edgeser-write-{transport.name}", daemon=True)

    def start(self) -> None:
        self.out.put(P.encode(self.server.hello_record()))
        self._writer.start()
        self._reader.start()

    @property
    def dead(self) -> bool:
        return self.out.dead

    def stopping(self) -> bool:
        return self.out.dead or self.draining

    def drain(self) -> None:
        self.draining = True

    def kill(self) -> None:
        self.out.kill()

    # -- the writer ----------------------------------------------------------------------------

    def _write(self) -> None:
        metrics = self.server.metrics
        timeout = self.server.options.client_timeout_s
        try:
            while True:
                items = self.out.take()
                if items is None:
                    return
                if not items:
                    continue
                data = memoryview(b"".join(d for d, _ in items))
                progress = time.monotonic()
                while data:
                    sent = self.transport.send(data, TICK_S)
                    now = time.monotonic()
                    if sent:
                        data, progress = data[sent:], now
                    elif self.out.dead:
                        return
                    elif now - progress > timeout:
                        metrics.add(slow_disconnects=1)
                        log(f"{self.transport.name}: read nothing for {timeout:g} s; "
                             "disconnected.")
                        self.kill()
                        return
                now = time.monotonic()
                for _, t0 in items:
                    if t0 is not None:
                        metrics.latency(now - t0)
        except Gone:
            self.kill()

    # -- the reader ----------------------------------------------------------------------------

    def _read(self) -> None:
        clean = False  # EOF at a message boundary or a drain: end the streams with results
        try:
            clean = self._read_loop()
        except Exception as err:  # a bug: logged, the connection closes, the server goes on
            log(f"internal error on {self.transport.name}: {type(err).__name__}: {err}")
        finally:
            self._close(clean)

    def _read_loop(self) -> bool:
        while True:
            if self.dead:
                return False
            if self.draining:
                return True
            try:
                data = self.transport.recv(TICK_S)
            except Gone:
                return False
            if data is None:
                continue
            if not data:
                problem = self.parser.eof()
                if problem is not None:
                    self._error(problem)
                    return False
                return True
            for message in self.parser.feed(data):
                self._handle(message, time.monotonic())
                if self.parser.dead or self.dead:
                    return False

    def _close(self, clean: bool) -> None:
        workers = list(self.streams.values())
        for worker in workers:
            if not worker.failed:
                worker.end(_END if clean and not self.dead else _CANCEL)
        for worker in workers:
            cancelled = False
            while not worker.done.wait(TICK_S):
                if self.dead and not cancelled:  # the client went away while results were due
                    worker.queue.put_control(_EndItem(_CANCEL))
                    cancelled = True
        self.streams.clear()
        if clean and not self.dead:
            self.out.put(P.encode({"type": "bye",
                                   "reason": "shutdown" if self.draining else "eof"}))
        self.out.finish()
        self._writer.join()
        self.transport.close()
        self.server.metrics.add(clients_open=-1)
        self.server.forget(self)
        self.closed.set()

    # -- messages ------------------------------------------------------------------------------

    def _error(self, err: P.ProtocolError) -> None:
        self.server.metrics.error(err.code)
        self.out.put(P.encode(err.record()))

    def _handle(self, message: P.Message, t0: float) -> None:
        if isinstance(message, P.ProtocolError):
            self._error(message)
            return
        try:
            if isinstance(message, P.Audio):
                self._audio(message, t0)
                return
            handler = {"hello": self._hello, "open": self._open, "end": self._end,
                       "health": self._health, "reload": self._reload}.get(message.op)
            if handler is None:
                raise P.ProtocolError("unknown-op", f"unknown op {message.op[:40]!r}; the ops "
                                      f"are {', '.join(P.OPS)}.",
                                      request_id=message.body.get("id")
                                      if P.valid_id(message.body.get("id")) else None)
            request_id = P.check_fields(message, message.op)
            handler(message.body, request_id)
        except P.ProtocolError as err:
            self._error(err)
            if err.fatal:
                self.parser.dead = True

    def _audio(self, message: P.Audio, t0: float) -> None:
        request_id = P.check_fields(message, "audio")
        sid = P.stream_id(message.body, request_id)
        worker = self.streams.get(sid)
        if worker is None:
            raise P.ProtocolError("unknown-stream", f"no open stream {sid!r} on this connection.",
                                  stream=sid, request_id=request_id)
        if worker.failed or self.draining:
            return  # its failure record was final; late audio is discarded quietly
        if message.payload:
            worker.push(message.payload, t0)

    def _hello(self, body: dict, request_id: Any) -> None:
        version = body.get("protocol")
        if version != P.PROTOCOL_VERSION or isinstance(version, bool):
            raise P.ProtocolError("unsupported-protocol", f"this server speaks protocol "
                                  f"{P.PROTOCOL_VERSION}, not {str(version)[:20]}.", fatal=True,
                                  request_id=request_id)

    def _open(self, body: dict, request_id: Any) -> None:
        sid = P.stream_id(body, request_id)
        server, options = self.server, self.server.options

        def refuse(code: str, message: str) -> P.ProtocolError:
            return P.ProtocolError(code, message, stream=sid, request_id=request_id)

        if server.draining:
            raise refuse("shutting-down", "the server is shutting down and opens no new streams.")
        old = self.streams.get(sid)
        if old is not None and not old.failed:
            raise refuse("stream-exists", f"stream {sid!r} is already open on this connection.")
        rate, channels, fmt = body.get("rate_hz"), body.get("channels"), body.get("sample_format")
        for key, value in (("rate_hz", rate), ("channels", channels)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise refuse("bad-format", f'"{key}" must be an integer, got {value!r}.')
        if not _MIN_RATE_HZ <= rate <= _MAX_RATE_HZ:
            raise refuse("bad-format", f"a rate of {rate} Hz is not supported; supported rates "
                         f"are {_MIN_RATE_HZ} to {_MAX_RATE_HZ} Hz.")
        if not 1 <= channels <= _MAX_CHANNELS:
            raise refuse("bad-format", f"{channels} channels are not supported; give 1 to "
                         f"{_MAX_CHANNELS}.")
        if fmt not in SAMPLE_FORMATS:
            raise refuse("bad-format", f"unknown sample format {str(fmt)[:20]!r}; use one of "
                         f"{', '.join(SAMPLE_FORMATS)}.")
        source = body.get("source", sid)
        if not isinstance(source, str) or not source or len(source) > P.MAX_SOURCE_CHARS \
                or not source.isprintable():
            raise refuse("bad-request", f'"source" must be printable text of 1 to '
                         f"{P.MAX_SOURCE_CHARS} characters.")
        policy = body.get("overflow", options.overflow)
        if policy not in P.OVERFLOW_POLICIES:
            raise refuse("bad-request", f'"overflow" must be one of '
                         f"{', '.join(P.OVERFLOW_POLICIES)}.")
        overrides: dict[str, Any] = {}
        for key in P.OPEN_OVERRIDES:
            if key == "operating_point":
                value = body.get(key)
                if value is not None and (not isinstance(value, str) or len(value) > 64):
                    raise refuse("bad-option", '"operating_point" must be a name from the '
                                 "bundle.")
            else:
                value = P.number(body, key, stream=sid, request_id=request_id)
            if value is not None:
                overrides[key] = value
        for key in P.OPEN_SWITCHES:
            value = body.get(key)
            if value is not None and not isinstance(value, bool):
                raise refuse("bad-option", f'"{key}" must be true or false, got {value!r}.')
            if value is not None:
                overrides[key] = value
        if overrides.get("window_s", 0) > P.MAX_WINDOW_S:
            raise refuse("bad-option", f"a window of {overrides['window_s']:g} s is longer than "
                         f"the server's limit of {P.MAX_WINDOW_S:g} s.")
        active = sum(1 for w in self.streams.values() if not w.failed)
        if active >= options.max_streams_per_client:
            raise refuse("too-many-streams", f"this connection has {active} open streams, the "
                         f"most one client may have (--max-streams-per-client).")
        if not server.reserve_stream():
            raise refuse("too-many-streams", f"the server has {options.max_streams} open streams, "
                         "its limit (--max-streams).")
        model = server.model
        try:
            stream, run_info = model.open(rate, channels, source, overrides)
        except EdgeserError as err:
            server.metrics.add(streams_open=-1, streams_total=-1)
            code = "bad-format" if isinstance(err, AudioError) else "bad-option"
            raise refuse(code, _sentence(err)) from None
        worker = StreamWorker(self, sid, source, model, stream, run_info, rate, channels, fmt,
                              policy)
        self.streams[sid] = worker
        self._prune_failed()
        self.out.put(P.encode(P.with_id(
            {"type": "run", "stream": sid, "schema_version": RESULT_SCHEMA_VERSION,
             "edgeser": __version__, "model": model_record(run_info)}, request_id)))
        worker.thread.start()

    def _prune_failed(self) -> None:
        failed = [sid for sid, w in self.streams.items() if w.failed]
        for sid in failed[:max(0, len(failed) - _FAILED_KEPT)]:
            del self.streams[sid]

    def _end(self, body: dict, request_id: Any) -> None:
        sid = P.stream_id(body, request_id)
        worker = self.streams.pop(sid, None)
        if worker is None:
            raise P.ProtocolError("unknown-stream", f"no open stream {sid!r} on this connection.",
                                  stream=sid, request_id=request_id)
        if not worker.failed:
            worker.end()

    def _health(self, body: dict, request_id: Any) -> None:
        self.out.put(P.encode(P.with_id(self.server.health_record(), request_id)))

    def _reload(self, body: dict, request_id: Any) -> None:
        try:
            model = self.server.reload()
        except EdgeserError as err:
            raise P.ProtocolError("reload-failed", f"{_sentence(err)[:-1]}; the server keeps "
                                  "the model it had.", request_id=request_id) from None
        self.out.put(P.encode(P.with_id(
            {"type": "reloaded", "generation": model.generation,
             "model": model_record(model.run_info)}, request_id)))


def _sentence(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if text.endswith(".") else text + "."


# ---------------------------------------------------------------------------------------------
# The server


class Server:
    """Load with :meth:`load`, bind with :meth:`listen`, then :meth:`run` until drained."""

    def __init__(self, model_path: str | os.PathLike, detection: DetectionOptions,
                 options: ServeOptions, *, notifier=None):
        self.model_path = model_path
        self.detection = detection
        self.options = options
        self.notifier = notifier
        self.metrics = Metrics()
        self.model: LoadedModel | None = None  # type: ignore[assignment]
        self._generation = 0
        self._reload_lock = threading.Lock()
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()
        self._listeners: list[tuple[socket.socket, str]] = []
        self._socket_identity: tuple[int, int] | None = None
        self._stdio: Connection | None = None
        self.draining = False
        self._stop_requested = False
        self._reload_requested = False
        self.addresses: list[str] = []

    # -- setup ---------------------------------------------------------------------------------

    def load(self) -> LoadedModel:
        detector = Detector.load(self.model_path, options=self.detection)
        self._generation += 1
        self.model = LoadedModel(detector, self._generation,
                                 batch_wait_s=self.options.batch_wait_s)
        return self.model

    def listen(self) -> list[str]:
        """Bind every listener; returns their addresses (``unix:PATH``, ``tcp:HOST:PORT``)."""
        o = self.options
        try:
            if o.socket_path is not None:
                sock, self._socket_identity = unix_listener(o.socket_path, o.socket_mode)
                self._listeners.append((sock, "unix"))
                self.addresses.append(f"unix:{o.socket_path}")
            if o.tcp is not None:
                sock = tcp_listener(*o.tcp)
                self._listeners.append((sock, "tcp"))
                host, port = sock.getsockname()[:2]
                self.addresses.append(f"tcp:[{host}]:{port}" if ":" in host
                                      else f"tcp:{host}:{port}")
        except ServeError:
            self.close_listeners()
            raise
        return self.addresses

    # -- control (safe from signal handlers: they only set flags) ------------------------------

    def request_stop(self) -> None:
        self._stop_requested = True

    def request_reload(self) -> None:
        self._reload_requested = True

    def reserve_stream(self) -> bool:
        return self.metrics.open_stream(self.options.max_streams)

    def forget(self, conn: Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    def reload(self) -> LoadedModel:
        """Load the bundle again from ``model_path``; new streams use it. Raises EdgeserError
        (the old model stays) when it cannot be loaded."""
        with self._reload_lock:
            if self.notifier:
                self.notifier.reloading()
            try:
                detector = Detector.load(self.model_path, options=self.detection)
            except Exception as err:  # EdgeserError, or a loader error not wrapped as one
                if not isinstance(err, EdgeserError):
                    err = ServeError(f"{self.model_path}: cannot be loaded "
                                     f"({type(err).__name__}: {err}).")
                log(f"reload failed, keeping generation {self.model.generation}: {err}")
                raise err from None
            finally:
                if self.notifier:
                    self.notifier.ready(self._status())
            self._generation += 1
            new = LoadedModel(detector, self._generation, batch_wait_s=self.options.batch_wait_s)
            old, self.model = self.model, new
            old.retire()
            self.metrics.add(reloads=1)
            log(f"reloaded {self.model_path}: generation {new.generation} "
                 f"({detector.bundle.model_id}, {detector.bundle.task}); open streams finish on "
                 f"generation {old.generation}.")
            return new

    # -- records -------------------------------------------------------------------------------

    def hello_record(self) -> dict[str, Any]:
        model = self.model
        return {"type": "hello", "protocol": P.PROTOCOL_VERSION, "edgeser": __version__,
                "schema_version": RESULT_SCHEMA_VERSION, "generation": model.generation,
                "model": model_record(model.run_info), "limits": self.options.limits()}

    def health_record(self) -> dict[str, Any]:
        return {"type": "health", "protocol": P.PROTOCOL_VERSION, "edgeser": __version__,
                "status": "draining" if self.draining else "serving",
                "model": self.model.describe()} | self.metrics.snapshot() \
            | {"latency_s": self.metrics.latency_summary()}

    def _status(self) -> str:
        m = self.metrics
        return f"serving {self.model.detector.bundle.model_id}: {m.streams_open} streams open"

    # -- running -------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until a stop is requested (or, with stdio, the client is done); then drain."""
        threads = [threading.Thread(target=self._accept, args=(sock, kind), daemon=True,
                                    name=f"edgeser-accept-{kind}")
                   for sock, kind in self._listeners]
        for thread in threads:
            thread.start()
        if self.options.stdio:
            self._stdio = self._admit(Transport(0, 1, "stdio"))
        if self.notifier:
            self.notifier.ready(self._status())
        reloading: threading.Thread | None = None
        while not self._stop_requested:
            time.sleep(0.1)
            if self._reload_requested and (reloading is None or not reloading.is_alive()):
                self._reload_requested = False
                reloading = threading.Thread(target=self._reload_quietly, daemon=True,
                                             name="edgeser-reload")
                reloading.start()
            self._ping()
            if self._stdio is not None and self._stdio.closed.is_set():
                break
        self._drain(threads)
        return 0

    def _reload_quietly(self) -> None:
        with contextlib.suppress(EdgeserError):
            self.reload()

    def _ping(self) -> None:
        """WATCHDOG=1 when due, and only while inference is not stuck."""
        n = self.notifier
        if n is None or not n.watchdog_due():
            return
        model = self.model
        if model.batcher.alive and model.batcher.stuck_for() < n.watchdog_interval_s:
            n.watchdog()

    def _drain(self, accept_threads: list[threading.Thread]) -> None:
        self._stop_requested = True  # also ends the accept loops
        self.draining = True
        if self.notifier:
            self.notifier.stopping()
        with self._lock:
            conns = list(self._connections)
        n_streams = self.metrics.streams_open
        log(f"draining: {len(conns)} connections, {n_streams} open streams get their last "
             "results.")
        for thread in accept_threads:
            thread.join()
        self.close_listeners()
        for conn in conns:
            conn.drain()
        deadline = time.monotonic() + self.options.drain_timeout_s
        for conn in conns:
            while not conn.closed.wait(0.1):
                self._ping()
                if time.monotonic() > deadline:
                    break
        late = [c for c in conns if not c.closed.is_set()]
        for conn in late:
            log(f"{conn.transport.name}: not drained within {self.options.drain_timeout_s:g} s; "
                 "closed.")
            conn.kill()
        for conn in late:
            conn.closed.wait(5)
        self.model.batcher.stop(timeout=5)
        log("drained; exiting.")

    def close_listeners(self) -> None:
        for sock, kind in self._listeners:
            with contextlib.suppress(OSError):
                sock.close()
        self._listeners = []
        path = self.options.socket_path
        if path is not None and self._socket_identity is not None:
            # Only the socket this server made: a successor may already have replaced it.
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if (st.st_dev, st.st_ino) == self._socket_identity:
                    os.unlink(path)
            self._socket_identity = None

    def _accept(self, sock: socket.socket, kind: str) -> None:
        sock.settimeout(TICK_S)
        serial = 0
        while not self._stop_requested:
            try:
                client, address = sock.accept()
            except socket.timeout:
                continue
            except OSError as err:
                if self._stop_requested:
                    return
                log(f"accept failed on {kind} ({err.strerror or err}); retrying.")
                time.sleep(0.1)
                continue
            serial += 1
            name = f"unix#{serial}" if kind == "unix" else f"tcp:{address[0]}:{address[1]}"
            with self._lock:
                full = len(self._connections) >= self.options.max_clients
            if full:
                self.metrics.add(clients_refused=1)
                self.metrics.error("too-many-clients")
                with contextlib.suppress(OSError):
                    client.setblocking(False)
                    client.send(P.encode(P.error_record(
                        "too-many-clients", f"the server has {self.options.max_clients} "
                        "clients, its limit (--max-clients); try again later.", fatal=True)))
                client.close()
                continue
            self._admit(Transport.of_socket(client, name))

    def _admit(self, transport: Transport) -> Connection:
        conn = Connection(self, transport)
        with self._lock:
            self._connections.add(conn)
        self.metrics.add(clients_open=1, clients_total=1)
        conn.start()
        return conn
