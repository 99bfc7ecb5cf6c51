/*
 * edgeser native frontend: PCM conversion, channel mixdown, streaming resampling to 16 kHz,
 * per-window normalisation, windowing and RMS energy for the silence gate; a streaming windower
 * that chains them (PCM in, prepared 16 kHz windows out); laughter events and per-stream
 * summaries from per-window model outputs.
 *
 * Conventions (read these first)
 * - C99, depends on libc and libm only. Every exported symbol starts with `edgeser_`.
 * - Every function that can fail returns an `edgeser_status`; EDGESER_OK is 0.
 *   `edgeser_strerror` turns a status into a static English sentence.
 * - Lengths are counts of samples per channel ("frames") unless a name says otherwise;
 *   rates are in Hz; levels in dBFS (20*log10 of the RMS, full-scale square wave = 0 dBFS,
 *   full-scale sine = -3.01 dBFS).
 * - Ownership: the caller owns every buffer. The library never keeps a pointer to caller
 *   buffers past the call that received them. Each stateful object (resampler, windower, event
 *   tracker, summary) lives either in memory the caller provides (`edgeser_X_size` +
 *   `edgeser_X_init`, for firmware without a heap; the memory must stay valid and unmoved
 *   until the object is no longer used, and is released by the caller) or in memory from
 *   `edgeser_X_create`, released by `edgeser_X_destroy`. The create functions are the only
 *   functions that allocate.
 * - Process calls never allocate, print, block or exit. Output capacity is checked against the
 *   exact `*_max_output` figure before anything is written; on any error nothing is written
 *   and the state is unchanged.
 * - Every length computation is checked for overflow (EDGESER_ERR_OVERFLOW).
 * - Float input is not inspected for NaN or Inf here; callers that need that guarantee
 *   (the Python layer does) check before calling. NaN in gives NaN out, never a crash.
 * - Streaming equals one shot: resampled samples and windows are bit-identical for every
 *   chunking of the same input. Between CPUs the last bits may differ (the resampler picks
 *   vector kernels with fused multiply-add where the CPU has them).
 * - Objects are not thread-safe; distinct objects may be used from distinct threads.
 * - Versions: EDGESER_VERSION_MAJOR/MINOR/PATCH (and EDGESER_VERSION_NUMBER =
 *   major*10000 + minor*100 + patch, EDGESER_VERSION_STRING "major.minor.patch") describe the
 *   header a program was compiled against; edgeser_version_number() and edgeser_version()
 *   describe the library it loaded at run time. The two are compatible when the major numbers
 *   agree: edgeser_version_number() / 10000 == EDGESER_VERSION_MAJOR. The shared library's
 *   SONAME (libedgeser_frontend.so.MAJOR) encodes the same rule for the dynamic linker; a
 *   program that uses a function added in a later minor release also needs
 *   edgeser_version_number() >= the EDGESER_VERSION_NUMBER it was compiled with.
 */
#ifndef EDGESER_FRONTEND_H
#define EDGESER_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define EDGESER_API __declspec(dllexport)
#elif defined(__GNUC__)
#define EDGESER_API __attribute__((visibility("default")))
#else
#define EDGESER_API
#endif

/* The version numbers are the one source of the version: the string, the number, the
 * shared library's file name and SONAME (native/Makefile) and the Python package version
 * (setup.py) are all derived from these three lines. Keep each a plain decimal literal. */
#define EDGESER_VERSION_MAJOR 0
#define EDGESER_VERSION_MINOR 3
#define EDGESER_VERSION_PATCH 0

#if EDGESER_VERSION_MINOR > 99 || EDGESER_VERSION_PATCH > 99
#error "EDGESER_VERSION_NUMBER needs minor and patch below 100"
#endif
#define EDGESER_VERSION_NUMBER \
    (EDGESER_VERSION_MAJOR * 10000 + EDGESER_VERSION_MINOR * 100 + EDGESER_VERSION_PATCH)
#define EDGESER_STRINGIFY_(x) #x
#define EDGESER_XSTRINGIFY_(x) EDGESER_STRINGIFY_(x)
#define EDGESER_VERSION_STRING \
    EDGESER_XSTRINGIFY_(EDGESER_VERSION_MAJOR) "." EDGESER_XSTRINGIFY_(EDGESER_VERSION_MINOR) \
    "." EDGESER_XSTRINGIFY_(EDGESER_VERSION_PATCH)

