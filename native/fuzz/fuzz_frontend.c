/*
 * Fuzz harness over the whole native frontend path (libFuzzer entry point; fuzz/standalone.c
 * drives the same function without libFuzzer):
 *
 *   PCM bytes -> edgeser_pcm_to_float -> edgeser_mixdown -> resampler (streamed in fuzzed
 *   chunks, and one shot) -> edgeser_window_count/bounds -> edgeser_normalize and
 *   edgeser_rms_dbfs per window;
 *   the same PCM bytes -> the streaming windower (edgeser_windower_*, pushed in fuzzed chunks,
 *   pulled eagerly or only when full), whose windows must be those of the path above bit for
 *   bit (positions, levels, silence flags, samples);
 *   window levels as probabilities -> the event tracker and the summary (invariants only);
 *   the mono signal (NaN, infinities and huge values included) -> the noise suppressor at the
 *   input rate, streamed in fuzzed chunks (some in place) and one shot: bit-identical, equal to
 *   the run on the sanitised input (non-finite -> 0, clipped at EDGESER_DENOISE_INPUT_LIMIT),
 *   always finite and bounded, the same again after a reset, state errors after flush.
 *
 * Input layout: the first HEADER_BYTES bytes choose the parameters (missing bytes read as 0),
 * the rest is PCM.
 *
 *   0      rate mode: common rate / any valid rate / raw 32-bit value / edge value
 *   1..4   rate value (little-endian), interpreted by the mode
 *   5      channels: 1..8 mostly, else 0 or large
 *   6      sample format: the six valid ones mostly, else unknown values
 *   7      flags A (see FLAG_*)
 *   8..11  chunking seed
 *   12..13 window, 14..15 hop, 16..17 min_len (interpreted by the window mode)
 *   18     window mode
 *   19     flags B (see FLAGB_*)
 *   20..23 offset used for the huge-length window checks
 *
 * Every invariant violation calls abort(), which libFuzzer reports as a crash. What is asserted
 * is what the header documents (status codes, exact *_max_output counts, nothing written on
 * error, output totals, stream == one shot bit for bit, the PCM and mixdown formulas, window
 * layout, NaN in gives NaN out), plus bounds that follow from the maths: normalised values
 * within sqrt(window length) for finite input, and resampled values within RESAMPLED_ABS_BOUND
 * for input within [-1, 1]. Values computed from NaN or Inf input are otherwise only required
 * to exist (no crash) and to be identical between streamed and one-shot runs.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgeser/frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER_BYTES 24u
/* Work bounds per input, so one input never takes long: decoded samples (all channels) and
 * resampled output samples. The PCM beyond them is ignored. */
#define MAX_IN_SAMPLES 65536u
#define MAX_OUT_SAMPLES 32768u
/* Windows normalised per input (the first ones and the last one); all are bounds-checked. */
#define MAX_NORMALIZED_WINDOWS 16u
/* Resamplers kept between inputs (keyed by rate and reset before use): building a table costs
 * milliseconds for rates with many phases, far more than the rest of one input. */
#define CACHE_SLOTS 48u
/* For input within [-1, 1] every output is a weighted sum whose weights' absolute values sum
 * to at most about 2.8 for every filter design (windowed sinc, unit DC gain); a larger value
 * means garbage was read. */
#define RESAMPLED_ABS_BOUND 4.0

#define FLAG_HEAP 0x01u           /* resampler from create (else init in caller memory) */
#define FLAG_MIX_IN_PLACE 0x02u   /* also mix down in place and compare */
#define FLAG_SMALL_CAPACITY 0x04u /* try each call with one sample too little room first */
#define FLAG_NULL_ARGS 0x08u      /* try NULL pointers where a pointer is required */
#define FLAG_SECOND_PASS 0x10u    /* reset after flush, stream again with another chunking */
#define FLAG_SLACK 0x80u          /* give process/flush more room than they need */
#define FLAG_ALIGN_SHIFT 5u       /* bits 5..6: PCM misalignment 0..3 bytes */

#define FLAGB_FRESH 0x07u         /* all three set: stream on a new resampler of the other kind */
#define FLAGB_HUGE_QUERY 0x08u    /* query max_output for enormous n_in */
#define FLAGB_WINDOWER_HEAP 0x10u /* windower from create (else init in caller memory) */
#define FLAGB_LAZY_PULL 0x20u     /* pull windows only when a push cannot take everything */
#define FLAGB_RAW 0x40u           /* windows not normalised */
#define FLAGB_HYSTERESIS 0x80u    /* the event tracker with a release below its threshold */
/* Windows up to this many samples go through the windower (its memory is about that). */
#define MAX_WINDOWER_WINDOW (1u << 20)

static const uint32_t kCommonRates[] = {8000,  11025, 12000, 16000,  22050,  24000,
                                        32000, 44100, 48000, 64000,  88200,  96000,
                                        176400, 192000, 352800, 384000, 1000, 2000};
static const uint32_t kEdgeRates[] = {0u,      1u,      999u,     1000u,       1001u,
                                      15999u,  16001u,  383999u,  384000u,     384001u,
                                      768000u, 0x7fffffffu, 0x80000000u, 0xffffffffu};
static const uint32_t kEdgeChannels[] = {0u, 9u, 16u, 255u, 256u, 65535u, 0x7fffffffu, 0xffffffffu};
static const uint32_t kBadFormats[] = {0u, 7u, 8u, 255u, 0x7fffffffu, 0xffffffffu};

/* ---------------------------------------------------------------- checking ------------- */

static void fail_at(int line, const char *what)
{
    fprintf(stderr, "fuzz_frontend.c:%d: invariant violated: %s\n", line, what);
    abort();
}

#define REQUIRE(cond)                                                                          \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fail_at(__LINE__, #cond);                                                          \
        }                                                                                      \
    } while (0)

/* Every call must return one of the documented codes. */
static edgeser_status defined_status(edgeser_status st, int line)
{
    if ((int)st < (int)EDGESER_OK || (int)st > (int)EDGESER_ERR_NOMEM) {
        fail_at(line, "undefined status code");
    }
    return st;
}
#define CALL(expr) defined_status((expr), __LINE__)

static void *xmalloc(size_t bytes)
{
    /* At least one byte, so every buffer is a distinct allocation ASan can guard. */
    void *p = malloc(bytes > 0u ? bytes : 1u);
    if (p == NULL) {
        abort();
    }
    return p;
}

static uint32_t rd8(const uint8_t *data, size_t size, size_t i)
{
    return i < size ? data[i] : 0u;
}

static uint32_t rd16(const uint8_t *data, size_t size, size_t i)
{
    return rd8(data, size, i) | (rd8(data, size, i + 1u) << 8);
}

static uint32_t rd32(const uint8_t *data, size_t size, size_t i)
{
    return rd16(data, size, i) | (rd16(data, size, i + 2u) << 16);
}

static uint32_t xorshift32(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

static int all_finite(const float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        if (!isfinite(x[i])) {
            return 0;
        }
    }
    return 1;
}

static int any_nan(const float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        if (isnan(x[i])) {
            return 1;
        }
    }
    return 0;
}

static int within(const float *x, size_t n, double bound)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        if (!(fabs((double)x[i]) <= bound)) {
            return 0;
        }
    }
    return 1;
}

/* Equal values, or both NaN (NaN payloads and the sign of zero are not part of any
 * contract: a single channel may be copied as is, where a sum would turn -0 into +0). */
