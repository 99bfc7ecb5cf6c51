/* Tests for the streaming resampler to 16 kHz: sizing and caller memory, argument errors, info,
 * exact output counts and per-call predictions, streaming == one shot for many chunkings,
 * capacity errors that leave the state unchanged, flush/reset, identity, timing, DC gain and
 * overflow. Plain C99 + libm; no Python. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgeser/frontend.h"
#include "check.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
#define SENTINEL 12345.0f
#define TARGET ((uint64_t)EDGESER_TARGET_RATE_HZ)

static const double kPi = 3.14159265358979323846;

/* Rates whose polyphase table holds every phase (README), then others across the range. */
static const uint32_t kExactRates[] = {8000,  11025, 16000, 22050, 24000,
                                       32000, 44100, 48000, 88200, 96000};
static const uint32_t kOtherRates[] = {1000, 12345, 16001, 44101, 383999, 384000};
/* Of kOtherRates, those whose table cannot hold all phases (interpolated coefficients). */
static const uint32_t kApproxRates[] = {12345, 16001, 44101, 383999};

/* The internal stage size is 4096 new samples per pass: chunk sizes around it. */
static const size_t kChunk1[] = {1};
static const size_t kChunkPrimes[] = {2,  3,  5,  7,  11, 13, 17, 19, 23, 29, 31,
                                      37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79};
static const size_t kChunk4095[] = {4095};
static const size_t kChunk4096[] = {4096};
static const size_t kChunk4097[] = {4097};
static const size_t kChunkMixed[] = {0, 4096, 1, 0, 997, 8193, 3}; /* includes empty calls */

typedef struct chunking {
    const char *name;
    const size_t *sizes; /* cycled; NULL: the whole signal in one call */
    size_t count;
} chunking;

static const chunking kChunkings[] = {
    {"1", kChunk1, COUNT_OF(kChunk1)},
    {"primes", kChunkPrimes, COUNT_OF(kChunkPrimes)},
    {"4095", kChunk4095, COUNT_OF(kChunk4095)},
    {"4096", kChunk4096, COUNT_OF(kChunk4096)},
    {"4097", kChunk4097, COUNT_OF(kChunk4097)},
    {"mixed", kChunkMixed, COUNT_OF(kChunkMixed)},
    {"whole", NULL, 0},
};

/* ---------------------------------------------------------------- helpers -------------- */

static int is_approx_rate(uint32_t rate)
{
    size_t i;
    for (i = 0; i < COUNT_OF(kApproxRates); ++i) {
        if (kApproxRates[i] == rate) {
            return 1;
        }
    }
    return 0;
}

static uint32_t gcd_u32(uint32_t a, uint32_t b)
{
    while (b != 0) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* ceil(n * 16000 / rate), the total output count the header promises. */
static size_t expected_total(size_t n, uint32_t rate)
{
    return (size_t)(((uint64_t)n * TARGET + rate - 1u) / rate);
}

/* Pseudo-random floats in [-0.5, 0.5) from a 32-bit LCG. */
static void fill_noise(float *x, size_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 12345u;
    size_t i;
    for (i = 0; i < n; ++i) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((double)(s >> 8) / 16777216.0 - 0.5);
    }
}

