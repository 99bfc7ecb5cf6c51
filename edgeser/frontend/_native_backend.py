"""The frontend's primitives over the compiled C library (``_binding``'s ``ffi`` and ``lib``).

:mod:`edgeser.frontend` imports this module or :mod:`edgeser.frontend.reference`, once, at its
own import; both define the same primitives with the same signatures (a test holds them to it):

- ``StreamResampler(rate_in_hz)`` with ``info()`` (the fields of ``ResamplerInfo``, in order,
  the last a tuple of such tuples, one per stage, each ending in an empty tuple),
  ``process(x)``, ``flush()`` (float32 arrays) and ``reset()``;
- ``mixdown(frames)``, ``pcm_to_float(data, channels, sample_format)``, ``normalize(x)``,
  ``rms_dbfs(x)`` and ``window_bounds(n, window, hop, min_len)``;
- ``StreamWindower(rate_in_hz, channels, sample_format, window, hop, min_len, silence_dbfs,
  normalize)`` with ``push(data)`` and ``finish()`` (lists of window tuples ``(index, start,
  samples, level_dbfs, silent)``), ``samples()`` and ``reset()``;
- ``StreamEvents(threshold, release, min_duration, merge_gap)`` with ``add(start, stop,
  probability)`` (``None`` for a silent window) and ``finish()``, each returning the closed
  event ``(start, stop, peak, peak_start, peak_stop, windows)`` or ``None``; and ``reset()``;
- ``StreamSummary(n_outputs)`` with ``add_window(values)`` (``None`` for a silent window),
  ``add_event(start, stop)``, ``totals()`` (``(windows, voiced, events, event_samples, top,
  means)``, ``top`` and ``means`` None when no window was voiced) and ``reset()``.

Arguments arrive validated: contiguous finite float32 arrays, rates and counts in range, a
buffer that holds whole frames. A non-OK status is still checked on every call and raised as
FrontendError by ``_binding.check``; nothing here validates or decides anything else.
"""

from __future__ import annotations

import numpy as np

from edgeser.frontend._binding import check, ffi, lib

if lib is None:  # pragma: no cover - the frontend imports this module only when NATIVE
    raise ImportError("edgeser._native is not built; the frontend uses its NumPy reference")

# The C enum for each sample format of edgeser.contract.SAMPLE_FORMATS (a test checks the two
# name the same formats with the same sizes).
PCM_FORMATS = {
    "u8": lib.EDGESER_PCM_U8,
    "s16": lib.EDGESER_PCM_S16,
    "s24": lib.EDGESER_PCM_S24,
    "s32": lib.EDGESER_PCM_S32,
    "f32": lib.EDGESER_PCM_F32,
    "f64": lib.EDGESER_PCM_F64,
}


def _fptr(arr: np.ndarray):
    return ffi.cast("float *", ffi.from_buffer(arr))


def _info_tuple(raw) -> tuple:
    return (
        raw.rate_in_hz, raw.rate_out_hz, raw.up, raw.down, raw.taps_per_phase, raw.phases,
        bool(raw.exact), raw.passband_hz, raw.stopband_hz, raw.stopband_db, raw.table_bytes,
    )