static int same_value(float a, float b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

/* ceil(n * 16000 / rate) for a valid rate; n is bounded by MAX_IN_SAMPLES. */
static uint64_t total_output(uint64_t n, uint32_t rate)
{
    return (n * EDGESER_TARGET_RATE_HZ + rate - 1u) / rate;
}

static int rate_valid(uint32_t rate)
{
    return rate >= EDGESER_MIN_RATE_HZ && rate <= EDGESER_MAX_RATE_HZ;
}

/* ---------------------------------------------------------------- parameters ----------- */

typedef struct params {
    uint32_t rate;
    uint32_t channels;
    edgeser_pcm_format format;
    uint32_t flags;
    uint32_t flags_b;
    uint32_t chunk_seed;
    size_t window, hop, min_len;
    size_t huge_offset;
} params;

static void parse_params(const uint8_t *data, size_t size, params *p)
{
    uint32_t mode = rd8(data, size, 0), raw = rd32(data, size, 1);
    uint32_t ch = rd8(data, size, 5), fmt = rd8(data, size, 6);
    uint32_t w = rd16(data, size, 12), h = rd16(data, size, 14), m = rd16(data, size, 16);
    uint32_t wmode = rd8(data, size, 18);

    switch (mode % 8u) {
    case 0: case 1: case 2: case 3: /* mostly the rates real files have */
        p->rate = kCommonRates[raw % (sizeof kCommonRates / sizeof kCommonRates[0])];
        break;
    case 4: case 5:
        p->rate = EDGESER_MIN_RATE_HZ + raw % (EDGESER_MAX_RATE_HZ - EDGESER_MIN_RATE_HZ + 1u);
        break;
    case 6:
        p->rate = raw;
        break;
    default:
        p->rate = kEdgeRates[raw % (sizeof kEdgeRates / sizeof kEdgeRates[0])];
        break;
    }
    p->channels = ch < 240u ? 1u + ch % 8u
                            : kEdgeChannels[ch % (sizeof kEdgeChannels / sizeof kEdgeChannels[0])];
    p->format = (edgeser_pcm_format)(fmt < 240u
                                         ? 1u + fmt % 6u
                                         : kBadFormats[fmt % (sizeof kBadFormats / sizeof kBadFormats[0])]);
    p->flags = rd8(data, size, 7);
    p->flags_b = rd8(data, size, 19);
    p->chunk_seed = rd32(data, size, 8);
    p->huge_offset = rd32(data, size, 20);

    switch (wmode % 4u) {
    case 0: case 1: /* small valid windows, so short inputs have several */
        p->window = 1u + w % 4096u;
        p->hop = 1u + h % p->window;
        p->min_len = m % (p->window + 2u);
        break;
    case 2: { /* the shapes the detector uses: 0.5..3 s windows at 16 kHz, min 400 */
        static const size_t kWindows[] = {8000u, 16000u, 32000u, 48000u};
        p->window = kWindows[w % 4u];
        p->hop = p->window / (1u + h % 4u);
        p->min_len = (m & 1u) ? 400u : m % 20000u;
        break;
    }
    default: /* anything, including invalid combinations and extremes */
        p->window = w == 0xffffu ? SIZE_MAX : w;
        p->hop = h == 0xffffu ? SIZE_MAX : h;
        p->min_len = m == 0xffffu ? SIZE_MAX : m;
        break;
    }
}

/* ---------------------------------------------------------------- resampler cache ------ */

typedef struct cache_slot {
    uint32_t rate;
    int on_heap;           /* from edgeser_resampler_create, else edgeser_resampler_init */
    unsigned long used;
    void *mem;             /* caller memory, when !on_heap */
    edgeser_resampler *r;
} cache_slot;

static cache_slot g_cache[CACHE_SLOTS];
static unsigned long g_clock;

/* Caller memory of exactly `bytes` (so ASan sees any write past it), 16-byte aligned. */
static void *alloc_state(size_t bytes)
{
    void *p = xmalloc(bytes);
    REQUIRE(((uintptr_t)p & 15u) == 0u); /* malloc alignment on every supported target */
    return p;
}

static void check_info(const edgeser_resampler *r, uint32_t rate)
{
    edgeser_resampler_info info;
    size_t bytes = 0;
    REQUIRE(CALL(edgeser_resampler_info_get(r, &info)) == EDGESER_OK);
    REQUIRE(CALL(edgeser_resampler_size(rate, &bytes)) == EDGESER_OK);
    REQUIRE(info.rate_in_hz == rate);
    REQUIRE(info.rate_out_hz == EDGESER_TARGET_RATE_HZ);
    REQUIRE(info.up > 0u && info.down > 0u);
    REQUIRE((uint64_t)info.up * rate == (uint64_t)info.down * EDGESER_TARGET_RATE_HZ);
    REQUIRE(info.taps_per_phase > 0u && info.phases > 0u);
    REQUIRE(info.table_bytes <= EDGESER_TABLE_BUDGET_BYTES);
    {
        /* The stages: their ratios chain from the input rate to 16 kHz; each has at most its
         * own L phases; the whole is exact when every stage is; the tables add up. */
        edgeser_resampler_info s;
        uint32_t count = 0, k, rate_at = rate;
        int exact = 1;
        size_t table = 0;
        REQUIRE(CALL(edgeser_resampler_stage_count(r, &count)) == EDGESER_OK);
        REQUIRE(count == 1u || count == 2u);
        for (k = 0; k < count; ++k) {
            REQUIRE(CALL(edgeser_resampler_stage_info(r, k, &s)) == EDGESER_OK);
            REQUIRE(s.rate_in_hz == rate_at && s.up > 0u && s.down > 0u);
            REQUIRE((uint64_t)s.up * s.rate_in_hz == (uint64_t)s.down * s.rate_out_hz);
            REQUIRE(s.phases > 0u && s.phases <= s.up && s.exact == (s.phases == s.up));
            REQUIRE(k > 0u || s.phases == info.phases);
            exact &= s.exact;
            table += s.table_bytes;
            rate_at = s.rate_out_hz;
        }
        REQUIRE(rate_at == EDGESER_TARGET_RATE_HZ);
        REQUIRE(info.exact == exact && info.table_bytes == table);
        REQUIRE(CALL(edgeser_resampler_stage_info(r, count, &s)) == EDGESER_ERR_ARGUMENT);
    }
    REQUIRE(info.state_bytes == bytes);
    REQUIRE(info.passband_hz > 0.0 && info.passband_hz <= info.stopband_hz);
    REQUIRE(info.stopband_hz <= 0.5 * (double)(rate < EDGESER_TARGET_RATE_HZ ? rate : EDGESER_TARGET_RATE_HZ));
}

/* A new resampler on the heap or in caller memory (*mem_out, NULL for the heap). */
static edgeser_resampler *make_resampler(uint32_t rate, int on_heap, void **mem_out)
{
    edgeser_resampler *r = NULL;
    size_t bytes = 0;
    unsigned char *mem;
    *mem_out = NULL;
    if (on_heap) {
        REQUIRE(CALL(edgeser_resampler_create(rate, &r)) == EDGESER_OK && r != NULL);
        check_info(r, rate);
        return r;
    }
    REQUIRE(CALL(edgeser_resampler_size(rate, &bytes)) == EDGESER_OK && bytes > 0u);
    mem = (unsigned char *)alloc_state(bytes);
    /* Too little memory or a misaligned block must be refused without touching past it. */
    REQUIRE(CALL(edgeser_resampler_init(mem, bytes - 1u, rate, &r)) != EDGESER_OK);
    REQUIRE(CALL(edgeser_resampler_init(mem + 1, bytes - 1u, rate, &r)) != EDGESER_OK);
    REQUIRE(CALL(edgeser_resampler_init(mem, bytes, rate, NULL)) == EDGESER_ERR_NULL);
    REQUIRE(CALL(edgeser_resampler_init(NULL, bytes, rate, &r)) == EDGESER_ERR_NULL);
    r = NULL;
    REQUIRE(CALL(edgeser_resampler_init(mem, bytes, rate, &r)) == EDGESER_OK && r != NULL);
    check_info(r, rate);
    *mem_out = mem;
    return r;
}

static void release(edgeser_resampler *r, void *mem)
{
    edgeser_resampler_destroy(r); /* releases heap state; caller memory is ours to free */
    free(mem);
}

/* A resampler for `rate` of the given kind, as if new: reused (after reset) when an earlier
 * input built one. */
static edgeser_resampler *cached(uint32_t rate, int on_heap)
{
    size_t i, victim = 0;
    cache_slot *s;
    for (i = 0; i < CACHE_SLOTS; ++i) {
        s = &g_cache[i];
        if (s->r != NULL && s->rate == rate && s->on_heap == on_heap) {
            s->used = ++g_clock;
            REQUIRE(CALL(edgeser_resampler_reset(s->r)) == EDGESER_OK);
            return s->r;
        }
        if (s->used < g_cache[victim].used) {
            victim = i;
        }
    }
    s = &g_cache[victim];
    if (s->r != NULL) {
        release(s->r, s->mem);
    }
    s->rate = rate;
    s->on_heap = on_heap;
    s->used = ++g_clock;
    s->r = make_resampler(rate, on_heap, &s->mem);
    return s->r;
}

/* ---------------------------------------------------------------- resampling ----------- */

static size_t next_chunk(uint32_t *seed, size_t remaining, uint32_t taps, unsigned iteration)
{
    uint32_t r = xorshift32(seed);
    size_t c;
    switch (r & 7u) {
    case 0: c = 0u; break;
    case 1: c = 1u; break;
    case 2: c = (r >> 3) % 16u; break;
    case 3: c = (r >> 3) % 512u; break;
    case 4: c = 4088u + (r >> 3) % 16u; break; /* around a power-of-two block size */
    case 5: c = (r >> 3) % (2u * (size_t)taps + 2u); break; /* around the filter length */
    case 6: c = (r >> 3) % 20000u; break;
    default: c = remaining; break;
    }
    if (c == 0u && iteration > 256u) {
        c = remaining; /* bound the number of calls */
    }
    return c < remaining ? c : remaining;
}

#define SENTINEL_BYTE 0xA7u

static void fill_sentinel(float *buf, size_t n)
{
    memset(buf, SENTINEL_BYTE, n * sizeof(float));
}

static int untouched(const float *buf, size_t n)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t i;
    for (i = 0; i < n * sizeof(float); ++i) {
        if (b[i] != SENTINEL_BYTE) {
            return 0;
        }
    }
    return 1;
}