/* The model rate: every resampler produces 16 kHz mono. */
#define EDGESER_TARGET_RATE_HZ 16000u
/* Accepted input rates. */
#define EDGESER_MIN_RATE_HZ 1000u
#define EDGESER_MAX_RATE_HZ 384000u
/* Upper bound on a resampler's coefficient tables (all its stages together). Ratios whose
 * exact polyphase table fits use it; other ratios use a table of fewer phases with linear
 * interpolation between phases (timing stays exact, coefficients are approximated; see
 * edgeser_resampler_info.exact). */
#define EDGESER_TABLE_BUDGET_BYTES (256u * 1024u)
/* One model frame (the conv stack's stride, 20 ms) and its receptive field (25 ms): audio
 * shorter than EDGESER_MIN_WINDOW_SAMPLES gives the model no frame at all. */
#define EDGESER_FRAME_SAMPLES 320u
#define EDGESER_MIN_WINDOW_SAMPLES 400u
/* Variance floor of the normalisation, as in Wav2Vec2FeatureExtractor. */
#define EDGESER_NORM_EPSILON 1e-7
/* Level reported for digital silence instead of -infinity. */
#define EDGESER_DBFS_FLOOR (-200.0f)

typedef enum edgeser_status {
    EDGESER_OK = 0,
    EDGESER_ERR_NULL = 1,            /* a required pointer was NULL */
    EDGESER_ERR_RATE = 2,            /* a sample rate outside EDGESER_MIN/MAX_RATE_HZ */
    EDGESER_ERR_CHANNELS = 3,        /* a channel count of 0 */
    EDGESER_ERR_FORMAT = 4,          /* an unknown PCM sample format */
    EDGESER_ERR_BUFFER_TOO_SMALL = 5,/* output capacity below the *_max_output figure */
    EDGESER_ERR_OVERFLOW = 6,        /* a length computation would overflow */
    EDGESER_ERR_STATE = 7,           /* uninitialised state, or processing after flush */
    EDGESER_ERR_ARGUMENT = 8,        /* a size, window or hop argument out of range */
    EDGESER_ERR_NOMEM = 9            /* an edgeser_*_create function could not allocate */
} edgeser_status;

EDGESER_API const char *edgeser_strerror(edgeser_status status);
/* Version of the loaded library: "major.minor.patch", and major*10000 + minor*100 + patch.
 * Compare with EDGESER_VERSION_MAJOR / EDGESER_VERSION_NUMBER (see Conventions). */
EDGESER_API const char *edgeser_version(void);
EDGESER_API unsigned edgeser_version_number(void);

/* ---------------------------------------------------------------- PCM conversion ------ */

typedef enum edgeser_pcm_format {
    EDGESER_PCM_U8 = 1,   /* unsigned 8-bit, 128 = zero (WAV 8-bit) */
    EDGESER_PCM_S16 = 2,  /* signed 16-bit little-endian */
    EDGESER_PCM_S24 = 3,  /* signed 24-bit little-endian, packed in 3 bytes */
    EDGESER_PCM_S32 = 4,  /* signed 32-bit little-endian */
    EDGESER_PCM_F32 = 5,  /* IEEE float32, host byte order */
    EDGESER_PCM_F64 = 6   /* IEEE float64, host byte order */
} edgeser_pcm_format;

/* Bytes per sample of one channel for `format`; 0 for an unknown format. */
EDGESER_API size_t edgeser_pcm_bytes_per_sample(edgeser_pcm_format format);

/* Convert `n_frames` interleaved frames of `channels` channels from `in` (any alignment) to
 * interleaved float32 in `out` (n_frames * channels values). Integers map to [-1, 1):
 * value / 2^(bits-1). Float formats are copied (float64 rounded to float32). */
EDGESER_API edgeser_status edgeser_pcm_to_float(const void *in, size_t n_frames, uint32_t channels,
                                                edgeser_pcm_format format, float *out);

/* Average `channels` interleaved channels into mono: out[i] = mean over c of in[i*channels+c],
 * accumulated in double. `out` may alias `in`. */
EDGESER_API edgeser_status edgeser_mixdown(const float *in, size_t n_frames, uint32_t channels,
                                           float *out);

