"""A small client of ``edgeser serve`` (numpy and the standard library; no model runtime).

::

    from edgeser.serve.client import Client

    with Client.connect("/run/edgeser.sock") as client:        # or ("127.0.0.1", 8765)
        stream = client.open(rate_hz=48000, channels=1, sample_format="s16", threshold=0.7)
        for chunk in chunks:                                    # float arrays or PCM bytes
            stream.push(chunk)
        stream.end()
        for record in stream.results():                         # window, event, ..., file
            print(record["type"], record.get("start_s"))
        print(client.health()["latency_s"])

A background thread reads the connection and sorts records by stream, so pushing never waits on
results being read (the client holds them until :meth:`ClientStream.results` takes them).
Errors the server sends in answer to a call raise :class:`ClientError` with the record.
"""

from __future__ import annotations

import itertools
import json
import queue
import socket
import threading
from typing import Any, Iterator

import numpy as np

from edgeser.contract import SAMPLE_FORMAT_BYTES

_CLOSED = object()


class ClientError(Exception):
    """An ``error`` record in answer to a call (``record["code"]``), or a closed connection."""

    def __init__(self, message: str, record: dict | None = None):
        super().__init__(message)
        self.record = record or {}

    @property
    def code(self) -> str | None:
        return self.record.get("code")