/* Runs the documented error paths of process for one chunk; none may write or change state. */
static void process_errors(edgeser_resampler *r, const float *in, size_t n_in, size_t expected,
                           uint32_t flags, float *probe, size_t probe_len)
{
    size_t n_out = 0, again = 0;
    fill_sentinel(probe, probe_len);
    if ((flags & FLAG_SMALL_CAPACITY) && expected > 0u) {
        REQUIRE(CALL(edgeser_resampler_process(r, in, n_in, probe, expected - 1u, &n_out)) ==
                EDGESER_ERR_BUFFER_TOO_SMALL);
    }
    if (flags & FLAG_NULL_ARGS) {
        if (n_in > 0u) {
            REQUIRE(CALL(edgeser_resampler_process(r, NULL, n_in, probe, expected, &n_out)) ==
                    EDGESER_ERR_NULL);
        }
        if (expected > 0u) {
            REQUIRE(CALL(edgeser_resampler_process(r, in, n_in, NULL, expected, &n_out)) ==
                    EDGESER_ERR_NULL);
        }
        REQUIRE(CALL(edgeser_resampler_process(r, in, n_in, probe, expected, NULL)) ==
                EDGESER_ERR_NULL);
        REQUIRE(CALL(edgeser_resampler_process(NULL, in, n_in, probe, expected, &n_out)) ==
                EDGESER_ERR_NULL);
        REQUIRE(CALL(edgeser_resampler_max_output(r, n_in, NULL)) == EDGESER_ERR_NULL);
        REQUIRE(CALL(edgeser_resampler_max_output(NULL, n_in, &again)) == EDGESER_ERR_NULL);
        REQUIRE(CALL(edgeser_resampler_flush_output(r, NULL)) == EDGESER_ERR_NULL);
        REQUIRE(CALL(edgeser_resampler_flush_output(NULL, &again)) == EDGESER_ERR_NULL);
        REQUIRE(CALL(edgeser_resampler_info_get(r, NULL)) == EDGESER_ERR_NULL);
        REQUIRE(CALL(edgeser_resampler_reset(NULL)) == EDGESER_ERR_NULL);
    }
    REQUIRE(untouched(probe, probe_len));
    REQUIRE(CALL(edgeser_resampler_max_output(r, n_in, &again)) == EDGESER_OK);
    REQUIRE(again == expected);
}

/* Streams `x` through `r` in fuzzed chunks and flushes into `out` (`total` samples, the
 * promised output count, checked). */
static void run_stream(edgeser_resampler *r, uint32_t rate, const float *x, size_t n,
                       uint32_t seed, uint32_t flags, float *out, uint64_t total)
{
    edgeser_resampler_info info;
    uint64_t emitted = 0;
    size_t pos = 0, expected, n_out, cap, flush_n;
    unsigned iteration = 0;
    float *buf;

    REQUIRE(CALL(edgeser_resampler_info_get(r, &info)) == EDGESER_OK);
    if (seed == 0u) {
        seed = 0x9e3779b9u; /* xorshift's one fixed point */
    }
    do {
        size_t c = next_chunk(&seed, n - pos, info.taps_per_phase, iteration++);
        REQUIRE(CALL(edgeser_resampler_max_output(r, c, &expected)) == EDGESER_OK);
        REQUIRE(emitted + expected <= total);
        cap = expected + ((flags & FLAG_SLACK) ? 1u + (seed & 63u) : 0u);
        buf = (float *)xmalloc(cap * sizeof(float));
        process_errors(r, x + pos, c, expected, flags, buf, cap);
        n_out = SIZE_MAX;
        REQUIRE(CALL(edgeser_resampler_process(r, c > 0u ? x + pos : NULL, c, buf, cap, &n_out)) ==
                EDGESER_OK);
        REQUIRE(n_out == expected); /* max_output is exact */
        memcpy(out + emitted, buf, n_out * sizeof(float));
        free(buf);
        emitted += n_out;
        pos += c;
        /* Whatever has been emitted, flush completes the count to ceil(consumed * 16000 / rate). */
        REQUIRE(CALL(edgeser_resampler_flush_output(r, &flush_n)) == EDGESER_OK);
        REQUIRE(emitted + flush_n == total_output(pos, rate));
    } while (pos < n);

    REQUIRE(CALL(edgeser_resampler_flush_output(r, &expected)) == EDGESER_OK);
    REQUIRE(emitted + expected == total);
    cap = expected + ((flags & FLAG_SLACK) ? 1u + (seed & 63u) : 0u);
    buf = (float *)xmalloc(cap * sizeof(float));
    fill_sentinel(buf, cap);
    if ((flags & FLAG_SMALL_CAPACITY) && expected > 0u) {
        REQUIRE(CALL(edgeser_resampler_flush(r, buf, expected - 1u, &n_out)) ==
                EDGESER_ERR_BUFFER_TOO_SMALL);
    }
    if (flags & FLAG_NULL_ARGS) {
        if (expected > 0u) {
            REQUIRE(CALL(edgeser_resampler_flush(r, NULL, cap, &n_out)) == EDGESER_ERR_NULL);
        }
        REQUIRE(CALL(edgeser_resampler_flush(r, buf, cap, NULL)) == EDGESER_ERR_NULL);
        REQUIRE(CALL(edgeser_resampler_flush(NULL, buf, cap, &n_out)) == EDGESER_ERR_NULL);
    }
    REQUIRE(untouched(buf, cap));
    n_out = SIZE_MAX;
    REQUIRE(CALL(edgeser_resampler_flush(r, buf, cap, &n_out)) == EDGESER_OK);
    REQUIRE(n_out == expected);
    memcpy(out + emitted, buf, n_out * sizeof(float));
    emitted += n_out;
    REQUIRE(emitted == total);

    /* After flush: process and flush are refused until reset, and write nothing. */
    fill_sentinel(buf, cap);
    REQUIRE(CALL(edgeser_resampler_process(r, x, n > 0u ? 1u : 0u, buf, cap, &n_out)) ==
            EDGESER_ERR_STATE);
    REQUIRE(CALL(edgeser_resampler_flush(r, buf, cap, &n_out)) == EDGESER_ERR_STATE);
    REQUIRE(CALL(edgeser_resampler_max_output(r, 1u, &n_out)) == EDGESER_ERR_STATE);
    REQUIRE(CALL(edgeser_resampler_flush_output(r, &n_out)) == EDGESER_ERR_STATE);
    REQUIRE(untouched(buf, cap));
    free(buf);
}