/* ---------------------------------------------------------------- resampler ----------- */

typedef struct edgeser_resampler edgeser_resampler;

typedef struct edgeser_resampler_info {
    uint32_t rate_in_hz;
    uint32_t rate_out_hz;       /* always EDGESER_TARGET_RATE_HZ */
    uint32_t up;                /* L: rate_out / gcd */
    uint32_t down;              /* M: rate_in / gcd */
    uint32_t taps_per_phase;    /* input samples under the filter(s) for one output sample */
    uint32_t phases;            /* phases in the coefficient table */
    int exact;                  /* 1: table holds all `up` phases; 0: interpolated phases */
    double passband_hz;         /* response flat (< 0.001 dB ripple) up to here */
    double stopband_hz;         /* at least `stopband_db` of rejection from here */
    double stopband_db;         /* design rejection, positive dB */
    size_t table_bytes;         /* coefficient tables, <= EDGESER_TABLE_BUDGET_BYTES */
    size_t state_bytes;         /* what edgeser_resampler_size reports */
} edgeser_resampler_info;

/* Bytes of caller memory a resampler for `rate_in_hz` needs (state, table and history). */
EDGESER_API edgeser_status edgeser_resampler_size(uint32_t rate_in_hz, size_t *bytes);

/* Build a resampler in caller memory `mem` of `bytes` bytes (>= edgeser_resampler_size),
 * aligned to at least 16 bytes. `*out` points into `mem`; nothing to free. */
EDGESER_API edgeser_status edgeser_resampler_init(void *mem, size_t bytes, uint32_t rate_in_hz,
                                                  edgeser_resampler **out);

/* Heap-allocating convenience pair around size + init. */
EDGESER_API edgeser_status edgeser_resampler_create(uint32_t rate_in_hz, edgeser_resampler **out);
EDGESER_API void edgeser_resampler_destroy(edgeser_resampler *resampler);

/* The whole resampler: rates, the overall ratio up/down, band edges and rejection; for a
 * two-stage resampler taps_per_phase is the span of the two filters composed (input samples
 * one output depends on) and phases the first stage's; exact is 1 when every stage holds all
 * its phases; table_bytes sums the stages' tables. */
EDGESER_API edgeser_status edgeser_resampler_info_get(const edgeser_resampler *resampler,
                                                      edgeser_resampler_info *info);

/* A resampler runs one stage (16 kHz, rates below it, multiples of 16 kHz) or two (other rates
 * above 16 kHz: to 32 kHz with a short filter, then the sharp filter from 32 to 16 kHz). */
EDGESER_API edgeser_status edgeser_resampler_stage_count(const edgeser_resampler *resampler,
                                                         uint32_t *count);

/* Stage `index` (0 reads the input) described in an edgeser_resampler_info: its own rates,
 * ratio, taps, phases, band edges and table; state_bytes is the whole resampler's. */
EDGESER_API edgeser_status edgeser_resampler_stage_info(const edgeser_resampler *resampler,
                                                        uint32_t index,
                                                        edgeser_resampler_info *info);

/* Forget all input: the next sample is time zero again. */
EDGESER_API edgeser_status edgeser_resampler_reset(edgeser_resampler *resampler);

/* Exact number of samples the next edgeser_resampler_process with `n_in` samples returns. */
EDGESER_API edgeser_status edgeser_resampler_max_output(const edgeser_resampler *resampler,
                                                        size_t n_in, size_t *n_out);

/* Exact number of samples edgeser_resampler_flush returns now. */
EDGESER_API edgeser_status edgeser_resampler_flush_output(const edgeser_resampler *resampler,
                                                          size_t *n_out);

/* Consume all `n_in` mono samples and write every output sample whose filter support is
 * complete. `out_capacity` must be >= edgeser_resampler_max_output(n_in). Output sample j is
 * the signal at time j / 16000 s after the first input sample (the filter delay is removed). */
EDGESER_API edgeser_status edgeser_resampler_process(edgeser_resampler *resampler,
                                                     const float *in, size_t n_in, float *out,
                                                     size_t out_capacity, size_t *n_out);

/* End of input: write the remaining samples (input beyond the end is taken as zero), so that
 * the total written since init/reset is exactly ceil(n_total_in * 16000 / rate_in_hz).
 * Afterwards process and flush return EDGESER_ERR_STATE until edgeser_resampler_reset. */