static float *alloc_floats(size_t n)
{
    /* Exactly n floats (at least 1), so ASan catches any write past the capacity. */
    float *p = (float *)malloc((n > 0 ? n : 1) * sizeof(float));
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static uint32_t taps_of(edgeser_resampler *r)
{
    edgeser_resampler_info info;
    if (edgeser_resampler_info_get(r, &info) != EDGESER_OK) {
        return 0;
    }
    return info.taps_per_phase;
}

/* Feed x[0..n) in chunks (sizes cycled; NULL: one call), then flush, writing into out (capacity
 * cap). Every process call gets exactly the capacity edgeser_resampler_max_output predicts, and
 * flush exactly what edgeser_resampler_flush_output predicts; a call that returns another count
 * or status adds to *bad. With `probe`, each call with a nonzero prediction is first tried with
 * one sample less of capacity (and with out == NULL): it must fail, write nothing and leave the
 * prediction unchanged. Returns the total written, or SIZE_MAX when streaming could not go on. */
static size_t run_stream(edgeser_resampler *r, const float *x, size_t n, const size_t *sizes,
                         size_t n_sizes, float *out, size_t cap, int probe, unsigned long *bad)
{
    size_t pos = 0, total = 0, k = 0, pred = 0, got = 0, again = 0, i;
    edgeser_status st;

    while (pos < n || k == 0) { /* at least one call, even for n == 0 */
        size_t step = sizes != NULL ? sizes[k % n_sizes] : n;
        ++k;
        if (step > n - pos) {
            step = n - pos;
        }
        if (edgeser_resampler_max_output(r, step, &pred) != EDGESER_OK || pred > cap - total) {
            ++*bad;
            return SIZE_MAX;
        }
        if (probe && pred > 0) {
            for (i = 0; i < pred; ++i) {
                out[total + i] = SENTINEL;
            }
            got = 77;
            st = edgeser_resampler_process(r, x + pos, step, out + total, pred - 1, &got);
            if (st != EDGESER_ERR_BUFFER_TOO_SMALL) {
                ++*bad;
                fprintf(stderr, "  probe: process capacity %u -> status %d\n",
                        (unsigned)(pred - 1), (int)st);
            }
            st = edgeser_resampler_process(r, x + pos, step, NULL, pred, &got);
            if (st != EDGESER_ERR_NULL) {
                ++*bad;
            }
            for (i = 0; i < pred; ++i) {
                if (out[total + i] != SENTINEL) {
                    ++*bad;
                    fprintf(stderr, "  probe: failed process wrote out[%u]\n", (unsigned)i);
                    break;
                }
            }
            if (edgeser_resampler_max_output(r, step, &again) != EDGESER_OK || again != pred) {
                ++*bad;
            }
        }
        st = edgeser_resampler_process(r, x + pos, step, out + total, pred, &got);
        if (st != EDGESER_OK || got != pred) {
            ++*bad;
            fprintf(stderr, "  process(%u at %u): status %d, got %u, predicted %u\n",
                    (unsigned)step, (unsigned)pos, (int)st, (unsigned)got, (unsigned)pred);
            return SIZE_MAX;
        }
        total += got;
        pos += step;
    }
    if (edgeser_resampler_flush_output(r, &pred) != EDGESER_OK || pred > cap - total) {
        ++*bad;
        return SIZE_MAX;
    }
    if (probe && pred > 0) {
        for (i = 0; i < pred; ++i) {
            out[total + i] = SENTINEL;
        }
        st = edgeser_resampler_flush(r, out + total, pred - 1, &got);
        if (st != EDGESER_ERR_BUFFER_TOO_SMALL) {
            ++*bad;
            fprintf(stderr, "  probe: flush capacity %u -> status %d\n", (unsigned)(pred - 1),
                    (int)st);
        }
        if (edgeser_resampler_flush(r, NULL, pred, &got) != EDGESER_ERR_NULL) {
            ++*bad;
        }
        for (i = 0; i < pred; ++i) {
            if (out[total + i] != SENTINEL) {
                ++*bad;
                fprintf(stderr, "  probe: failed flush wrote out[%u]\n", (unsigned)i);
                break;
            }
        }
        if (edgeser_resampler_flush_output(r, &again) != EDGESER_OK || again != pred) {
            ++*bad;
        }
    }
    st = edgeser_resampler_flush(r, out + total, pred, &got);
    if (st != EDGESER_OK || got != pred) {
        ++*bad;
        fprintf(stderr, "  flush: status %d, got %u, predicted %u\n", (int)st, (unsigned)got,
                (unsigned)pred);
        return SIZE_MAX;
    }
    return total + got;
}

/* One-shot resampling with a generous capacity (not the exact prediction). */
static size_t one_shot(edgeser_resampler *r, const float *x, size_t n, float *out, size_t cap)
{
    size_t a = 0, b = 0;
    if (!CHECK_STATUS(edgeser_resampler_reset(r), EDGESER_OK) ||
        !CHECK_STATUS(edgeser_resampler_process(r, x, n, out, cap, &a), EDGESER_OK) ||
        !CHECK(a <= cap) ||
        !CHECK_STATUS(edgeser_resampler_flush(r, out + a, cap - a, &b), EDGESER_OK)) {
        return SIZE_MAX;
    }
    return a + b;
}

/* Aligned static pool big enough for any rate's state (checked at run time). */
#define POOL_BYTES (512u * 1024u)
static unsigned char g_pool[POOL_BYTES + 64];

static unsigned char *pool_aligned(void)
{
    uintptr_t p = (uintptr_t)g_pool;
    return g_pool + ((64u - (p & 63u)) & 63u);
}

/* ---------------------------------------------------------------- sizing / init -------- */

static void check_info(uint32_t rate, const edgeser_resampler_info *info, size_t bytes,
                       int expect_exact)
{
    uint32_t g = gcd_u32(EDGESER_TARGET_RATE_HZ, rate);
    double low_nyquist = 0.5 * (double)(rate < EDGESER_TARGET_RATE_HZ ? rate : EDGESER_TARGET_RATE_HZ);
    int ok = 1;

    ok &= CHECK(info->rate_in_hz == rate);
    ok &= CHECK(info->rate_out_hz == EDGESER_TARGET_RATE_HZ);
    ok &= CHECK(info->up == EDGESER_TARGET_RATE_HZ / g);
    ok &= CHECK(info->down == rate / g);
    ok &= CHECK(info->taps_per_phase >= 2 && info->taps_per_phase % 2 == 0);
    ok &= CHECK(info->table_bytes > 0 && info->table_bytes <= EDGESER_TABLE_BUDGET_BYTES);
    ok &= CHECK(info->table_bytes < info->state_bytes);
    ok &= CHECK(info->state_bytes == bytes);
    ok &= CHECK(info->stopband_db > 0.0);
    ok &= CHECK(info->passband_hz > 0.0 && info->passband_hz <= info->stopband_hz);
    ok &= CHECK(info->stopband_hz <= low_nyquist + 1e-9);
    if (expect_exact) {
        ok &= CHECK(info->exact == 1);
    } else {
        ok &= CHECK(info->exact == 0);
    }
    if (rate == EDGESER_TARGET_RATE_HZ) {
        ok &= CHECK(info->up == 1 && info->down == 1);
    }
    if (!ok) {
        fprintf(stderr, "  info of rate %u\n", (unsigned)rate);
    }
}

/* The stages: one for 16 kHz, rates below it and multiples of it; else two, via 32 kHz. Each
 * stage's phases, exactness and table add up to the whole resampler's info. */
static void check_stages(uint32_t rate, edgeser_resampler *r, const edgeser_resampler_info *info)
{
    uint32_t count = 0, k;
    int exact = 1, ok = 1;
    size_t table = 0;
    edgeser_resampler_info s[2];
    int two = rate > EDGESER_TARGET_RATE_HZ && rate % EDGESER_TARGET_RATE_HZ != 0u;

    if (!CHECK_STATUS(edgeser_resampler_stage_count(r, &count), EDGESER_OK) ||
        !CHECK(count == (two ? 2u : 1u))) {
        return;
    }
    for (k = 0; k < count; ++k) {
        uint32_t g;
        ok &= CHECK_STATUS(edgeser_resampler_stage_info(r, k, &s[k]), EDGESER_OK);
        g = gcd_u32(s[k].rate_out_hz, s[k].rate_in_hz);
        ok &= CHECK(s[k].up == s[k].rate_out_hz / g && s[k].down == s[k].rate_in_hz / g);
        ok &= CHECK(s[k].phases >= 1 && s[k].phases <= s[k].up);
        ok &= CHECK(s[k].exact == (s[k].phases == s[k].up));
        ok &= CHECK(s[k].taps_per_phase >= 2 && s[k].taps_per_phase % 2 == 0);
        ok &= CHECK(k > 0u || s[k].taps_per_phase <= info->taps_per_phase); /* input samples */
        ok &= CHECK(s[k].state_bytes == info->state_bytes);
        exact &= s[k].exact;
        table += s[k].table_bytes;
    }
    ok &= CHECK(s[0].rate_in_hz == rate && s[count - 1u].rate_out_hz == EDGESER_TARGET_RATE_HZ);
    if (count == 2u) {
        ok &= CHECK(s[0].rate_out_hz == 32000u && s[1].rate_in_hz == 32000u);
        ok &= CHECK(s[0].passband_hz >= 8000.0 && s[0].stopband_hz <= 24000.0);
        ok &= CHECK(s[1].up == 1u && s[1].down == 2u);
    }
    if (rate > EDGESER_TARGET_RATE_HZ && rate % EDGESER_TARGET_RATE_HZ == 0u) {
        ok &= CHECK(s[0].up == 1u && s[0].down == rate / EDGESER_TARGET_RATE_HZ);
    }
    ok &= CHECK(info->phases == s[0].phases);
    ok &= CHECK(info->exact == exact && info->table_bytes == table);
    ok &= CHECK(info->passband_hz == s[count - 1u].passband_hz &&
                info->stopband_hz == s[count - 1u].stopband_hz);
    ok &= CHECK_STATUS(edgeser_resampler_stage_info(r, count, &s[0]), EDGESER_ERR_ARGUMENT);
    ok &= CHECK_STATUS(edgeser_resampler_stage_info(r, 0, NULL), EDGESER_ERR_NULL);
    ok &= CHECK_STATUS(edgeser_resampler_stage_count(r, NULL), EDGESER_ERR_NULL);
    ok &= CHECK_STATUS(edgeser_resampler_stage_count(NULL, &count), EDGESER_ERR_NULL);
    if (!ok) {
        fprintf(stderr, "  stages of rate %u\n", (unsigned)rate);
    }
}

static void test_init_rate(uint32_t rate, int expect_exact)
{
    size_t bytes = 0;
    unsigned char *mem = pool_aligned();
    edgeser_resampler *r = NULL, *h = NULL;
    edgeser_resampler_info info, hinfo;
    void *heap;

    memset(&info, 0, sizeof info);
    memset(&hinfo, 0, sizeof hinfo);
    if (!CHECK_STATUS(edgeser_resampler_size(rate, &bytes), EDGESER_OK) ||
        !CHECK(bytes > 0 && bytes + 1 <= POOL_BYTES)) {
        fprintf(stderr, "  size of rate %u: %u\n", (unsigned)rate, (unsigned)bytes);
        return;
    }

    /* One byte short, zero bytes, misaligned, NULLs: refused, *out untouched. */
    r = (edgeser_resampler *)&info; /* a recognisable non-NULL value */
    CHECK_STATUS(edgeser_resampler_init(mem, bytes - 1, rate, &r), EDGESER_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(edgeser_resampler_init(mem, 0, rate, &r), EDGESER_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(edgeser_resampler_init(mem + 1, bytes, rate, &r), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_resampler_init(mem + 8, bytes, rate, &r), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_resampler_init(NULL, bytes, rate, &r), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_resampler_init(mem, bytes, rate, NULL), EDGESER_ERR_NULL);
    CHECK(r == (edgeser_resampler *)&info);
    CHECK_STATUS(edgeser_resampler_size(rate, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_resampler_create(rate, NULL), EDGESER_ERR_NULL);

    /* Exact size in the aligned static pool; also at a 16-byte (not 64-byte) aligned address. */
    r = NULL;
    if (CHECK_STATUS(edgeser_resampler_init(mem, bytes, rate, &r), EDGESER_OK) && CHECK(r != NULL)) {
        CHECK((unsigned char *)r >= mem && (unsigned char *)r < mem + bytes);
        if (CHECK_STATUS(edgeser_resampler_info_get(r, &info), EDGESER_OK)) {
            check_info(rate, &info, bytes, expect_exact);
            check_stages(rate, r, &info);
        }
        edgeser_resampler_destroy(r); /* caller memory: nothing freed */
    }
    r = NULL;
    if (CHECK_STATUS(edgeser_resampler_init(mem + 16, bytes, rate, &r), EDGESER_OK)) {
        CHECK_STATUS(edgeser_resampler_info_get(r, &hinfo), EDGESER_OK);
        CHECK(hinfo.state_bytes == bytes);
        edgeser_resampler_destroy(r);
        /* Destroyed: the memory is still ours and the object is recognisably dead. */
        CHECK_STATUS(edgeser_resampler_info_get(r, &hinfo), EDGESER_ERR_STATE);
        CHECK_STATUS(edgeser_resampler_reset(r), EDGESER_ERR_STATE);
        edgeser_resampler_destroy(r); /* twice is harmless */
    }

    /* malloc'd caller memory: destroy must not free it; freeing it ourselves is then valid
     * (ASan reports a double free otherwise). */
    heap = malloc(bytes);
    if (CHECK(heap != NULL)) {
        r = NULL;
        if (CHECK_STATUS(edgeser_resampler_init(heap, bytes, rate, &r), EDGESER_OK)) {
            edgeser_resampler_destroy(r);
        }
        free(heap);
    }

    /* create: same design as init. */
    if (CHECK_STATUS(edgeser_resampler_create(rate, &h), EDGESER_OK) && CHECK(h != NULL)) {
        if (CHECK_STATUS(edgeser_resampler_info_get(h, &hinfo), EDGESER_OK)) {
            CHECK(hinfo.up == info.up && hinfo.down == info.down);
            CHECK(hinfo.taps_per_phase == info.taps_per_phase && hinfo.phases == info.phases);
            CHECK(hinfo.exact == info.exact && hinfo.table_bytes == info.table_bytes);
            CHECK(hinfo.state_bytes == info.state_bytes);
            CHECK(hinfo.passband_hz == info.passband_hz && hinfo.stopband_hz == info.stopband_hz);
        }
        edgeser_resampler_destroy(h);
    }
}

static void test_init_errors(void)
{
    static const uint32_t bad_rates[] = {0, 1, 999, 384001, 1000000, UINT32_MAX};
    unsigned char *mem = pool_aligned();
    edgeser_resampler *r;
    size_t i, bytes;

    for (i = 0; i < COUNT_OF(bad_rates); ++i) {
        bytes = 7;
        r = NULL;
        CHECK_STATUS(edgeser_resampler_size(bad_rates[i], &bytes), EDGESER_ERR_RATE);
        CHECK(bytes == 7);
        CHECK_STATUS(edgeser_resampler_init(mem, POOL_BYTES, bad_rates[i], &r), EDGESER_ERR_RATE);
        CHECK_STATUS(edgeser_resampler_create(bad_rates[i], &r), EDGESER_ERR_RATE);
        CHECK(r == NULL);
    }
    /* The range ends are accepted. */
    CHECK_STATUS(edgeser_resampler_size(EDGESER_MIN_RATE_HZ, &bytes), EDGESER_OK);
    CHECK_STATUS(edgeser_resampler_size(EDGESER_MAX_RATE_HZ, &bytes), EDGESER_OK);

    /* destroy(NULL) is a no-op. */
    edgeser_resampler_destroy(NULL);

    /* NULL object / NULL out-pointers on every entry point. */
    {
        edgeser_resampler_info info;
        float x[4] = {0.1f, 0.2f, 0.3f, 0.4f};
        float out[8];
        size_t n = 0;
        if (!CHECK_STATUS(edgeser_resampler_create(48000, &r), EDGESER_OK)) {
            return;
        }
        CHECK_STATUS(edgeser_resampler_info_get(NULL, &info), EDGESER_ERR_NULL);
        CHECK_STATUS(edgeser_resampler_info_get(r, NULL), EDGESER_ERR_NULL);
        CHECK_STATUS(edgeser_resampler_reset(NULL), EDGESER_ERR_NULL);
        CHECK_STATUS(edgeser_resampler_max_output(NULL, 1, &n), EDGESER_ERR_NULL);
        CHECK_STATUS(edgeser_resampler_max_output(r, 1, NULL), EDGESER_ERR_NULL);
        CHECK_STATUS(edgeser_resampler_flush_output(NULL, &n), EDGESER_ERR_NULL);
        CHECK_STATUS(edgeser_resampler_flush_output(r, NULL), EDGESER_ERR_NULL);
        CHECK_STATUS(edgeser_resampler_process(NULL, x, 4, out, 8, &n), EDGESER_ERR_NULL);
        CHECK_STATUS(edgeser_resampler_process(r, x, 4, out, 8, NULL), EDGESER_ERR_NULL);
        CHECK_STATUS(edgeser_resampler_process(r, NULL, 4, out, 8, &n), EDGESER_ERR_NULL);
        CHECK_STATUS(edgeser_resampler_flush(NULL, out, 8, &n), EDGESER_ERR_NULL);
        CHECK_STATUS(edgeser_resampler_flush(r, out, 8, NULL), EDGESER_ERR_NULL);
        /* Zero samples: in and out may be NULL. */
        n = 99;
        CHECK_STATUS(edgeser_resampler_process(r, NULL, 0, NULL, 0, &n), EDGESER_OK);
        CHECK(n == 0);
        /* Nothing consumed so far: flush has nothing to give, out may be NULL. */
        CHECK_STATUS(edgeser_resampler_flush_output(r, &n), EDGESER_OK);
        CHECK(n == 0);
        n = 99;
        CHECK_STATUS(edgeser_resampler_flush(r, NULL, 0, &n), EDGESER_OK);
        CHECK(n == 0);
        edgeser_resampler_destroy(r);
    }
}

/* ---------------------------------------------------------------- counts / streaming --- */

/* For n samples of noise: the one-shot total is ceil(n * 16000 / rate), and every chunking
 * gives the same samples bit for bit, with each call returning exactly its prediction. */
static void check_lengths_and_chunkings(edgeser_resampler *r, uint32_t rate, size_t n,
                                        int all_chunkings)
{
    float *x = alloc_floats(n);
    size_t expect = expected_total(n, rate);
    float *ref = alloc_floats(expect + 64);
    float *out = alloc_floats(expect);
    size_t c, total;
    unsigned long bad = 0;

    fill_noise(x, n, (uint32_t)(rate + n));
    total = one_shot(r, x, n, ref, expect + 64);
    if (!CHECK(total == expect)) {
        fprintf(stderr, "  rate %u n %u: one shot gave %u samples, expected %u\n", (unsigned)rate,
                (unsigned)n, (unsigned)total, (unsigned)expect);
        goto done;
    }
    for (c = 0; c < COUNT_OF(kChunkings); ++c) {
        const chunking *ch = &kChunkings[c];
        size_t len;
        unsigned long bad_here = 0;
        /* One-sample calls cost per call: only for short signals at high rates. */
        if (ch->sizes == kChunk1 && n > (rate > 48000 ? 6000u : 20000u)) {
            continue;
        }
        if (!all_chunkings && ch->sizes != NULL && ch->sizes != kChunkPrimes) {
            continue;
        }
        if (!CHECK_STATUS(edgeser_resampler_reset(r), EDGESER_OK)) {
            continue;
        }
        len = run_stream(r, x, n, ch->sizes, ch->count, out, expect, 0, &bad_here);
        bad += bad_here;
        if (len != expect || (expect > 0 && memcmp(out, ref, expect * sizeof(float)) != 0)) {
            ++bad;
            fprintf(stderr, "  rate %u n %u chunking %s: %u samples (expected %u)%s\n",
                    (unsigned)rate, (unsigned)n, ch->name, (unsigned)len, (unsigned)expect,
                    len == expect ? ", values differ" : "");
        }
    }
    CHECK(bad == 0);
done:
    free(x);
    free(ref);
    free(out);
}

static void test_stream_rate(uint32_t rate)
{
    edgeser_resampler *r = NULL;
    size_t taps, i;
    size_t lengths[12];
    size_t n_lengths = 0;

    if (!CHECK_STATUS(edgeser_resampler_create(rate, &r), EDGESER_OK)) {
        return;
    }
    taps = taps_of(r);
    lengths[n_lengths++] = 0;
    lengths[n_lengths++] = 1;
    lengths[n_lengths++] = 2;
    lengths[n_lengths++] = taps - 1;
    lengths[n_lengths++] = taps;
    lengths[n_lengths++] = taps + 1;
    lengths[n_lengths++] = 997;
    lengths[n_lengths++] = 7919;
    lengths[n_lengths++] = 4096 - taps / 2 + 1; /* the first pass ends exactly on a stage */
    lengths[n_lengths++] = rate / 2 + 13;       /* half a second and a bit */
    for (i = 0; i < n_lengths; ++i) {
        check_lengths_and_chunkings(r, rate, lengths[i], 1);
    }
    /* A few seconds: counts, one shot against prime-sized chunks. */
    check_lengths_and_chunkings(r, rate, (size_t)rate * (rate > 96000 ? 1u : 3u) + 101u, 0);
    edgeser_resampler_destroy(r);
}

/* Many lengths around the first output boundaries (short inputs, about one and two filter
 * lengths) plus a spread in between: exact totals, and every call returns its prediction. */
static void test_counts_sweep(uint32_t rate)
{
    edgeser_resampler *r = NULL;
    size_t taps, n, lim, total = 0;
    unsigned long bad = 0;
    static const size_t sizes[] = {113, 1, 4096, 2};
    float *x, *out;

    if (!CHECK_STATUS(edgeser_resampler_create(rate, &r), EDGESER_OK)) {
        return;
    }
    taps = taps_of(r);
    lim = 2 * taps + 40;
    x = alloc_floats(lim);
    out = alloc_floats(expected_total(lim, rate));
    fill_noise(x, lim, 7);
    for (n = 0; n <= lim; ++n) {
        size_t len;
        int near_edge = n <= 64 || (n + 20 >= taps && n <= taps + 20) ||
                        (n + 20 >= 2 * taps && n <= 2 * taps + 20) || n % (taps / 16 + 1) == 0;
        if (!near_edge) {
            continue;
        }
        if (edgeser_resampler_reset(r) != EDGESER_OK) {
            ++bad;
            break;
        }
        ++total;
        len = run_stream(r, x, n, sizes, COUNT_OF(sizes), out, expected_total(n, rate), 0, &bad);
        if (len != expected_total(n, rate)) {
            ++bad;
            fprintf(stderr, "  rate %u n %u: %u samples, expected %u\n", (unsigned)rate,
                    (unsigned)n, (unsigned)len, (unsigned)expected_total(n, rate));
        }
    }
    CHECK(total > (lim < 100 ? lim : 100));
    CHECK(bad == 0);
    free(x);
    free(out);
    edgeser_resampler_destroy(r);
}

/* ---------------------------------------------------------------- capacity / state ----- */

static void test_capacity_and_state(uint32_t rate)
{
    edgeser_resampler *r = NULL;
    size_t n = (size_t)rate / 4 + 4099, expect = expected_total(n, rate), total, got = 0;
    float *x = alloc_floats(n), *ref = alloc_floats(expect), *out = alloc_floats(expect);
    unsigned long bad = 0;
    float dummy[4];

    fill_noise(x, n, rate ^ 0x5a5au);
    if (!CHECK_STATUS(edgeser_resampler_create(rate, &r), EDGESER_OK)) {
        goto done;
    }
    /* Reference: one shot with exact capacities. */
    total = run_stream(r, x, n, NULL, 0, ref, expect, 0, &bad);
    CHECK(total == expect);

    /* After flush: process and flush refuse until reset. */
    CHECK_STATUS(edgeser_resampler_process(r, x, 1, dummy, 4, &got), EDGESER_ERR_STATE);
    CHECK_STATUS(edgeser_resampler_process(r, x, 0, dummy, 4, &got), EDGESER_ERR_STATE);
    CHECK_STATUS(edgeser_resampler_flush(r, dummy, 4, &got), EDGESER_ERR_STATE);

    /* Reset: the same input gives the same output, here with every call probed first with one
     * sample too little capacity (which must change nothing). */
    CHECK_STATUS(edgeser_resampler_reset(r), EDGESER_OK);
    total = run_stream(r, x, n, kChunkMixed, COUNT_OF(kChunkMixed), out, expect, 1, &bad);
    CHECK(total == expect);
    CHECK(total == expect && memcmp(out, ref, expect * sizeof(float)) == 0);
    CHECK_STATUS(edgeser_resampler_flush(r, dummy, 4, &got), EDGESER_ERR_STATE);

    /* Probed with prime-sized chunks too. */
    CHECK_STATUS(edgeser_resampler_reset(r), EDGESER_OK);
    total = run_stream(r, x, n, kChunkPrimes, COUNT_OF(kChunkPrimes), out, expect, 1, &bad);
    CHECK(total == expect && memcmp(out, ref, expect * sizeof(float)) == 0);

    /* Reset in the middle of a stream (not flushed) also starts over. */
    CHECK_STATUS(edgeser_resampler_reset(r), EDGESER_OK);
    CHECK_STATUS(edgeser_resampler_process(r, x + 5, n - 5, out, expect, &got), EDGESER_OK);
    CHECK_STATUS(edgeser_resampler_reset(r), EDGESER_OK);
    total = run_stream(r, x, n, kChunk4097, 1, out, expect, 0, &bad);
    CHECK(total == expect && memcmp(out, ref, expect * sizeof(float)) == 0);
    CHECK(bad == 0);

done:
    edgeser_resampler_destroy(r);
    free(x);
    free(ref);
    free(out);
}

/* The same stream in caller memory (static pool) and from create: bit-identical. */
static void test_caller_memory_stream(uint32_t rate)
{
    unsigned char *mem = pool_aligned();
    size_t bytes = 0, n = 3001, expect = expected_total(n, rate), a, b;
    edgeser_resampler *r = NULL, *h = NULL;
    float *x = alloc_floats(n), *o1 = alloc_floats(expect), *o2 = alloc_floats(expect);
    unsigned long bad = 0;

    fill_noise(x, n, 99);
    memset(mem, 0xA5, POOL_BYTES); /* garbage must not matter */
    if (CHECK_STATUS(edgeser_resampler_size(rate, &bytes), EDGESER_OK) &&
        CHECK_STATUS(edgeser_resampler_init(mem, bytes, rate, &r), EDGESER_OK) &&
        CHECK_STATUS(edgeser_resampler_create(rate, &h), EDGESER_OK)) {
        a = run_stream(r, x, n, kChunkPrimes, COUNT_OF(kChunkPrimes), o1, expect, 0, &bad);
        b = run_stream(h, x, n, kChunk4096, 1, o2, expect, 0, &bad);
        CHECK(a == expect && b == expect && memcmp(o1, o2, expect * sizeof(float)) == 0);
        CHECK(bad == 0);
    }
    edgeser_resampler_destroy(r);
    edgeser_resampler_destroy(h);
    free(x);
    free(o1);
    free(o2);
}

/* ---------------------------------------------------------------- signal checks -------- */

static void test_identity(void)
{
    edgeser_resampler *r = NULL;
    size_t n = 12345, total, i, bad = 0;
    float *x = alloc_floats(n), *out = alloc_floats(n);
    unsigned long sbad = 0;

    fill_noise(x, n, 16000);
    x[10] = 0.0f;
    x[11] = 1.0f;
    x[12] = -1.0f;
    x[13] = 1e-30f;
    x[14] = 3.0e38f; /* large but finite: must survive unchanged */
    x[15] = -3.0e38f;
    if (!CHECK_STATUS(edgeser_resampler_create(16000, &r), EDGESER_OK)) {
        goto done;
    }
    total = one_shot(r, x, n, out, n);
    if (CHECK(total == n)) {
        CHECK(memcmp(out, x, n * sizeof(float)) == 0);
        for (i = 0; i < n; ++i) {
            if (out[i] != x[i]) {
                ++bad;
            }
        }
        CHECK(bad == 0);
    }
    CHECK_STATUS(edgeser_resampler_reset(r), EDGESER_OK);
    total = run_stream(r, x, n, kChunkPrimes, COUNT_OF(kChunkPrimes), out, n, 0, &sbad);
    CHECK(total == n && memcmp(out, x, n * sizeof(float)) == 0);
    CHECK(sbad == 0);
done:
    edgeser_resampler_destroy(r);
    free(x);
    free(out);
}

/* A 440 Hz sine keeps its phase: output j equals sin(2 pi 440 j / 16000). */
static void test_timing(uint32_t rate, double tol)
{
    edgeser_resampler *r = NULL;
    size_t n = rate, expect = expected_total(n, rate), total, i, j0, j1;
    float *x = alloc_floats(n), *out = alloc_floats(expect);
    double worst = 0.0;

    for (i = 0; i < n; ++i) {
        /* Phase reduced in double: 440 * i / rate cycles, fractional part only. */
        double cycles = fmod(440.0 * (double)i, (double)rate) / (double)rate;
        x[i] = (float)sin(2.0 * kPi * cycles);
    }
    if (!CHECK_STATUS(edgeser_resampler_create(rate, &r), EDGESER_OK)) {
        goto done;
    }
    total = one_shot(r, x, n, out, expect);
    if (CHECK(total == expect)) {
        j0 = EDGESER_TARGET_RATE_HZ / 10;
        j1 = expect - EDGESER_TARGET_RATE_HZ / 10;
        for (i = j0; i < j1; ++i) {
            double cycles = fmod(440.0 * (double)i, 16000.0) / 16000.0;
            double d = fabs((double)out[i] - sin(2.0 * kPi * cycles));
            if (!(d <= worst)) {
                worst = d;
            }
        }
        if (!CHECK(worst <= tol)) {
            fprintf(stderr, "  timing at %u Hz: worst error %.3g\n", (unsigned)rate, worst);
        }
    }
done:
    edgeser_resampler_destroy(r);
    free(x);
    free(out);
}

/* A constant 0.5 comes out as 0.5 wherever the filter support lies inside the signal. */
static void test_dc(uint32_t rate)
{
    edgeser_resampler *r = NULL;
    size_t n = rate / 2 + 17, expect = expected_total(n, rate), total, i;
    float *x = alloc_floats(n), *out = alloc_floats(expect);
    double worst = 0.0, half;
    size_t checked = 0;

    for (i = 0; i < n; ++i) {
        x[i] = 0.5f;
    }
    if (!CHECK_STATUS(edgeser_resampler_create(rate, &r), EDGESER_OK)) {
        goto done;
    }
    half = (double)taps_of(r) / 2.0;
    total = one_shot(r, x, n, out, expect);
    if (CHECK(total == expect)) {
        for (i = 0; i < expect; ++i) {
            double t = (double)i * (double)rate / 16000.0; /* in input samples */
            if (t < half + 1.0 || t > (double)n - half - 2.0) {
                continue;
            }
            ++checked;
            if (!(fabs((double)out[i] - 0.5) <= worst)) {
                worst = fabs((double)out[i] - 0.5);
            }
        }
        CHECK(checked > expect / 2);
        if (!CHECK(worst <= 1e-4)) {
            fprintf(stderr, "  DC at %u Hz: worst error %.3g\n", (unsigned)rate, worst);
        }
    }
done:
    edgeser_resampler_destroy(r);
    free(x);
    free(out);
}

/* NaN in gives NaN out, never a crash, and only outputs whose filter support holds the NaN
 * are affected: the rest are bit-identical to a NaN-free run. Inf likewise gives non-finite
 * output only nearby. */
static void test_nonfinite(uint32_t rate)
{
    edgeser_resampler *r = NULL;
    size_t n = 3 * (size_t)rate / 10 + 5, expect = expected_total(n, rate), i, k = n / 2;
    float *x = alloc_floats(n), *ref = alloc_floats(expect), *out = alloc_floats(expect);
    double half;
    int pass;
    unsigned long bad = 0;

    fill_noise(x, n, 4242);
    if (!CHECK_STATUS(edgeser_resampler_create(rate, &r), EDGESER_OK)) {
        goto done;
    }
    half = (double)taps_of(r) / 2.0;
    if (!CHECK(one_shot(r, x, n, ref, expect) == expect)) {
        goto done;
    }
    for (pass = 0; pass < 2; ++pass) {
        float saved = x[k];
        size_t nearest = (size_t)floor((double)k * 16000.0 / (double)rate + 0.5);
        x[k] = pass == 0 ? (float)NAN : (float)INFINITY;
        if (!CHECK(one_shot(r, x, n, out, expect) == expect)) {
            x[k] = saved;
            break;
        }
        x[k] = saved;
        for (i = 0; i < expect; ++i) {
            double t = (double)i * (double)rate / 16000.0;
            if (fabs(t - (double)k) > half + 1.0 && memcmp(&out[i], &ref[i], sizeof(float)) != 0) {
                ++bad;
            }
        }
        if (nearest < expect) {
            if (pass == 0) {
                CHECK(out[nearest] != out[nearest]); /* NaN */
            } else {
                CHECK(!(fabs((double)out[nearest]) <= 1e30)); /* Inf or NaN */
            }
        }
    }
    if (!CHECK(bad == 0)) {
        fprintf(stderr, "  non-finite input at %u Hz spread beyond the filter support\n",
                (unsigned)rate);
    }
done:
    edgeser_resampler_destroy(r);
    free(x);
    free(ref);
    free(out);
}

/* NaNs of different signs and payloads near each other: every output that sees one is NaN,
 * and streamed output still equals one-shot output bit for bit (the fuzz harness found a
 * chunking where two NaN operands came out in another order). */
static void test_nan_bits(uint32_t rate)
{
    edgeser_resampler *r = NULL;
    size_t n = 4000u, expect = expected_total(n, rate), i, k;
    float *x = alloc_floats(n), *ref = alloc_floats(expect), *out = alloc_floats(expect);
    static const uint32_t kNans[] = {0x7fc00001u, 0xffc12345u, 0x7fa00000u, 0xff800001u};
    unsigned long bad = 0;

    fill_noise(x, n, 99);
    for (i = 0; i < COUNT_OF(kNans); ++i) {
        memcpy(&x[1000u + 37u * i], &kNans[i], sizeof(float)); /* quiet and signalling */
    }
    if (!CHECK_STATUS(edgeser_resampler_create(rate, &r), EDGESER_OK) ||
        !CHECK(one_shot(r, x, n, ref, expect) == expect)) {
        goto done;
    }
    for (k = 0; k < COUNT_OF(kChunkings); ++k) {
        size_t total;
        CHECK_STATUS(edgeser_resampler_reset(r), EDGESER_OK);
        total = run_stream(r, x, n, kChunkings[k].sizes, kChunkings[k].count, out, expect, 0, &bad);
        if (!CHECK(total == expect && memcmp(out, ref, expect * sizeof(float)) == 0)) {
            fprintf(stderr, "  NaN bits differ at %u Hz, chunking %s\n", (unsigned)rate,
                    kChunkings[k].name);
        }
    }
    CHECK(bad == 0);
done:
    edgeser_resampler_destroy(r);
    free(x);
    free(ref);
    free(out);
}

/* ---------------------------------------------------------------- overflow ------------- */

static void test_overflow(uint32_t rate)
{
    edgeser_resampler *r = NULL;
    size_t n = 0, got = 0;
    float x[512];
    float *out = alloc_floats(expected_total(512, rate)); /* 8192 at 1000 Hz */

    if (!CHECK_STATUS(edgeser_resampler_create(rate, &r), EDGESER_OK)) {
        free(out);
        return;
    }
    fill_noise(x, 512, 3);
    n = 12345;
    CHECK_STATUS(edgeser_resampler_max_output(r, SIZE_MAX, &n), EDGESER_ERR_OVERFLOW);
    CHECK(n == 12345);
    CHECK_STATUS(edgeser_resampler_process(r, x, SIZE_MAX, out, expected_total(512, rate), &got),
                 EDGESER_ERR_OVERFLOW);
    /* After some input too, and the state is still fine afterwards. */
    CHECK_STATUS(edgeser_resampler_process(r, x, 512, out, expected_total(512, rate), &got),
                 EDGESER_OK);
    CHECK_STATUS(edgeser_resampler_max_output(r, SIZE_MAX, &n), EDGESER_ERR_OVERFLOW);
    CHECK_STATUS(edgeser_resampler_max_output(r, SIZE_MAX - 511, &n), EDGESER_ERR_OVERFLOW);
    /* A large n_in: either refused as overflow or a count near n * 16000 / rate, never junk. */
    {
        size_t big = SIZE_MAX / 64;
        edgeser_status st = edgeser_resampler_max_output(r, big, &n);
        CHECK(st == EDGESER_OK || st == EDGESER_ERR_OVERFLOW);
        if (st == EDGESER_OK) {
            double approx = (double)big * 16000.0 / (double)rate;
            CHECK(fabs((double)n - approx) <= 1e-9 * approx + 1e4);
        }
    }
    CHECK_STATUS(edgeser_resampler_max_output(r, 0, &n), EDGESER_OK);
    CHECK_STATUS(edgeser_resampler_flush_output(r, &n), EDGESER_OK);
    CHECK(n == expected_total(512, rate) - got);
    edgeser_resampler_destroy(r);
    free(out);
}

/* ---------------------------------------------------------------- driver --------------- */

static void test_all_rates(void)
{
    size_t i;
    uint32_t rates[COUNT_OF(kExactRates) + COUNT_OF(kOtherRates)];
    size_t n_rates = 0;

    for (i = 0; i < COUNT_OF(kExactRates); ++i) {
        rates[n_rates++] = kExactRates[i];
    }
    for (i = 0; i < COUNT_OF(kOtherRates); ++i) {
        rates[n_rates++] = kOtherRates[i];
    }
    for (i = 0; i < n_rates; ++i) {
        uint32_t rate = rates[i];
        test_init_rate(rate, !is_approx_rate(rate));
        test_overflow(rate);
        test_counts_sweep(rate);
        test_stream_rate(rate);
        test_capacity_and_state(rate);
        test_caller_memory_stream(rate);
        test_dc(rate);
        test_nonfinite(rate);
        test_nan_bits(rate);
        if (rate != 44100 && rate != 48000) { /* those two run from main */
            test_timing(rate, 2e-5);
        }
    }
}

int main(void)
{
    test_init_errors();
    test_identity();
    test_timing(44100, 2e-5);
    test_timing(48000, 2e-5);
    test_all_rates();
    return check_report("test_resampler");
}