/* One call with the whole signal, then flush. */
static void run_one_shot(edgeser_resampler *r, const float *x, size_t n, float *out,
                         uint64_t total)
{
    size_t expected = 0, n_out = 0, flushed = 0;
    REQUIRE(CALL(edgeser_resampler_max_output(r, n, &expected)) == EDGESER_OK);
    REQUIRE(expected <= total);
    REQUIRE(CALL(edgeser_resampler_process(r, n > 0u ? x : NULL, n, out, expected, &n_out)) ==
            EDGESER_OK);
    REQUIRE(n_out == expected);
    REQUIRE(CALL(edgeser_resampler_flush_output(r, &flushed)) == EDGESER_OK);
    REQUIRE(n_out + flushed == total);
    REQUIRE(CALL(edgeser_resampler_flush(r, out + n_out, flushed, &flushed)) == EDGESER_OK);
    REQUIRE(n_out + flushed == total);
}

/* Counts for enormous inputs are either exact-looking or an overflow error, never a wrap. */
static void huge_queries(edgeser_resampler *r, uint32_t rate, size_t salt)
{
    static const size_t kHuge[] = {SIZE_MAX, SIZE_MAX - 1u, SIZE_MAX / 2u, SIZE_MAX / 16000u,
                                   (size_t)UINT32_MAX, (size_t)UINT32_MAX + 1u};
    size_t i;
    for (i = 0; i < sizeof kHuge / sizeof kHuge[0]; ++i) {
        size_t n_in = kHuge[i] - salt % 4096u, n_out = 0;
        edgeser_status st = CALL(edgeser_resampler_max_output(r, n_in, &n_out));
        REQUIRE(st == EDGESER_OK || st == EDGESER_ERR_OVERFLOW);
        if (st == EDGESER_OK) {
            /* At most ceil(n_in * 16000 / rate) from a fresh state. */
            double bound = (double)n_in * (double)EDGESER_TARGET_RATE_HZ / (double)rate;
            REQUIRE((double)n_out <= bound * (1.0 + 1e-9) + 2.0);
        }
    }
}

static float *resample(const float *mono, size_t n, const params *p, size_t *n_res)
{
    uint32_t rate = p->rate;
    uint64_t total;
    float *stream_out, *one_out;
    edgeser_resampler *r, *fresh = NULL;
    void *fresh_mem = NULL;
    int on_heap = (p->flags & FLAG_HEAP) != 0;

    if (!rate_valid(rate)) {
        edgeser_resampler *bad = NULL;
        size_t bytes = 0;
        void *mem = alloc_state(1024u);
        REQUIRE(CALL(edgeser_resampler_size(rate, NULL)) != EDGESER_OK);
        REQUIRE(CALL(edgeser_resampler_create(rate, NULL)) != EDGESER_OK);
        REQUIRE(CALL(edgeser_resampler_size(rate, &bytes)) == EDGESER_ERR_RATE);
        REQUIRE(CALL(edgeser_resampler_create(rate, &bad)) == EDGESER_ERR_RATE);
        REQUIRE(CALL(edgeser_resampler_init(mem, 1024u, rate, &bad)) != EDGESER_OK);
        free(mem);
        *n_res = 0;
        return NULL;
    }

    total = total_output(n, rate);
    REQUIRE(total <= MAX_OUT_SAMPLES);
    stream_out = (float *)xmalloc((size_t)total * sizeof(float));
    one_out = (float *)xmalloc((size_t)total * sizeof(float));

    r = cached(rate, on_heap);
    if (p->flags_b & FLAGB_HUGE_QUERY) {
        huge_queries(r, rate, p->huge_offset);
    }
    run_one_shot(r, mono, n, one_out, total);

    /* The stream runs on the same resampler after reset (reset must forget everything), or
     * on a new one of the other kind. */
    if ((p->flags_b & FLAGB_FRESH) == FLAGB_FRESH) {
        fresh = make_resampler(rate, !on_heap, &fresh_mem);
        r = fresh;
    } else {
        REQUIRE(CALL(edgeser_resampler_reset(r)) == EDGESER_OK);
    }
    run_stream(r, rate, mono, n, p->chunk_seed, p->flags, stream_out, total);
    REQUIRE(memcmp(stream_out, one_out, (size_t)total * sizeof(float)) == 0);

    if (p->flags & FLAG_SECOND_PASS) {
        /* Reset after flush starts over: the same input gives the same output again. */
        REQUIRE(CALL(edgeser_resampler_reset(r)) == EDGESER_OK);
        memset(stream_out, 0, (size_t)total * sizeof(float));
        run_stream(r, rate, mono, n, ~p->chunk_seed, p->flags ^ FLAG_SMALL_CAPACITY,
                   stream_out, total);
        REQUIRE(memcmp(stream_out, one_out, (size_t)total * sizeof(float)) == 0);
    }
    if (fresh != NULL) {
        release(fresh, fresh_mem);
    }
    /* Input within [-1, 1] (every integer format, and float input that happens to be) gives
     * bounded finite output. */
    if (within(mono, n, 1.0)) {
        REQUIRE(within(one_out, (size_t)total, RESAMPLED_ABS_BOUND));
    }
    free(stream_out);
    *n_res = (size_t)total;
    return one_out;
}

/* ---------------------------------------------------------------- PCM and mixdown ------ */