EDGESER_API edgeser_status edgeser_resampler_flush(edgeser_resampler *resampler, float *out,
                                                   size_t out_capacity, size_t *n_out);

/* ---------------------------------------------------------------- windows ------------- */

/* Normalise like Wav2Vec2FeatureExtractor: out = (x - mean) / sqrt(var + 1e-7), mean and
 * (population) variance accumulated in double. `out` may alias `in`. n == 0 is a no-op. */
EDGESER_API edgeser_status edgeser_normalize(const float *in, size_t n, float *out);

/* RMS level of `n` samples in dBFS (20*log10(sqrt(mean(x^2)))), EDGESER_DBFS_FLOOR for
 * silence or n == 0. */
EDGESER_API edgeser_status edgeser_rms_dbfs(const float *in, size_t n, float *dbfs);

/* Windows over a signal of `n` samples: window k starts at k * hop. Full windows have
 * `window` samples; after the last full window, a final window from the next hop start to the
 * end is kept short (never zero-padded) when it adds samples no earlier window covered; a
 * signal shorter than `window` is one short window. That short window (the tail, or the whole
 * signal) is dropped when it has fewer than `min_len` samples (the model needs at least one
 * 400-sample frame); full windows are always kept. Requires 0 < hop <= window. */
EDGESER_API edgeser_status edgeser_window_count(size_t n, size_t window, size_t hop,
                                                size_t min_len, size_t *count);

/* Start and length of window k (k < count). */
EDGESER_API edgeser_status edgeser_window_bounds(size_t n, size_t window, size_t hop,
                                                 size_t min_len, size_t k, size_t *start,
                                                 size_t *len);

/* ---------------------------------------------------------------- streaming windower -- */

/*
 * PCM in, prepared 16 kHz windows out: conversion, mixdown, the streaming resampler, then
 * windows exactly as edgeser_window_count/bounds lay them out over the whole resampled signal:
 * full windows [k*hop, k*hop + window) as soon as their last 16 kHz sample exists (that is,
 * once the input reaches the resampler's look-ahead past it), and after
 * edgeser_windower_finish one short window for the tail that no full window covered (never
 * zero-padded, dropped when shorter than min_len; a signal shorter than `window` is that one
 * short window). Each window carries its RMS level in dBFS measured on the raw (unnormalised)
 * samples and a silent flag (level below silence_dbfs, or NaN); its samples are normalised
 * per window ((x - mean) / sqrt(var + 1e-7), double statistics) or left raw, as configured.
 * A window is bit-identical to edgeser_normalize (or a copy) of the same span of the one-shot
 * resampled signal, and its level to edgeser_rms_dbfs of that span, for every chunking.
 *
 * Memory is bounded: the windower buffers at most one window plus one internal block of
 * resampled samples. edgeser_windower_push therefore takes input only while there is room:
 * when it returns *n_taken < n_frames, pull the ready windows with edgeser_windower_next and
 * push the rest.
 */
typedef struct edgeser_windower edgeser_windower;

typedef enum edgeser_normalization {
    EDGESER_NORMALIZE_NONE = 0,      /* windows are the raw resampled samples */
    EDGESER_NORMALIZE_PER_WINDOW = 1 /* (x - mean) / sqrt(var + 1e-7) per window */
} edgeser_normalization;

typedef struct edgeser_windower_config {
    uint32_t rate_in_hz;             /* input rate, EDGESER_MIN_RATE_HZ..EDGESER_MAX_RATE_HZ */
    uint32_t channels;               /* interleaved input channels, averaged to mono */
    edgeser_pcm_format format;       /* input sample format */
    size_t window;                   /* window length in 16 kHz samples, > 0 */
    size_t hop;                      /* hop in 16 kHz samples, 0 < hop <= window */
    size_t min_len;                  /* shortest short window kept (EDGESER_MIN_WINDOW_SAMPLES) */
    float silence_dbfs;              /* windows with level_dbfs below this are silent */
    edgeser_normalization normalization;
} edgeser_windower_config;