class Client:
    """One connection to a server; build it with :meth:`connect`."""

    def __init__(self, sock: socket.socket, timeout: float = 30.0):
        self._sock = sock
        self.timeout = timeout
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._replies: dict[Any, queue.Queue] = {}
        self._streams: dict[str, queue.Queue] = {}
        self.control: queue.Queue = queue.Queue()  # hello, bye, errors of no call
        self.closed = threading.Event()
        self._file = sock.makefile("rb")
        self._reader = threading.Thread(target=self._read, daemon=True, name="edgeser-client")
        self._reader.start()
        self.hello = self._next_control("hello")

    @classmethod
    def connect(cls, address: str | tuple[str, int], timeout: float = 30.0) -> "Client":
        """``address``: a unix socket path, ``(host, port)``, ``unix:PATH`` or
        ``tcp:HOST:PORT``."""
        if isinstance(address, str) and address.startswith("tcp:"):
            host, _, port = address[4:].rpartition(":")
            address = (host.strip("[]"), int(port))
        elif isinstance(address, str) and address.startswith("unix:"):
            address = address[5:]
        if isinstance(address, tuple):
            sock = socket.create_connection(address, timeout=timeout)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(str(address))
        sock.settimeout(None)
        return cls(sock, timeout)

    # -- calls ---------------------------------------------------------------------------------

    def open(self, stream: str | None = None, *, rate_hz: int, channels: int = 1,
             sample_format: str = "f32", **options: Any) -> "ClientStream":
        """Open a stream (``options``: ``source``, ``threshold``, ``operating_point``,
        ``window_s``, ``hop_s``, ``overflow``, ...); returns once the server sent its ``run``
        record."""
        sid = stream or f"s{next(self._ids)}"
        records: queue.Queue = queue.Queue()
        with self._lock:
            self._streams[sid] = records
        try:
            run = self.call({"op": "open", "stream": sid, "rate_hz": rate_hz,
                             "channels": channels, "sample_format": sample_format, **options})
        except ClientError:
            with self._lock:
                self._streams.pop(sid, None)
            raise
        return ClientStream(self, sid, run, channels, sample_format, records)

    def health(self) -> dict:
        return self.call({"op": "health"})

    def reload(self) -> dict:
        return self.call({"op": "reload"}, timeout=max(self.timeout, 300.0))

    def call(self, message: dict, timeout: float | None = None) -> dict:
        """Send ``message`` with a fresh ``id`` and return the record answering it."""
        request_id = next(self._ids)
        reply: queue.Queue = queue.Queue()
        with self._lock:
            self._replies[request_id] = reply
        try:
            self.send(message | {"id": request_id})
            record = self._get(reply, timeout)
        finally:
            with self._lock:
                self._replies.pop(request_id, None)
        if record.get("type") == "error":
            raise ClientError(record["message"], record)
        return record

    def send(self, message: dict, payload: bytes = b"") -> None:
        """One message line (and an audio payload), written atomically."""
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self._send_lock:
            self._sock.sendall(data + payload if len(payload) < 65536 else data)
            if len(payload) >= 65536:
                self._sock.sendall(payload)

    def close(self) -> None:
        """Close the connection (open streams are cancelled by the server)."""
        with self._send_lock:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        self._reader.join(self.timeout)

    def finish(self) -> None:
        """Close the sending side (the server ends open streams as ``end`` would) and wait for
        the server to close the connection."""
        with self._send_lock:
            self._sock.shutdown(socket.SHUT_WR)
        self.closed.wait(self.timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------

    def _get(self, q: queue.Queue, timeout: float | None) -> dict:
        try:
            record = q.get(timeout=self.timeout if timeout is None else timeout)
        except queue.Empty:
            raise ClientError("the server did not answer in time.") from None
        if record is _CLOSED:
            q.put(_CLOSED)  # later readers see it too
            raise ClientError("the connection is closed.")
        return record

    def _next_control(self, kind: str) -> dict:
        record = self._get(self.control, None)
        if record.get("type") == "error":
            raise ClientError(record.get("message", "refused by the server."), record)
        if record.get("type") != kind:
            raise ClientError(f"expected a {kind} record, got {record.get('type')!r}.", record)
        return record

    def _read(self) -> None:
        try:
            for line in self._file:
                record = json.loads(line)
                self._route(record)
        except (OSError, ValueError):
            pass
        finally:
            self.closed.set()
            with self._lock:
                queues = [*self._replies.values(), *self._streams.values(), self.control]
            for q in queues:
                q.put(_CLOSED)

    def _route(self, record: dict) -> None:
        with self._lock:
            reply = self._replies.get(record.get("id")) if record.get("id") is not None else None
            target = reply or self._streams.get(record.get("stream")) or self.control
        target.put(record)


class ClientStream:
    """An open stream: :meth:`push` audio, :meth:`end`, iterate :meth:`results`."""

    def __init__(self, client: Client, sid: str, run: dict, channels: int, sample_format: str,
                 records: queue.Queue):
        self.client, self.id, self.run = client, sid, run
        self.channels, self.sample_format = channels, sample_format
        self._records = records
        self.done = False

    def push(self, audio: Any) -> None:
        """PCM bytes in the stream's format, or a float array (mono 1-D or (frames, channels),
        in [-1, 1]) converted to it; sent in frames no larger than the server takes."""
        payload = audio if isinstance(audio, (bytes, bytearray, memoryview)) \
            else to_pcm(audio, self.channels, self.sample_format)
        payload = memoryview(payload).cast("B")
        limit = int(self.client.hello.get("limits", {}).get("max_frame_bytes", 65536))
        frame = self.channels * SAMPLE_FORMAT_BYTES.get(self.sample_format, 1)
        step = max(frame, limit - limit % frame)
        for start in range(0, len(payload), step):
            piece = bytes(payload[start:start + step])
            self.client.send({"op": "audio", "stream": self.id, "bytes": len(piece)}, piece)

    def end(self) -> None:
        self.client.send({"op": "end", "stream": self.id})

    def results(self, timeout: float | None = None) -> Iterator[dict]:
        """The stream's records as they come, up to and including ``file`` or ``failure``."""
        while not self.done:
            record = self.client._get(self._records, timeout)
            if record.get("type") in ("file", "failure"):
                self.done = True
            yield record

    def __iter__(self) -> Iterator[dict]:
        return self.results()


_INT_SCALE = {"s16": (32768, "<i2"), "s32": (2**31, "<i4")}


def to_pcm(audio: Any, channels: int, sample_format: str) -> bytes:
    """A float array as interleaved PCM of ``sample_format`` (f32, f64, s16 or s32)."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1 and channels != 1 or x.ndim == 2 and x.shape[1] != channels or x.ndim > 2:
        raise ValueError(f"audio of shape {x.shape} does not fit a {channels}-channel stream.")
    if sample_format == "f32":
        return x.astype(np.float32).tobytes()
    if sample_format == "f64":
        return x.tobytes()
    if sample_format in _INT_SCALE:
        scale, dtype = _INT_SCALE[sample_format]
        return np.clip(np.round(x * scale), -scale, scale - 1).astype(dtype).tobytes()
    raise ValueError(f"convert audio to {sample_format} yourself and push bytes "
                     f"(this client converts arrays to f32, f64, s16 and s32).")