/* The documented mapping of one sample, computed independently of the library. */
static float decode_reference(const unsigned char *b, edgeser_pcm_format format)
{
    uint32_t u;
    switch (format) {
    case EDGESER_PCM_U8:
        return (float)((int)b[0] - 128) / 128.0f;
    case EDGESER_PCM_S16:
        u = (uint32_t)b[0] | ((uint32_t)b[1] << 8);
        return (float)((long)u - (u >= 0x8000u ? 0x10000L : 0L)) / 32768.0f;
    case EDGESER_PCM_S24:
        u = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16);
        return (float)((long)u - (u >= 0x800000u ? 0x1000000L : 0L)) / 8388608.0f;
    case EDGESER_PCM_S32: {
        int64_t v;
        u = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
        v = (int64_t)u - (u >= 0x80000000u ? (int64_t)0x100000000 : 0);
        return (float)((double)v / 2147483648.0);
    }
    case EDGESER_PCM_F32: {
        float f;
        memcpy(&f, b, sizeof f);
        return f;
    }
    case EDGESER_PCM_F64: {
        double d;
        memcpy(&d, b, sizeof d);
        return (float)d;
    }
    }
    abort();
}

static int integer_format(edgeser_pcm_format f)
{
    return f == EDGESER_PCM_U8 || f == EDGESER_PCM_S16 || f == EDGESER_PCM_S24 ||
           f == EDGESER_PCM_S32;
}

/* Invalid channel counts or formats: errors from both calls, whatever the lengths. */
static void invalid_pcm(const params *p, const uint8_t *pcm, size_t pcm_len)
{
    float dummy[8];
    edgeser_status st;
    size_t n_frames = pcm_len; /* as if one byte per frame: must not matter */
    int fmt_ok = edgeser_pcm_bytes_per_sample(p->format) != 0u;

    st = CALL(edgeser_pcm_to_float(pcm_len > 0u ? (const void *)pcm : (const void *)dummy,
                                   n_frames, p->channels, p->format, dummy));
    if (p->channels == 0u) {
        REQUIRE(st == EDGESER_ERR_CHANNELS || (!fmt_ok && st == EDGESER_ERR_FORMAT));
        REQUIRE(CALL(edgeser_mixdown(dummy, n_frames, 0u, dummy)) == EDGESER_ERR_CHANNELS);
    } else {
        REQUIRE(!fmt_ok);
        REQUIRE(st == EDGESER_ERR_FORMAT);
    }
}

/* Length computations that cannot fit size_t are reported, never wrapped into small ones. */
static void overflow_lengths(const params *p)
{
    float dummy[4] = {0};
    size_t n_big = SIZE_MAX / 2u / p->channels + 1u;
    float db = 0.0f;
    REQUIRE(CALL(edgeser_pcm_to_float(dummy, n_big, p->channels, p->format, dummy)) ==
            EDGESER_ERR_OVERFLOW);
    REQUIRE(CALL(edgeser_mixdown(dummy, n_big, p->channels, dummy)) == EDGESER_ERR_OVERFLOW);
    REQUIRE(CALL(edgeser_normalize(dummy, SIZE_MAX / sizeof(float) + 1u, dummy)) ==
            EDGESER_ERR_OVERFLOW);
    REQUIRE(CALL(edgeser_rms_dbfs(dummy, SIZE_MAX / sizeof(float) + 1u, &db)) ==
            EDGESER_ERR_OVERFLOW);
}

/* Decodes and mixes down; returns the mono signal (n_frames samples) or NULL. */
static float *decode_and_mix(const params *p, const uint8_t *pcm, size_t pcm_len, size_t *n_mono)
{
    size_t bps = edgeser_pcm_bytes_per_sample(p->format);
    uint64_t frame_bytes;
    size_t n_frames, count, i, align = (p->flags >> FLAG_ALIGN_SHIFT) & 3u;
    unsigned char *bytes;
    float *inter, *mono;

    *n_mono = 0;
    if (p->channels == 0u || bps == 0u) {
        invalid_pcm(p, pcm, pcm_len);
        return NULL;
    }
    overflow_lengths(p);

    frame_bytes = (uint64_t)p->channels * bps;
    n_frames = (size_t)((uint64_t)pcm_len / frame_bytes);
    if ((uint64_t)n_frames * p->channels > MAX_IN_SAMPLES) {
        n_frames = MAX_IN_SAMPLES / p->channels;
    }
    if (rate_valid(p->rate) && total_output(n_frames, p->rate) > MAX_OUT_SAMPLES) {
        n_frames = (size_t)((uint64_t)MAX_OUT_SAMPLES * p->rate / EDGESER_TARGET_RATE_HZ);
    }
    count = n_frames * p->channels;

    /* Any alignment is accepted: the bytes sit 0..3 bytes past an aligned address. */
    bytes = (unsigned char *)xmalloc(count * bps + align);
    if (count > 0u) {
        memcpy(bytes + align, pcm, count * bps);
    }
    inter = (float *)xmalloc(count * sizeof(float));

    if ((p->flags & FLAG_NULL_ARGS) && count > 0u) {
        REQUIRE(CALL(edgeser_pcm_to_float(NULL, n_frames, p->channels, p->format, inter)) ==
                EDGESER_ERR_NULL);
        REQUIRE(CALL(edgeser_pcm_to_float(bytes + align, n_frames, p->channels, p->format, NULL)) ==
                EDGESER_ERR_NULL);
        REQUIRE(CALL(edgeser_mixdown(NULL, n_frames, p->channels, inter)) == EDGESER_ERR_NULL);
        REQUIRE(CALL(edgeser_mixdown(inter, n_frames, p->channels, NULL)) == EDGESER_ERR_NULL);
    }

    REQUIRE(CALL(edgeser_pcm_to_float(bytes + align, n_frames, p->channels, p->format, inter)) ==
            EDGESER_OK);
    for (i = 0; i < count; ++i) {
        REQUIRE(same_value(inter[i], decode_reference(bytes + align + i * bps, p->format)));
    }
    if (integer_format(p->format)) {
        REQUIRE(within(inter, count, 1.0)); /* value / 2^(bits-1) */
    }
    free(bytes);

    mono = (float *)xmalloc(n_frames * sizeof(float));
    REQUIRE(CALL(edgeser_mixdown(inter, n_frames, p->channels, mono)) == EDGESER_OK);
    for (i = 0; i < n_frames; ++i) {
        /* The documented mean, accumulated in double in channel order. */
        double acc = 0.0;
        uint32_t c;
        for (c = 0; c < p->channels; ++c) {
            acc += (double)inter[i * p->channels + c];
        }
        REQUIRE(same_value(mono[i], (float)(acc / (double)p->channels)));
    }
    if (p->flags & FLAG_MIX_IN_PLACE) {
        /* `out` may alias `in`: the same result in place. */
        REQUIRE(CALL(edgeser_mixdown(inter, n_frames, p->channels, inter)) == EDGESER_OK);
        for (i = 0; i < n_frames; ++i) {
            REQUIRE(same_value(inter[i], mono[i]));
        }
    }
    free(inter);
    *n_mono = n_frames;
    return mono;
}

/* ---------------------------------------------------------------- windows -------------- */

static int window_args_valid(size_t window, size_t hop)
{
    return window > 0u && hop > 0u && hop <= window;
}

/* The documented layout, derived independently: full windows at k*hop while they fit, then
 * a short tail from the next hop start when it reaches past the last full window, or one
 * short window for a signal shorter than `window`; tails below min_len are dropped. */
static size_t reference_count(size_t n, size_t window, size_t hop, size_t min_len)
{
    size_t full, last_end, tail_start;
    if (n < window) {
        return (n > 0u && n >= min_len) ? 1u : 0u;
    }
    full = (n - window) / hop + 1u;
    last_end = (full - 1u) * hop + window; /* <= n */
    tail_start = full * hop;               /* <= last_end since hop <= window */
    return full + ((last_end < n && n - tail_start >= min_len) ? 1u : 0u);
}