typedef struct edgeser_window {
    uint64_t index;                  /* 0, 1, 2, ... in stream order */
    uint64_t start;                  /* first sample, in 16 kHz samples since the stream start */
    uint64_t stop;                   /* one past the last sample: start + length */
    size_t length;                   /* `window`, or fewer for the final short window */
    float level_dbfs;                /* RMS level of the raw window (edgeser_rms_dbfs) */
    int silent;                      /* 1 when !(level_dbfs >= silence_dbfs) */
    int is_final;                    /* 1 for the short window after edgeser_windower_finish */
} edgeser_window;

/* Bytes of caller memory a windower for `config` needs. */
EDGESER_API edgeser_status edgeser_windower_size(const edgeser_windower_config *config,
                                                 size_t *bytes);

/* Build a windower in caller memory `mem` of `bytes` bytes (>= edgeser_windower_size), aligned
 * to at least 16 bytes. `*out` points into `mem`; nothing to free. */
EDGESER_API edgeser_status edgeser_windower_init(void *mem, size_t bytes,
                                                 const edgeser_windower_config *config,
                                                 edgeser_windower **out);

/* Heap-allocating convenience pair around size + init. */
EDGESER_API edgeser_status edgeser_windower_create(const edgeser_windower_config *config,
                                                   edgeser_windower **out);
EDGESER_API void edgeser_windower_destroy(edgeser_windower *windower);

/* Forget all input and windows: the next sample is time zero again. */
EDGESER_API edgeser_status edgeser_windower_reset(edgeser_windower *windower);

/* Consume up to `n_frames` interleaved frames of the configured format and channels from `pcm`
 * (any alignment). Stops early, with *n_taken < n_frames, only when its buffer is full of ready
 * windows: pull them, then push the rest. EDGESER_ERR_STATE after edgeser_windower_finish. */
EDGESER_API edgeser_status edgeser_windower_push(edgeser_windower *windower, const void *pcm,
                                                 size_t n_frames, size_t *n_taken);

/* End of input: the resampler's last samples and the final short window become available
 * to edgeser_windower_next. */
EDGESER_API edgeser_status edgeser_windower_finish(edgeser_windower *windower);

/* Pull the next ready window: its samples go to `out` (`out_capacity` >= the configured
 * `window`), its description to `*window`, and *has_window = 1. When no window is ready
 * (more input needed, or all windows pulled after finish), *has_window = 0 and nothing is
 * written. */
EDGESER_API edgeser_status edgeser_windower_next(edgeser_windower *windower, float *out,
                                                 size_t out_capacity, edgeser_window *window,
                                                 int *has_window);

/* 16 kHz samples produced so far (after finish: ceil(n_frames_in * 16000 / rate_in_hz)). */
EDGESER_API edgeser_status edgeser_windower_samples(const edgeser_windower *windower,
                                                    uint64_t *samples);

/* ---------------------------------------------------------------- laughter events ------ */

/*
 * Events from per-window probabilities of the positive class, fed in window order. A window is
 * active when its probability reaches `threshold`; with hysteresis (release < threshold), once
 * a window is active the following windows stay active while they reach `release`, and the
 * first one below it (or a silent window) ends the run. An event is the union of active
 * windows (boundaries are window boundaries, in 16 kHz samples), joined across gaps of up to
 * `merge_gap` samples between one active window's end and the next one's start, and dropped
 * when shorter than `min_duration` samples. An event is reported as soon as no later window
 * can extend it: by the first window that starts more than `merge_gap` after its end, or by
 * edgeser_event_tracker_finish. `peak` is its highest probability (the first window with it).
 */
typedef struct edgeser_event_tracker edgeser_event_tracker;

typedef struct edgeser_event_config {
    double threshold;                /* onset probability (a window with p >= it is active) */
    double release;                  /* hysteresis: release <= threshold; equal: none */
    uint64_t min_duration;           /* shortest event kept, 16 kHz samples */
    uint64_t merge_gap;              /* longest gap bridged, 16 kHz samples */
} edgeser_event_config;

typedef struct edgeser_event {
    uint64_t start;                  /* first active window's start, 16 kHz samples */
    uint64_t stop;                   /* latest end of its active windows */
    double peak;                     /* highest probability in the event */
    uint64_t peak_start;             /* the window where the peak was first reached */
    uint64_t peak_stop;
    uint64_t windows;                /* active windows in the event */
} edgeser_event;

EDGESER_API edgeser_status edgeser_event_tracker_size(size_t *bytes);
EDGESER_API edgeser_status edgeser_event_tracker_init(void *mem, size_t bytes,
                                                      const edgeser_event_config *config,
                                                      edgeser_event_tracker **out);