class StreamResampler:
    """One ``edgeser_resampler`` on the heap, released when the object is collected."""

    def __init__(self, rate_in_hz: int):
        handle = ffi.new("edgeser_resampler **")
        check(lib.edgeser_resampler_create(rate_in_hz, handle), "creating a resampler")
        self._handle = ffi.gc(handle[0], lib.edgeser_resampler_destroy)

    def info(self) -> tuple:
        raw = ffi.new("edgeser_resampler_info *")
        count = ffi.new("uint32_t *")
        check(lib.edgeser_resampler_info_get(self._handle, raw), "reading resampler info")
        whole = _info_tuple(raw)
        check(lib.edgeser_resampler_stage_count(self._handle, count), "reading resampler info")
        stages = []
        for k in range(count[0]):
            check(lib.edgeser_resampler_stage_info(self._handle, k, raw), "reading resampler info")
            stages.append(_info_tuple(raw) + ((),))
        return whole + (tuple(stages),)

    def process(self, x: np.ndarray) -> np.ndarray:
        n_out = ffi.new("size_t *")
        check(lib.edgeser_resampler_max_output(self._handle, x.size, n_out), "resampling")
        out = np.empty(n_out[0], dtype=np.float32)
        check(
            lib.edgeser_resampler_process(
                self._handle, _fptr(x), x.size, _fptr(out), out.size, n_out
            ),
            "resampling",
        )
        return out[: n_out[0]]

    def flush(self) -> np.ndarray:
        n_out = ffi.new("size_t *")
        check(lib.edgeser_resampler_flush_output(self._handle, n_out), "flushing the resampler")
        out = np.empty(n_out[0], dtype=np.float32)
        check(
            lib.edgeser_resampler_flush(self._handle, _fptr(out), out.size, n_out),
            "flushing the resampler",
        )
        return out[: n_out[0]]

    def reset(self) -> None:
        check(lib.edgeser_resampler_reset(self._handle), "resetting the resampler")


def mixdown(frames: np.ndarray) -> np.ndarray:
    n_frames, channels = frames.shape
    out = np.empty(n_frames, dtype=np.float32)
    check(lib.edgeser_mixdown(_fptr(frames), n_frames, channels, _fptr(out)), "mixing down")
    return out


def pcm_to_float(data, channels: int, sample_format: str) -> np.ndarray:
    buf = memoryview(data).cast("B")
    n_frames = len(buf) // (channels * lib.edgeser_pcm_bytes_per_sample(PCM_FORMATS[sample_format]))
    out = np.empty((n_frames, channels), dtype=np.float32)
    check(
        lib.edgeser_pcm_to_float(
            ffi.from_buffer(buf), n_frames, channels, PCM_FORMATS[sample_format], _fptr(out)
        ),
        "converting PCM",
    )
    return out


