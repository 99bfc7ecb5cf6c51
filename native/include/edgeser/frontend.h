/*
 * edgeser native frontend: PCM conversion, channel mixdown, streaming resampling to 16 kHz,
 * per-window normalisation, windowing and RMS energy for the silence gate.
 *
 * Conventions (read these first)
 * - C99, depends on libc and libm only. Every exported symbol starts with `edgeser_`.
 * - Every function that can fail returns an `edgeser_status`; EDGESER_OK is 0.
 *   `edgeser_strerror` turns a status into a static English sentence.
 * - Lengths are counts of samples per channel ("frames") unless a name says otherwise;
 *   rates are in Hz; levels in dBFS (20*log10 of the RMS, full-scale square wave = 0 dBFS,
 *   full-scale sine = -3.01 dBFS).
 * - Ownership: the caller owns every buffer. The library never keeps a pointer to caller
 *   buffers past the call that received them. A resampler's state lives either in memory the
 *   caller provides (`edgeser_resampler_size` + `edgeser_resampler_init`, for firmware without
 *   a heap) or in memory from `edgeser_resampler_create`, released by
 *   `edgeser_resampler_destroy`. Those two are the only functions that allocate.
 * - Process calls never allocate, print, block or exit. Output capacity is checked against the
 *   exact `*_max_output` figure before anything is written; on any error nothing is written
 *   and the state is unchanged.
 * - Every length computation is checked for overflow (EDGESER_ERR_OVERFLOW).
 * - Float input is not inspected for NaN or Inf here; callers that need that guarantee
 *   (the Python layer does) check before calling. NaN in gives NaN out, never a crash.
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
#define EDGESER_VERSION_MINOR 1
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
/* Upper bound on a resampler's coefficient table. Ratios whose exact polyphase table fits use
 * it; other ratios use a table of fewer phases with linear interpolation between phases
 * (timing stays exact, coefficients are approximated; see edgeser_resampler_info.exact). */
#define EDGESER_TABLE_BUDGET_BYTES (256u * 1024u)
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
    EDGESER_ERR_NOMEM = 9            /* edgeser_resampler_create could not allocate */
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
    uint32_t taps_per_phase;    /* input samples under the filter for one output sample */
    uint32_t phases;            /* phases in the coefficient table */
    int exact;                  /* 1: table holds all `up` phases; 0: interpolated phases */
    double passband_hz;         /* response flat (< 0.001 dB ripple) up to here */
    double stopband_hz;         /* at least `stopband_db` of rejection from here */
    double stopband_db;         /* design rejection, positive dB */
    size_t table_bytes;         /* coefficient table size, <= EDGESER_TABLE_BUDGET_BYTES */
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

EDGESER_API edgeser_status edgeser_resampler_info_get(const edgeser_resampler *resampler,
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

#ifdef __cplusplus
}
#endif

#endif /* EDGESER_FRONTEND_H */