EDGESER_API edgeser_status edgeser_event_tracker_create(const edgeser_event_config *config,
                                                        edgeser_event_tracker **out);
EDGESER_API void edgeser_event_tracker_destroy(edgeser_event_tracker *tracker);
EDGESER_API edgeser_status edgeser_event_tracker_reset(edgeser_event_tracker *tracker);

/* Take the next window, [start, stop) in 16 kHz samples with the positive-class probability
 * (ignored when `silent` is nonzero: a silent window is not active). Windows come in index
 * order: start never decreases, stop > start. When the window closes an event, it is written
 * to *event and *closed = 1, else *closed = 0. A NaN probability is EDGESER_ERR_ARGUMENT. */
EDGESER_API edgeser_status edgeser_event_tracker_add(edgeser_event_tracker *tracker,
                                                     uint64_t start, uint64_t stop,
                                                     double probability, int silent,
                                                     edgeser_event *event, int *closed);

/* End of the stream: the open event, if it is kept, goes to *event with *closed = 1. The
 * tracker then takes no windows (EDGESER_ERR_STATE) until edgeser_event_tracker_reset. */
EDGESER_API edgeser_status edgeser_event_tracker_finish(edgeser_event_tracker *tracker,
                                                        edgeser_event *event, int *closed);

/* ---------------------------------------------------------------- stream summary ------- */

/*
 * Running summary of a stream in constant memory: counts of windows, voiced and silent ones,
 * the mean of each of `n_outputs` model outputs over the voiced windows (sums in double, in
 * window order), and the count and total length of events.
 */
typedef struct edgeser_summary edgeser_summary;

typedef struct edgeser_summary_totals {
    uint64_t windows;                /* all windows added */
    uint64_t voiced;                 /* windows added with outputs */
    uint64_t silent;                 /* windows added as silent */
    uint64_t events;                 /* events added */
    uint64_t event_samples;          /* their total length, 16 kHz samples */
    double event_seconds;            /* event_samples / 16000 */
    int32_t top;                     /* index of the largest mean (first of equals); -1 when
                                        no window was voiced */
} edgeser_summary_totals;

/* n_outputs: 1 to INT32_MAX. */
EDGESER_API edgeser_status edgeser_summary_size(uint32_t n_outputs, size_t *bytes);
EDGESER_API edgeser_status edgeser_summary_init(void *mem, size_t bytes, uint32_t n_outputs,
                                                edgeser_summary **out);
EDGESER_API edgeser_status edgeser_summary_create(uint32_t n_outputs, edgeser_summary **out);
EDGESER_API void edgeser_summary_destroy(edgeser_summary *summary);
EDGESER_API edgeser_status edgeser_summary_reset(edgeser_summary *summary);

/* One window: `outputs` holds its n_outputs values (probabilities or values), or is NULL for a
 * silent window. */
EDGESER_API edgeser_status edgeser_summary_add_window(edgeser_summary *summary,
                                                      const double *outputs);

/* One event of [start, stop) 16 kHz samples (stop >= start). */
EDGESER_API edgeser_status edgeser_summary_add_event(edgeser_summary *summary, uint64_t start,
                                                     uint64_t stop);

/* The totals, and the means over voiced windows into `means` (n_outputs values; may be NULL;
 * left untouched when no window was voiced). */
EDGESER_API edgeser_status edgeser_summary_get(const edgeser_summary *summary,
                                               edgeser_summary_totals *totals, double *means);

/* ---------------------------------------------------------------- noise suppressor ----- */