static void check_window(size_t n, size_t window, size_t hop, size_t min_len, size_t count,
                         size_t k)
{
    size_t start = SIZE_MAX, len = SIZE_MAX;
    REQUIRE(CALL(edgeser_window_bounds(n, window, hop, min_len, k, &start, &len)) == EDGESER_OK);
    REQUIRE(len > 0u && len <= n && start <= n - len); /* inside the signal */
    REQUIRE(k <= SIZE_MAX / hop && start == k * hop);
    REQUIRE(len == (n - start < window ? n - start : window));
    /* Only the short window may fall below min_len; full windows are always kept. */
    REQUIRE(len == window || len >= min_len);
    if (k + 1u == count && min_len <= 1u) {
        REQUIRE(start + len == n); /* nothing at the end left out */
    }
}

/* Window layout of a signal, then normalisation and level of (some of) its windows. */
static void windows(const float *y, size_t n, const params *p)
{
    size_t count = 0, k, start, len;
    edgeser_status st;

    st = CALL(edgeser_window_count(n, p->window, p->hop, p->min_len, &count));
    if (!window_args_valid(p->window, p->hop)) {
        REQUIRE(st == EDGESER_ERR_ARGUMENT);
        REQUIRE(CALL(edgeser_window_bounds(n, p->window, p->hop, p->min_len, 0u, &start, &len)) ==
                EDGESER_ERR_ARGUMENT);
        return;
    }
    REQUIRE(st == EDGESER_OK);
    REQUIRE(CALL(edgeser_window_count(n, p->window, p->hop, p->min_len, NULL)) == EDGESER_ERR_NULL);
    REQUIRE(count == reference_count(n, p->window, p->hop, p->min_len));
    REQUIRE(CALL(edgeser_window_bounds(n, p->window, p->hop, p->min_len, count, &start, &len)) ==
            EDGESER_ERR_ARGUMENT);
    REQUIRE(CALL(edgeser_window_bounds(n, p->window, p->hop, p->min_len, 0u, NULL, &len)) ==
            EDGESER_ERR_NULL);
    REQUIRE(CALL(edgeser_window_bounds(n, p->window, p->hop, p->min_len, 0u, &start, NULL)) ==
            EDGESER_ERR_NULL);

    for (k = 0; k < count; ++k) {
        float *out, db = 0.0f;
        size_t i;
        check_window(n, p->window, p->hop, p->min_len, count, k);
        if (y == NULL || (k >= MAX_NORMALIZED_WINDOWS && k + 1u != count)) {
            continue;
        }
        REQUIRE(CALL(edgeser_window_bounds(n, p->window, p->hop, p->min_len, k, &start, &len)) ==
                EDGESER_OK);

        out = (float *)xmalloc(len * sizeof(float));
        if (p->flags & FLAG_NULL_ARGS) {
            REQUIRE(CALL(edgeser_normalize(NULL, len, out)) == EDGESER_ERR_NULL);
            REQUIRE(CALL(edgeser_normalize(y + start, len, NULL)) == EDGESER_ERR_NULL);
            REQUIRE(CALL(edgeser_rms_dbfs(NULL, len, &db)) == EDGESER_ERR_NULL);
            REQUIRE(CALL(edgeser_rms_dbfs(y + start, len, NULL)) == EDGESER_ERR_NULL);
        }
        REQUIRE(CALL(edgeser_normalize(y + start, len, out)) == EDGESER_OK);
        if (all_finite(y + start, len)) {
            /* |x_i - mean| <= sqrt(n * var), so every output is within sqrt(len). */
            double bound = sqrt((double)len) * (1.0 + 1e-6) + 1e-6;
            REQUIRE(within(out, len, bound));
        }
        if (any_nan(y + start, len)) {
            REQUIRE(any_nan(out, len)); /* NaN in gives NaN out */
        }
        if (k == 0u) {
            /* `out` may alias `in`: the same result in place. */
            float *copy = (float *)xmalloc(len * sizeof(float));
            memcpy(copy, y + start, len * sizeof(float));
            REQUIRE(CALL(edgeser_normalize(copy, len, copy)) == EDGESER_OK);
            for (i = 0; i < len; ++i) {
                REQUIRE(same_value(copy[i], out[i]));
            }
            free(copy);
        }
        free(out);

        REQUIRE(CALL(edgeser_rms_dbfs(y + start, len, &db)) == EDGESER_OK);
        if (any_nan(y + start, len)) {
            REQUIRE(isnan(db));
        } else if (all_finite(y + start, len)) {
            double sum = 0.0, ref;
            for (i = 0; i < len; ++i) {
                sum += (double)y[start + i] * (double)y[start + i];
            }
            ref = sum > 0.0 ? 10.0 * log10(sum / (double)len) : -INFINITY;
            if (ref < (double)EDGESER_DBFS_FLOOR) {
                ref = (double)EDGESER_DBFS_FLOOR;
            }
            REQUIRE(isfinite(db) && db >= EDGESER_DBFS_FLOOR);
            REQUIRE(fabs((double)db - ref) <= 1e-3);
        }
    }
}

/* Layouts of signals near SIZE_MAX samples: counts and bounds must not wrap. */
static void huge_windows(const params *p)
{
    size_t n = SIZE_MAX - p->huge_offset, count = 0, start, len;
    edgeser_status st = CALL(edgeser_window_count(n, p->window, p->hop, p->min_len, &count));
    if (!window_args_valid(p->window, p->hop)) {
        REQUIRE(st == EDGESER_ERR_ARGUMENT);
        return;
    }
    REQUIRE(st == EDGESER_OK || st == EDGESER_ERR_OVERFLOW);
    if (st != EDGESER_OK) {
        return;
    }
    REQUIRE(count == reference_count(n, p->window, p->hop, p->min_len));
    if (count > 0u) {
        check_window(n, p->window, p->hop, p->min_len, count, 0u);
        check_window(n, p->window, p->hop, p->min_len, count, count - 1u);
        check_window(n, p->window, p->hop, p->min_len, count, count / 2u);
    }
    REQUIRE(CALL(edgeser_window_bounds(n, p->window, p->hop, p->min_len, count, &start, &len)) ==
            EDGESER_ERR_ARGUMENT);
}

/* ---------------------------------------------------------------- windower ----------- */

