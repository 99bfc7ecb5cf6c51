"""The ``edgeser serve`` line protocol, version 1: framing, messages, records and typed errors.

Transport
---------
A byte stream in both directions: a unix socket (``--socket``), TCP (``--tcp``) or the server's
stdin/stdout (``--stdio``). The server speaks first, with a ``hello`` record.

Client to server: every message is one JSON object on one line (UTF-8, ending in ``\\n``; ``\\r\\n``
is accepted, blank lines are ignored), at most ``--max-line`` bytes (default 65536). An ``audio``
message is followed directly by exactly ``bytes`` bytes of raw PCM (nothing after them: the next
message starts at the next byte), at most ``--max-frame`` bytes (default 256 KiB). Audio travels as
binary, not base64 in JSON: no 33 % inflation, no encoding or decoding per sample, the payload is
handed to the PCM converter as it came, and the one framing rule (a JSON line; ``audio`` says how
many bytes follow) keeps the stream debuggable with a hex dump and writable from a shell.

Server to client: one JSON object per line (UTF-8, ``\\n``), each with a ``"type"``. No NaN or
infinity ever appears.

Every client message may carry ``"id"`` (a string or integer); the records that answer it
(``run``, ``health``, ``reloaded``, ``error``) carry it back. Unknown fields are refused
(``bad-request``), so a typo such as ``"rate"`` for ``"rate_hz"`` is said, not ignored.

Client messages (``op``)
------------------------
``{"op": "hello", "protocol": 1}``
    Optional. A protocol version the server does not speak is a fatal ``unsupported-protocol``.
``{"op": "open", "stream": ID, "rate_hz": 48000, "channels": 1, "sample_format": "s16", ...}``
    Opens a stream. ``ID`` is 1 to 64 characters from ``A-Za-z0-9._:-``, unique among the
    connection's open streams. ``sample_format`` is ``u8``, ``s16``, ``s24``, ``s32`` (integers
    little-endian), ``f32`` or ``f64`` (host byte order), channels interleaved. Optional:
    ``source`` (the name the records carry; default the stream id), ``threshold`` or
    ``operating_point``, ``min_duration_s``, ``merge_gap_s``, ``release`` (laughter bundles),
    ``window_s``, ``hop_s`` (rounded to 20 ms frames; at least the model's receptive field, at most
    ``MAX_WINDOW_S``, hop not longer than the window), ``silence_dbfs``, ``vad`` (true/false),
    ``min_speech``, ``denoise`` (true/false), and ``overflow``
    (``block`` or ``drop``, default the server's ``--overflow``). Answered by a ``run`` record.
``{"op": "audio", "stream": ID, "bytes": N}`` followed by N bytes of PCM
    Frames may split samples: bytes of an incomplete frame wait for the next message.
``{"op": "end", "stream": ID}``
    Ends the stream: its last ``window`` and ``event`` records, then ``file`` (or ``failure``).
``{"op": "health"}``
    Answered by a ``health`` record: model, uptime, streams and clients open and in total,
    windows, inference calls and batch sizes, dropped audio, errors by code, result latency.
``{"op": "reload"}``
    Reloads the bundle from the path the server was started with (as SIGHUP does); answered by
    ``reloaded`` or an ``error`` with code ``reload-failed`` (the old model stays). Streams
    already open finish on the model they started with (their ``run`` record stays true); new
    streams use the new one.

Closing the sending side (EOF at a message boundary) ends every open stream as ``end`` would;
the server then writes their last records, ``bye`` and closes. EOF inside a message cancels the
connection's streams.

Server records (``type``)
-------------------------
``hello``: ``protocol``, ``edgeser``, ``schema_version``, ``model`` (the default settings, as in
a ``run`` record), ``generation`` (1, then +1 per reload), ``limits``.

Per stream, the records of ``edgeser detect --format jsonl`` (result schema
``RESULT_SCHEMA_VERSION``, documented in the README) with a ``"stream"`` field added: ``run``
(``schema_version``, ``edgeser``, ``model``: the settings this stream uses) when it opens,
``window`` and ``event`` records as results close (``source`` is the stream's source), and at
the end ``file`` (``summary``, ``warnings``) or ``failure`` (``error``: one sentence) when the
stream's audio cannot be used (too short, NaN samples). ``file`` and ``failure`` are final.

``dropped`` (``stream``, ``frames`` since the last ``dropped`` record, ``total_frames``,
``at_sample``: the 16 kHz sample index in the stream's results where the audio is missing): a
stream with ``overflow: drop`` sent audio faster than it was processed and the oldest queued audio
was discarded. Results then count only the audio processed; the ``file`` record's ``warnings``
repeat the total.

``error``: ``code``, ``message`` (one sentence), ``stream`` and ``id`` (or null), ``fatal``
(true: the server closes the connection after it). Codes: ``bad-json``, ``bad-request``,
``unknown-op``, ``unsupported-protocol``, ``bad-stream-id``, ``stream-exists``,
``unknown-stream``, ``too-many-streams``, ``too-many-clients``, ``bad-format``, ``bad-option``,
``line-too-long``, ``frame-too-large``, ``bad-frame``, ``truncated``, ``shutting-down``,
``reload-failed``, ``internal``.

``health``, ``reloaded`` (``generation``, ``model``), ``bye`` (``reason``: ``eof``,
``shutdown``) before the server closes a connection cleanly.

Flow control
------------
Each stream has an input queue of at most ``--queue-bytes`` (default 512 KiB) and each
connection an output queue of at most ``--out-queue-bytes`` (default 256 KiB).
``overflow: block`` (the default): a full input queue stops the server reading from that
connection until there is room, so a client sending faster than the model runs is slowed down by
the socket (right for uploads). ``overflow: drop``: the oldest queued audio of that stream is
discarded and counted (right for live capture, where late results are worth less than lost
audio). A client that stops reading its results fills its output queue; its streams then wait,
and when nothing could be written to it for ``--client-timeout`` seconds (default 30) the server
closes the connection. Either way a client only ever stalls its own streams. A client should
therefore read results while it sends (a thread, or ``select``); one that sends a long recording
before reading anything is cut off once its unread results fill the queues.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Union

PROTOCOL_VERSION = 1

# Defaults of the limits (each a flag of `edgeser serve`).
DEFAULT_MAX_LINE_BYTES = 64 * 1024
DEFAULT_MAX_FRAME_BYTES = 256 * 1024  # 0.8 s of 48 kHz stereo s16; frames are usually 10-100 ms
DEFAULT_QUEUE_BYTES = 512 * 1024  # 2.7 s of 48 kHz stereo s16, 16 s of 16 kHz mono s16
DEFAULT_OUT_QUEUE_BYTES = 256 * 1024  # about 800 window records
DEFAULT_MAX_STREAMS = 64
DEFAULT_MAX_STREAMS_PER_CLIENT = 8
DEFAULT_MAX_CLIENTS = 64
DEFAULT_CLIENT_TIMEOUT_S = 30.0
# The longest window a stream may ask for: bounds one window's memory and inference cost.
MAX_WINDOW_S = 30.0

OVERFLOW_POLICIES = ("block", "drop")
OPS = ("hello", "open", "audio", "end", "health", "reload")
# Fields each op accepts besides "op" and "id".
OPEN_REQUIRED = ("stream", "rate_hz", "channels", "sample_format")
OPEN_OVERRIDES = ("threshold", "operating_point", "window_s", "hop_s", "min_duration_s",
                  "merge_gap_s", "release", "silence_dbfs", "min_speech")
OPEN_SWITCHES = ("vad", "denoise")  # true or false
OP_FIELDS = {
    "hello": ("protocol",),
    "open": OPEN_REQUIRED + ("source", "overflow") + OPEN_OVERRIDES + OPEN_SWITCHES,
    "audio": ("stream", "bytes"),
    "end": ("stream",),
    "health": (),
    "reload": (),
}

ERROR_CODES = (
    "bad-json", "bad-request", "unknown-op", "unsupported-protocol", "bad-stream-id",
    "stream-exists", "unknown-stream", "too-many-streams", "too-many-clients", "bad-format",
    "bad-option", "line-too-long", "frame-too-large", "bad-frame", "truncated", "shutting-down",
    "reload-failed", "internal",
)

_STREAM_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
MAX_SOURCE_CHARS = 256


class ProtocolError(Exception):
    """A client message the server refuses: ``code`` (one of ``ERROR_CODES``), one sentence, and
    whether the connection cannot go on (``fatal``)."""

    def __init__(self, code: str, message: str, *, fatal: bool = False,
                 stream: str | None = None, request_id: Any = None):
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code, self.message, self.fatal = code, message, fatal
        self.stream, self.request_id = stream, request_id

    def record(self) -> dict[str, Any]:
        return error_record(self.code, self.message, stream=self.stream,
                            request_id=self.request_id, fatal=self.fatal)


@dataclass(frozen=True)
class Request:
    """A JSON line other than ``audio``: ``op`` and the whole object."""

    op: str
    body: dict


@dataclass(frozen=True)
class Audio:
    """An ``audio`` message and its payload."""

    stream: Any  # validated by the server (the framing does not depend on it)
    payload: bytes
    body: dict


Message = Union[Request, Audio, ProtocolError]


class Parser:
    """Client bytes in, messages out; no I/O (the server and the fuzz tests drive it).

    :meth:`feed` takes any split of the byte stream and returns the complete messages, in order:
    :class:`Request`, :class:`Audio`, or :class:`ProtocolError` for a message that was refused.
    After a fatal error the parser is dead and returns nothing more. Memory is bounded by
    ``max_line`` plus ``max_frame`` bytes.
    """

    def __init__(self, max_line: int = DEFAULT_MAX_LINE_BYTES,
                 max_frame: int = DEFAULT_MAX_FRAME_BYTES):
        self.max_line, self.max_frame = max_line, max_frame
        self._buf = bytearray()
        self._pos = 0  # start of the unparsed bytes in _buf
        self._scanned = 0  # index in _buf up to which no newline was found
        self._audio: dict | None = None  # header of the payload being read
        self._need = 0
        self.dead = False

    @property
    def idle(self) -> bool:
        """True between messages (nothing partial buffered)."""
        return self._audio is None and self._pos == len(self._buf)

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete message held."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> list[Message]:
        if self.dead:
            return []
        if self._pos:  # drop what earlier calls parsed (once per call: no quadratic copying)
            del self._buf[:self._pos]
            self._scanned = max(0, self._scanned - self._pos)
            self._pos = 0
        self._buf += data
        out: list[Message] = []
        buf = self._buf
        while not self.dead:
            if self._audio is not None:
                end = self._pos + self._need
                if len(buf) < end:
                    break
                payload = bytes(buf[self._pos:end])
                self._pos = self._scanned = end
                header, self._audio = self._audio, None
                out.append(Audio(header.get("stream"), payload, header))
                continue
            newline = buf.find(b"\n", max(self._pos, self._scanned))
            if newline < 0:
                self._scanned = len(buf)
                if len(buf) - self._pos > self.max_line:
                    out.append(self._too_long())
                break
            if newline - self._pos > self.max_line:
                out.append(self._too_long())
                break
            line = bytes(buf[self._pos:newline])
            self._pos = self._scanned = newline + 1
            message = self._line(line)
            if message is not None:
                out.append(message)
        return out

    def eof(self) -> ProtocolError | None:
        """The client closed its side: an error when it did so inside a message."""
        if self.dead or self.idle:
            return None
        what = (f"an audio frame ({self.buffered} of {self._need} bytes)"
                if self._audio is not None else "a message line")
        return self._fatal("truncated", f"the connection ended inside {what}.")

    def _too_long(self) -> ProtocolError:
        return self._fatal("line-too-long", f"a message line is longer than {self.max_line} "
                           "bytes (the server's --max-line).")

    def _fatal(self, code: str, message: str, **kwargs: Any) -> ProtocolError:
        self.dead = True
        self._buf, self._pos, self._scanned = bytearray(), 0, 0
        return ProtocolError(code, message, fatal=True, **kwargs)

    def _line(self, line: bytes) -> Message | None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            return None
        try:
            body = json.loads(line.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return ProtocolError("bad-json", "a message line is not valid JSON in UTF-8.")
        if not isinstance(body, dict):
            return ProtocolError("bad-json", "a message line must be a JSON object.")
        request_id = body.get("id")
        if not valid_id(request_id):
            request_id = None
        op = body.get("op")
        if op != "audio":
            if not isinstance(op, str):
                return ProtocolError("bad-request", 'a message needs an "op" string.',
                                     request_id=request_id)
            return Request(op, body)
        size = body.get("bytes")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            return self._fatal("bad-frame", 'an audio message needs "bytes", the non-negative '
                               "number of PCM bytes that follow it.", request_id=request_id)
        if size > self.max_frame:
            return self._fatal("frame-too-large", f"an audio frame of {size} bytes is larger "
                               f"than {self.max_frame} bytes (the server's --max-frame).",
                               request_id=request_id)
        if size == 0:
            return Audio(body.get("stream"), b"", body)
        self._audio, self._need = body, size
        return None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def valid_id(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return value is None
    if isinstance(value, int):
        return abs(value) < 2**53
    return isinstance(value, str) and len(value) <= 64


def check_fields(request: Request | Audio, op: str) -> Any:
    """The request's ``id``; raises ``bad-request`` for an invalid id or fields ``op`` does not
    take."""
    body = request.body
    request_id = body.get("id")
    if not valid_id(request_id):
        raise ProtocolError("bad-request", '"id" must be a string of at most 64 characters or an '
                            "integer.")
    unknown = sorted(k for k in body if k not in ("op", "id") and k not in OP_FIELDS[op])
    if unknown:
        raise ProtocolError("bad-request", f"{op} does not take {', '.join(map(repr, unknown))}; "
                            f"it takes {', '.join(OP_FIELDS[op]) or 'no fields'}.",
                            request_id=request_id, stream=_stream_or_none(body))
    return request_id


def stream_id(body: dict, request_id: Any = None) -> str:
    """The message's stream id, validated."""
    value = body.get("stream")
    if not isinstance(value, str) or not _STREAM_ID.fullmatch(value):
        raise ProtocolError("bad-stream-id", 'a "stream" id is 1 to 64 characters from '
                            "A-Z a-z 0-9 . _ : -.", request_id=request_id)
    return value


def _stream_or_none(body: dict) -> str | None:
    value = body.get("stream")
    return value if isinstance(value, str) and _STREAM_ID.fullmatch(value) else None


def number(body: dict, key: str, *, stream: str, request_id: Any) -> float | None:
    """An optional finite number field."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(float(value)):
        raise ProtocolError("bad-option", f'"{key}" must be a finite number, got {value!r}.',
                            stream=stream, request_id=request_id)
    return float(value)


# ---------------------------------------------------------------------------------------------
# Records


def encode(record: dict[str, Any]) -> bytes:
    """One record as its line (compact JSON, no NaN or infinity)."""
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def error_record(code: str, message: str, *, stream: str | None = None, request_id: Any = None,
                 fatal: bool = False) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "stream": stream,
            "id": request_id, "fatal": fatal}


def with_id(record: dict[str, Any], request_id: Any) -> dict[str, Any]:
    return record if request_id is None else record | {"id": request_id}