/*
 * Streaming single-channel noise suppression for speech, at the signal's own rate.
 *
 * Short-time spectra: sqrt-Hann analysis and synthesis windows, 50% overlap, frames of
 * `frame` samples (the largest power of two not above EDGESER_DENOISE_FRAME_MAX_MS at the
 * rate: 1024 at 16 kHz). Per frequency bin: the noise power is tracked by speech-presence
 * weighted recursive averaging, held at or above the minimum of the smoothed power over the
 * last ~1.5 s (minimum statistics, which lets it follow noise that gets louder); the
 * a-priori SNR is estimated decision-directed; the gain is the log-spectral amplitude
 * estimator's, weighted by the probability of speech presence (which is controlled by the
 * ratio of the smoothed power to its minimum) and never below the floor
 * (EDGESER_DENOISE_FLOOR_DB). Where the gain is 1 the frames add back to the input exactly
 * (up to float rounding).
 *
 * Output sample j is the processed input sample j - latency (zeros before the first), with
 * latency = `frame` samples; every process call with n input samples writes exactly n output
 * samples, and the output is bit-identical for every chunking of the same input. Flush writes
 * the last `latency` samples (the input continued with zeros).
 *
 * Unlike the rest of this header, the suppressor inspects its input: NaN and infinite samples
 * are taken as 0, and finite samples beyond +-EDGESER_DENOISE_INPUT_LIMIT are clipped there.
 * Its output is always finite. State: about 14 * frame floats (edgeser_denoiser_size: 54 KiB
 * at 16 kHz).
 */
typedef struct edgeser_denoiser edgeser_denoiser;

#define EDGESER_DENOISE_MIN_RATE_HZ 8000u
#define EDGESER_DENOISE_MAX_RATE_HZ 192000u
/* Longest analysis frame, ms (frames are powers of two: 43 to 64 ms). */
#define EDGESER_DENOISE_FRAME_MAX_MS 64u
/* Lowest gain, dB. */
#define EDGESER_DENOISE_FLOOR_DB (-15)
/* Input magnitude limit (far above full scale, 1.0). */
#define EDGESER_DENOISE_INPUT_LIMIT 65536.0f

typedef struct edgeser_denoiser_info {
    uint32_t rate_hz;           /* the signal's rate */
    size_t frame;               /* analysis frame, samples (a power of two) */
    size_t hop;                 /* frame / 2 */
    size_t latency;             /* output delay, samples (= frame) */
    size_t memory_bytes;        /* what edgeser_denoiser_size reports */
} edgeser_denoiser_info;

/* Bytes of caller memory a suppressor for `rate_hz` needs (EDGESER_ERR_RATE outside
 * EDGESER_DENOISE_MIN_RATE_HZ..EDGESER_DENOISE_MAX_RATE_HZ). */
EDGESER_API edgeser_status edgeser_denoiser_size(uint32_t rate_hz, size_t *bytes);

/* Output delay in samples of a suppressor for `rate_hz`, known before building one. */
EDGESER_API edgeser_status edgeser_denoiser_latency(uint32_t rate_hz, size_t *samples);

/* Build a suppressor in caller memory `mem` of `bytes` bytes (>= edgeser_denoiser_size),
 * aligned to at least 16 bytes. `*out` points into `mem`; nothing to free. */
EDGESER_API edgeser_status edgeser_denoiser_init(void *mem, size_t bytes, uint32_t rate_hz,
                                                 edgeser_denoiser **out);

/* Heap-allocating convenience pair around size + init. */
EDGESER_API edgeser_status edgeser_denoiser_create(uint32_t rate_hz, edgeser_denoiser **out);
EDGESER_API void edgeser_denoiser_destroy(edgeser_denoiser *denoiser);

EDGESER_API edgeser_status edgeser_denoiser_info_get(const edgeser_denoiser *denoiser,
                                                     edgeser_denoiser_info *info);

/* Forget all input: the next sample is time zero again, noise estimates start afresh. */
EDGESER_API edgeser_status edgeser_denoiser_reset(edgeser_denoiser *denoiser);

/* Consume `n` samples from `in` and write `n` samples to `out` (the processed input delayed
 * by `latency`). `out` may be `in` (in place) but must not otherwise overlap it; both may be
 * NULL when n == 0. EDGESER_ERR_STATE after edgeser_denoiser_flush. */
EDGESER_API edgeser_status edgeser_denoiser_process(edgeser_denoiser *denoiser, const float *in,
                                                    float *out, size_t n);

/* End of input: write the last `latency` samples to `out` (`out_capacity` >= latency), as if
 * `latency` zeros followed the input. Afterwards process and flush return EDGESER_ERR_STATE
 * until edgeser_denoiser_reset. */
EDGESER_API edgeser_status edgeser_denoiser_flush(edgeser_denoiser *denoiser, float *out,
                                                  size_t out_capacity, size_t *n_out);

#ifdef __cplusplus
}
#endif

#endif /* EDGESER_FRONTEND_H */