/* Events from the windows' levels as probabilities: invariants of the tracker and summary. */
static void events_from(const edgeser_window *w, size_t count, const params *p)
{
    edgeser_event_config c;
    edgeser_event_tracker *t = NULL;
    edgeser_summary *s = NULL;
    edgeser_summary_totals totals;
    edgeser_event e;
    uint64_t last_stop = 0u, n_events = 0u, samples = 0u;
    size_t k;
    int closed = 0;

    c.threshold = 0.3 + (double)(p->chunk_seed % 50u) / 100.0;
    c.release = (p->flags_b & FLAGB_HYSTERESIS) ? c.threshold - 0.2 : c.threshold;
    c.min_duration = p->min_len;
    c.merge_gap = p->hop * (p->flags & 3u);
    REQUIRE(CALL(edgeser_event_tracker_create(&c, &t)) == EDGESER_OK);
    REQUIRE(CALL(edgeser_summary_create(1u, &s)) == EDGESER_OK);
    for (k = 0; k <= count; ++k) {
        double prob = 0.0;
        if (k < count) {
            /* -100..0 dBFS mapped to 0..1; NaN levels (NaN input) count as silent. */
            int silent = w[k].silent || isnan(w[k].level_dbfs);
            prob = silent ? 0.0 : ((double)w[k].level_dbfs + 100.0) / 100.0;
            REQUIRE(CALL(edgeser_event_tracker_add(t, w[k].start, w[k].stop, prob, silent, &e,
                                                   &closed)) == EDGESER_OK);
            REQUIRE(CALL(edgeser_summary_add_window(s, silent ? NULL : &prob)) == EDGESER_OK);
        } else {
            REQUIRE(CALL(edgeser_event_tracker_finish(t, &e, &closed)) == EDGESER_OK);
        }
        if (closed) {
            /* Events are in order, do not overlap, lie within the windows, keep min_duration,
             * and their peak reaches the threshold. */
            REQUIRE(e.start < e.stop && e.start >= last_stop && e.windows >= 1u);
            REQUIRE(e.stop - e.start >= c.min_duration && e.peak >= c.threshold);
            REQUIRE(e.peak_start >= e.start && e.peak_stop <= e.stop);
            REQUIRE(k == count || w[k].start > e.stop + c.merge_gap);
            last_stop = e.stop;
            n_events += 1u;
            samples += e.stop - e.start;
            REQUIRE(CALL(edgeser_summary_add_event(s, e.start, e.stop)) == EDGESER_OK);
        }
    }
    REQUIRE(CALL(edgeser_event_tracker_add(t, 0u, 1u, 0.5, 0, &e, &closed)) == EDGESER_ERR_STATE);
    REQUIRE(CALL(edgeser_summary_get(s, &totals, NULL)) == EDGESER_OK);
    REQUIRE(totals.windows == count && totals.events == n_events &&
            totals.event_samples == samples && totals.voiced + totals.silent == count);
    edgeser_summary_destroy(s);
    edgeser_event_tracker_destroy(t);
}

/* The windower over the first `n_frames` frames of `pcm` must give the windows of the one-shot
 * path: edgeser_window_bounds over `res` (n_res samples), then level and normalisation. */
static void windower(const params *p, const uint8_t *pcm, size_t n_frames, const float *res,
                     size_t n_res)
{
    edgeser_windower_config c;
    edgeser_windower *w = NULL;
    size_t bytes = 0, frame_bytes, done = 0, count = 0, expected = 0, guard = 0;
    void *mem = NULL;
    float *out, *ref;
    edgeser_window *got;
    edgeser_status st;
    uint32_t seed = p->chunk_seed ^ 0x9e3779b9u;
    uint64_t total = 0;
    int has = 0;

    memset(&c, 0, sizeof(c));
    c.rate_in_hz = p->rate;
    c.channels = p->channels;
    c.format = p->format;
    c.window = p->window;
    c.hop = p->hop;
    c.min_len = p->min_len;
    c.silence_dbfs = (p->flags & 0x04u) ? -INFINITY : -60.0f + (float)(p->flags_b & 7u) * 10.0f;
    c.normalization = (p->flags_b & FLAGB_RAW) ? EDGESER_NORMALIZE_NONE
                                                : EDGESER_NORMALIZE_PER_WINDOW;
    st = CALL(edgeser_windower_size(&c, &bytes));
    if (!window_args_valid(p->window, p->hop)) {
        REQUIRE(st == EDGESER_ERR_ARGUMENT || st == EDGESER_ERR_RATE ||
                st == EDGESER_ERR_CHANNELS || st == EDGESER_ERR_FORMAT);
        return;
    }
    if (res == NULL) {
        REQUIRE(st == EDGESER_ERR_RATE); /* mono exists, so channels and format are valid */
        return;
    }
    if (p->window > MAX_WINDOWER_WINDOW || p->channels > 64u) {
        /* Sized honestly (or refused as overflow), but too large to build per input. */
        REQUIRE(st == EDGESER_OK || st == EDGESER_ERR_OVERFLOW);
        return;
    }
    REQUIRE(st == EDGESER_OK && bytes > p->window * sizeof(float));
    if (p->flags_b & FLAGB_WINDOWER_HEAP) {
        REQUIRE(CALL(edgeser_windower_create(&c, &w)) == EDGESER_OK);
    } else {
        mem = alloc_state(bytes);
        REQUIRE(CALL(edgeser_windower_init(mem, bytes - 1u, &c, &w)) ==
                EDGESER_ERR_BUFFER_TOO_SMALL);
        REQUIRE(CALL(edgeser_windower_init(mem, bytes, &c, &w)) == EDGESER_OK);
    }
    REQUIRE(CALL(edgeser_window_count(n_res, p->window, p->hop, p->min_len, &expected)) ==
            EDGESER_OK);
    out = (float *)xmalloc(p->window * sizeof(float));
    ref = (float *)xmalloc(p->window * sizeof(float));
    got = (edgeser_window *)xmalloc((expected + 1u) * sizeof(edgeser_window));
    frame_bytes = edgeser_pcm_bytes_per_sample(p->format) * p->channels;

    for (;;) {
        int ending = done == n_frames;
        if (ending) {
            REQUIRE(CALL(edgeser_windower_finish(w)) == EDGESER_OK);
        } else {
            size_t step = 1u + xorshift32(&seed) % (xorshift32(&seed) & 1u ? 64u : 8192u), taken = 0;
            if (step > n_frames - done) {
                step = n_frames - done;
            }
            REQUIRE(CALL(edgeser_windower_push(w, pcm + done * frame_bytes, step, &taken)) ==
                    EDGESER_OK);
            REQUIRE(taken <= step);
            done += taken;
            if ((p->flags_b & FLAGB_LAZY_PULL) && taken == step) {
                continue;
            }
        }
        /* Pull what is ready; one call with too small a buffer first changes nothing. */
        REQUIRE(CALL(edgeser_windower_next(w, out, p->window - 1u, &got[0], &has)) ==
                EDGESER_ERR_BUFFER_TOO_SMALL);
        for (;;) {
            size_t start = 0, len = 0, i;
            edgeser_window *g;
            REQUIRE(count <= expected);
            g = &got[count];
            REQUIRE(CALL(edgeser_windower_next(w, out, p->window, g, &has)) == EDGESER_OK);
            if (!has) {
                break;
            }
            REQUIRE(count < expected);
            REQUIRE(CALL(edgeser_window_bounds(n_res, p->window, p->hop, p->min_len, count,
                                               &start, &len)) == EDGESER_OK);
            REQUIRE(g->index == count && g->start == start && g->length == len &&
                    g->stop == start + len);
            REQUIRE(g->is_final == (len < p->window));
            {
                float level = 0.0f;
                REQUIRE(CALL(edgeser_rms_dbfs(res + start, len, &level)) == EDGESER_OK);
                REQUIRE(same_value(g->level_dbfs, level));
                REQUIRE(g->silent == !(level >= c.silence_dbfs));
            }
            if (c.normalization == EDGESER_NORMALIZE_PER_WINDOW) {
                REQUIRE(CALL(edgeser_normalize(res + start, len, ref)) == EDGESER_OK);
            } else {
                memcpy(ref, res + start, len * sizeof(float));
            }
            for (i = 0; i < len; ++i) {
                REQUIRE(same_value(out[i], ref[i]));
            }
            ++count;
        }
        if (ending) {
            break;
        }
        REQUIRE(++guard < 10000000u);
    }
    REQUIRE(count == expected);
    REQUIRE(CALL(edgeser_windower_samples(w, &total)) == EDGESER_OK && total == n_res);
    {
        size_t taken = 0;
        REQUIRE(CALL(edgeser_windower_push(w, pcm, 0u, &taken)) == EDGESER_ERR_STATE);
        REQUIRE(CALL(edgeser_windower_finish(w)) == EDGESER_ERR_STATE);
    }
    events_from(got, count, p);
    edgeser_windower_destroy(w);
    free(mem);
    free(got);
    free(ref);
    free(out);
}