def normalize(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    check(lib.edgeser_normalize(_fptr(x), x.size, _fptr(out)), "normalising")
    return out


def rms_dbfs(x: np.ndarray) -> float:
    level = ffi.new("float *")
    check(lib.edgeser_rms_dbfs(_fptr(x), x.size, level), "measuring level")
    return float(level[0])


def window_bounds(n: int, window: int, hop: int, min_len: int) -> list[tuple[int, int]]:
    count = ffi.new("size_t *")
    check(lib.edgeser_window_count(n, window, hop, min_len, count), "windowing")
    start, length = ffi.new("size_t *"), ffi.new("size_t *")
    bounds = []
    for k in range(count[0]):
        check(lib.edgeser_window_bounds(n, window, hop, min_len, k, start, length), "windowing")
        bounds.append((int(start[0]), int(length[0])))
    return bounds


class StreamWindower:
    """One ``edgeser_windower`` on the heap: PCM bytes in, prepared 16 kHz windows out."""

    def __init__(self, rate_in_hz: int, channels: int, sample_format: str, window: int, hop: int,
                 min_len: int, silence_dbfs: float, normalize: bool):
        config = ffi.new("edgeser_windower_config *")
        config.rate_in_hz = rate_in_hz
        config.channels = channels
        config.format = PCM_FORMATS[sample_format]
        config.window = window
        config.hop = hop
        config.min_len = min_len
        config.silence_dbfs = silence_dbfs
        config.normalization = (lib.EDGESER_NORMALIZE_PER_WINDOW if normalize
                                else lib.EDGESER_NORMALIZE_NONE)
        handle = ffi.new("edgeser_windower **")
        check(lib.edgeser_windower_create(config, handle), "creating a windower")
        self._handle = ffi.gc(handle[0], lib.edgeser_windower_destroy)
        self._frame_bytes = channels * lib.edgeser_pcm_bytes_per_sample(config.format)
        self._window = window
        self._info = ffi.new("edgeser_window *")
        self._has = ffi.new("int *")
        self._taken = ffi.new("size_t *")

    def _pull(self, out: list) -> None:
        info, has = self._info, self._has
        while True:
            buf = np.empty(self._window, dtype=np.float32)
            check(lib.edgeser_windower_next(self._handle, _fptr(buf), buf.size, info, has),
                  "windowing")
            if not has[0]:
                return
            out.append((int(info.index), int(info.start), buf[: info.length],
                        float(info.level_dbfs), bool(info.silent)))

    def push(self, data) -> list:
        view = memoryview(data).cast("B")
        n_frames = len(view) // self._frame_bytes
        base = ffi.from_buffer(view)
        out: list = []
        done = 0
        while True:
            check(lib.edgeser_windower_push(self._handle, base + done * self._frame_bytes,
                                            n_frames - done, self._taken), "windowing")
            done += self._taken[0]
            self._pull(out)
            if done == n_frames:
                return out

    def finish(self) -> list:
        check(lib.edgeser_windower_finish(self._handle), "ending the windower's stream")
        out: list = []
        self._pull(out)
        return out

    def samples(self) -> int:
        total = ffi.new("uint64_t *")
        check(lib.edgeser_windower_samples(self._handle, total), "counting samples")
        return int(total[0])

    def reset(self) -> None:
        check(lib.edgeser_windower_reset(self._handle), "resetting the windower")


def _event_tuple(event) -> tuple:
    return (int(event.start), int(event.stop), float(event.peak), int(event.peak_start),
            int(event.peak_stop), int(event.windows))


class StreamEvents:
    """One ``edgeser_event_tracker`` on the heap."""

    def __init__(self, threshold: float, release: float, min_duration: int, merge_gap: int):
        config = ffi.new("edgeser_event_config *")
        config.threshold = threshold
        config.release = release
        config.min_duration = min_duration
        config.merge_gap = merge_gap
        handle = ffi.new("edgeser_event_tracker **")
        check(lib.edgeser_event_tracker_create(config, handle), "creating an event tracker")
        self._handle = ffi.gc(handle[0], lib.edgeser_event_tracker_destroy)
        self._event = ffi.new("edgeser_event *")
        self._closed = ffi.new("int *")

    def add(self, start: int, stop: int, probability: float | None):
        silent = probability is None
        check(lib.edgeser_event_tracker_add(self._handle, start, stop,
                                            0.0 if silent else probability, silent, self._event,
                                            self._closed), "tracking events")
        return _event_tuple(self._event) if self._closed[0] else None

    def finish(self):
        check(lib.edgeser_event_tracker_finish(self._handle, self._event, self._closed),
              "ending the event tracker's stream")
        return _event_tuple(self._event) if self._closed[0] else None

    def reset(self) -> None:
        check(lib.edgeser_event_tracker_reset(self._handle), "resetting the event tracker")


class StreamSummary:
    """One ``edgeser_summary`` on the heap."""

    def __init__(self, n_outputs: int):
        handle = ffi.new("edgeser_summary **")
        check(lib.edgeser_summary_create(n_outputs, handle), "creating a summary")
        self._handle = ffi.gc(handle[0], lib.edgeser_summary_destroy)
        self._n = n_outputs
        self._values = ffi.new("double[]", n_outputs)

    def add_window(self, values) -> None:
        if values is None:
            check(lib.edgeser_summary_add_window(self._handle, ffi.NULL), "summarising")
            return
        self._values[0:self._n] = values
        check(lib.edgeser_summary_add_window(self._handle, self._values), "summarising")

    def add_event(self, start: int, stop: int) -> None:
        check(lib.edgeser_summary_add_event(self._handle, start, stop), "summarising")

    def totals(self) -> tuple:
        totals = ffi.new("edgeser_summary_totals *")
        means = ffi.new("double[]", self._n)
        check(lib.edgeser_summary_get(self._handle, totals, means), "summarising")
        voiced = int(totals.voiced)
        return (int(totals.windows), voiced, int(totals.events), int(totals.event_samples),
                int(totals.top) if voiced else None, list(means) if voiced else None)

    def reset(self) -> None:
        check(lib.edgeser_summary_reset(self._handle), "resetting the summary")