/* ---------------------------------------------------------------- noise suppressor ----- */

static float sanitized(float x)
{
    if (isnan(x) || isinf(x)) {
        return 0.0f;
    }
    if (x > EDGESER_DENOISE_INPUT_LIMIT) {
        return EDGESER_DENOISE_INPUT_LIMIT;
    }
    return x < -EDGESER_DENOISE_INPUT_LIMIT ? -EDGESER_DENOISE_INPUT_LIMIT : x;
}

/* One whole run: `n` samples through process in chunks from `seed` (0: one call; odd chunks
 * in place when `in_place`), then the flush; n + latency samples into out. */
static void denoise_run(edgeser_denoiser *d, const float *x, size_t n, size_t latency,
                        uint32_t seed, int in_place, float *out)
{
    size_t done = 0, got = 0;
    unsigned k = 0;
    while (done < n) {
        size_t step = seed == 0u ? n - done : 1u + xorshift32(&seed) % (xorshift32(&seed) & 1u ? 37u : 3000u);
        if (step > n - done) {
            step = n - done;
        }
        if (in_place && (k++ & 1u)) {
            memcpy(out + done, x + done, step * sizeof(float));
            REQUIRE(CALL(edgeser_denoiser_process(d, out + done, out + done, step)) == EDGESER_OK);
        } else {
            REQUIRE(CALL(edgeser_denoiser_process(d, x + done, out + done, step)) == EDGESER_OK);
        }
        done += step;
    }
    REQUIRE(CALL(edgeser_denoiser_flush(d, out + n, latency - 1u, &got)) ==
            EDGESER_ERR_BUFFER_TOO_SMALL);
    REQUIRE(CALL(edgeser_denoiser_flush(d, out + n, latency, &got)) == EDGESER_OK);
    REQUIRE(got == latency);
    REQUIRE(CALL(edgeser_denoiser_process(d, x, out, n > 0u ? 1u : 0u)) == EDGESER_ERR_STATE);
    REQUIRE(CALL(edgeser_denoiser_flush(d, out + n, latency, &got)) == EDGESER_ERR_STATE);
}

static void denoiser(const params *p, const float *mono, size_t n)
{
    edgeser_denoiser *d = NULL;
    edgeser_denoiser_info info;
    size_t bytes = 0, latency = 0, i;
    void *mem = NULL;
    float *clean, *a, *b;
    double bound;
    edgeser_status st = CALL(edgeser_denoiser_size(p->rate, &bytes));

    if (p->rate < EDGESER_DENOISE_MIN_RATE_HZ || p->rate > EDGESER_DENOISE_MAX_RATE_HZ) {
        REQUIRE(st == EDGESER_ERR_RATE);
        REQUIRE(CALL(edgeser_denoiser_latency(p->rate, &latency)) == EDGESER_ERR_RATE);
        REQUIRE(CALL(edgeser_denoiser_create(p->rate, &d)) == EDGESER_ERR_RATE);
        return;
    }
    REQUIRE(st == EDGESER_OK);
    REQUIRE(CALL(edgeser_denoiser_latency(p->rate, &latency)) == EDGESER_OK);
    if (p->flags & FLAG_HEAP) {
        REQUIRE(CALL(edgeser_denoiser_create(p->rate, &d)) == EDGESER_OK);
    } else {
        mem = alloc_state(bytes);
        REQUIRE(CALL(edgeser_denoiser_init(mem, bytes - 1u, p->rate, &d)) ==
                EDGESER_ERR_BUFFER_TOO_SMALL);
        REQUIRE(CALL(edgeser_denoiser_init(mem, bytes, p->rate, &d)) == EDGESER_OK);
    }
    REQUIRE(CALL(edgeser_denoiser_info_get(d, &info)) == EDGESER_OK);
    REQUIRE(info.latency == latency && info.frame == latency && info.hop * 2u == latency &&
            info.memory_bytes == bytes && info.rate_hz == p->rate);

    clean = (float *)xmalloc((n > 0u ? n : 1u) * sizeof(float));
    a = (float *)xmalloc((n + latency) * sizeof(float));
    b = (float *)xmalloc((n + latency) * sizeof(float));
    for (i = 0; i < n; ++i) {
        clean[i] = sanitized(mono[i]);
    }
    denoise_run(d, mono, n, latency, p->chunk_seed | 1u, (p->flags & FLAG_MIX_IN_PLACE) != 0u, a);
    /* Finite, and bounded: every gain is at most 1, so a frame's output is at most
     * sqrt(frame) times its input's largest value, and two frames overlap. */
    bound = 2.0 * sqrt((double)latency) * EDGESER_DENOISE_INPUT_LIMIT;
    REQUIRE(all_finite(a, n + latency) && within(a, n + latency, bound));
    REQUIRE(CALL(edgeser_denoiser_reset(d)) == EDGESER_OK);
    denoise_run(d, clean, n, latency, 0u, 0, b);
    REQUIRE(memcmp(a, b, (n + latency) * sizeof(float)) == 0);
    if (p->flags & FLAG_SECOND_PASS) {
        REQUIRE(CALL(edgeser_denoiser_reset(d)) == EDGESER_OK);
        denoise_run(d, mono, n, latency, p->chunk_seed ^ 0x5bd1e995u, 1, b);
        REQUIRE(memcmp(a, b, (n + latency) * sizeof(float)) == 0);
    }
    edgeser_denoiser_destroy(d);
    free(mem);
    free(clean);
    free(a);
    free(b);
}

/* ---------------------------------------------------------------- entry ---------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    params p;
    const uint8_t *pcm = size > HEADER_BYTES ? data + HEADER_BYTES : data;
    size_t pcm_len = size > HEADER_BYTES ? size - HEADER_BYTES : 0u;
    size_t n_mono = 0, n_res = 0;
    float *mono, *res = NULL;
    float db = 0.0f;

    parse_params(data, size, &p);

    /* Documented trivial cases. */
    REQUIRE(CALL(edgeser_normalize(NULL, 0u, NULL)) == EDGESER_OK);
    REQUIRE(CALL(edgeser_rms_dbfs(NULL, 0u, &db)) == EDGESER_OK && db == EDGESER_DBFS_FLOOR);
    REQUIRE(edgeser_strerror((edgeser_status)(p.flags_b % 12u)) != NULL);
    REQUIRE(strcmp(edgeser_version(), EDGESER_VERSION_STRING) == 0);

    mono = decode_and_mix(&p, pcm, pcm_len, &n_mono);
    if (mono != NULL) {
        res = resample(mono, n_mono, &p, &n_res);
    }
    if (mono != NULL) {
        windower(&p, pcm, n_mono, res, n_res);
        denoiser(&p, mono, n_mono);
    }
    if (res != NULL) {
        windows(res, n_res, &p);
    } else if (mono != NULL) {
        windows(mono, n_mono, &p); /* no resampler for this rate: the input signal itself */
    } else {
        windows(NULL, pcm_len, &p); /* no signal: layout only */
    }
    huge_windows(&p);

    free(res);
    free(mono);
    return 0;
}
