/* Tests for the streaming windower: configuration errors, caller memory (size + init, alignment,
 * too little memory, a static arena) and create/destroy; windows equal to the one-shot path
 * (decode, mixdown, resample the whole signal, edgeser_window_count/bounds, then
 * edgeser_rms_dbfs and edgeser_normalize per window) bit for bit, for every chunking, every
 * format, several rates and window/hop settings, pulling after each push or only when the
 * buffer is full; the tail rule at every boundary; the silence flag and raw windows; bounded
 * intake; errors that leave the state unchanged; finish, reset. Plain C99 + libm. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgeser/frontend.h"
#include "check.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static void *xmalloc(size_t n)
{
    void *p = malloc(n > 0u ? n : 1u);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s;
}

/* A signal with speech-like level changes: noise bursts, a tone, digital silence. */
static double sample_value(size_t i, uint32_t rate, uint32_t *seed)
{
    double t = (double)i / (double)rate;
    double noise = (double)(lcg(seed) >> 8) / 16777216.0 - 0.5;
    int part = (int)(t * 4.0) % 4;
    if (part == 3) {
        return 0.0;
    }
    if (part == 2) {
        return 0.4 * sin(2.0 * 3.14159265358979 * 440.0 * t);
    }
    return noise * (part == 0 ? 0.8 : 0.05);
}

/* Interleaved PCM bytes of `frames` frames: channel c is the signal scaled by (c+1)/channels. */
static unsigned char *make_pcm(size_t frames, uint32_t channels, edgeser_pcm_format format,
                               uint32_t rate, uint32_t seed, size_t *n_bytes)
{
    size_t bps = edgeser_pcm_bytes_per_sample(format), i;
    uint32_t c;
    unsigned char *pcm = (unsigned char *)xmalloc(frames * channels * bps);
    for (i = 0; i < frames; ++i) {
        double v = sample_value(i, rate, &seed);
        for (c = 0; c < channels; ++c) {
            double x = v * (double)(c + 1u) / (double)channels;
            unsigned char *b = pcm + (i * channels + c) * bps;
            switch (format) {
            case EDGESER_PCM_U8: {
                long q = lround(x * 127.0) + 128;
                b[0] = (unsigned char)q;
                break;
            }
            case EDGESER_PCM_S16: {
                long q = lround(x * 32767.0);
                uint32_t u = (uint32_t)q;
                b[0] = (unsigned char)(u & 0xffu);
                b[1] = (unsigned char)((u >> 8) & 0xffu);
                break;
            }
            case EDGESER_PCM_S24: {
                long q = lround(x * 8388607.0);
                uint32_t u = (uint32_t)q;
                b[0] = (unsigned char)(u & 0xffu);
                b[1] = (unsigned char)((u >> 8) & 0xffu);
                b[2] = (unsigned char)((u >> 16) & 0xffu);
                break;
            }
            case EDGESER_PCM_S32: {
                long long q = llround(x * 2147483647.0);
                uint32_t u = (uint32_t)q;
                b[0] = (unsigned char)(u & 0xffu);
                b[1] = (unsigned char)((u >> 8) & 0xffu);
                b[2] = (unsigned char)((u >> 16) & 0xffu);
                b[3] = (unsigned char)((u >> 24) & 0xffu);
                break;
            }
            case EDGESER_PCM_F32: {
                float f = (float)x;
                memcpy(b, &f, 4);
                break;
            }
            case EDGESER_PCM_F64:
                memcpy(b, &x, 8);
                break;
            }
        }
    }
    *n_bytes = frames * channels * bps;
    return pcm;
}

typedef struct window_list {
    size_t count;
    edgeser_window *info; /* count entries */
    float *samples;       /* count * window floats */
} window_list;

static void list_free(window_list *l)
{
    free(l->info);
    free(l->samples);
    memset(l, 0, sizeof(*l));
}

/* The one-shot path the windower must reproduce. */
static window_list one_shot(const unsigned char *pcm, size_t frames,
                            const edgeser_windower_config *cfg)
{
    window_list l = {0, NULL, NULL};
    float *x = (float *)xmalloc(frames * cfg->channels * sizeof(float));
    edgeser_resampler *r = NULL;
    size_t n_out = 0, n_flush = 0, n_cap, k, count = 0;
    float *y;

    CHECK_STATUS(edgeser_pcm_to_float(pcm, frames, cfg->channels, cfg->format, x), EDGESER_OK);
    CHECK_STATUS(edgeser_mixdown(x, frames, cfg->channels, x), EDGESER_OK);
    CHECK_STATUS(edgeser_resampler_create(cfg->rate_in_hz, &r), EDGESER_OK);
    n_cap = (size_t)(((uint64_t)frames * 16000u + cfg->rate_in_hz - 1u) / cfg->rate_in_hz);
    y = (float *)xmalloc(n_cap * sizeof(float));
    CHECK_STATUS(edgeser_resampler_process(r, x, frames, y, n_cap, &n_out), EDGESER_OK);
    CHECK_STATUS(edgeser_resampler_flush(r, y + n_out, n_cap - n_out, &n_flush), EDGESER_OK);
    CHECK(n_out + n_flush == n_cap);
    edgeser_resampler_destroy(r);

    CHECK_STATUS(edgeser_window_count(n_cap, cfg->window, cfg->hop, cfg->min_len, &count),
                 EDGESER_OK);
    l.count = count;
    l.info = (edgeser_window *)xmalloc(count * sizeof(edgeser_window));
    l.samples = (float *)xmalloc(count * cfg->window * sizeof(float));
    for (k = 0; k < count; ++k) {
        size_t start = 0, len = 0;
        edgeser_window *w = &l.info[k];
        float *out = l.samples + k * cfg->window;
        CHECK_STATUS(edgeser_window_bounds(n_cap, cfg->window, cfg->hop, cfg->min_len, k, &start,
                                           &len), EDGESER_OK);
        memset(w, 0, sizeof(*w));
        w->index = k;
        w->start = start;
        w->stop = start + len;
        w->length = len;
        CHECK_STATUS(edgeser_rms_dbfs(y + start, len, &w->level_dbfs), EDGESER_OK);
        w->silent = !(w->level_dbfs >= cfg->silence_dbfs);
        w->is_final = len < cfg->window;
        if (cfg->normalization == EDGESER_NORMALIZE_PER_WINDOW) {
            CHECK_STATUS(edgeser_normalize(y + start, len, out), EDGESER_OK);
        } else {
            memcpy(out, y + start, len * sizeof(float));
        }
    }
    free(y);
    free(x);
    return l;
}

/* Pull every ready window into `l` (capacity `max` windows). */
static void pull_all(edgeser_windower *w, const edgeser_windower_config *cfg, window_list *l,
                     size_t max, float *scratch)
{
    for (;;) {
        edgeser_window info;
        int has = -1;
        CHECK_STATUS(edgeser_windower_next(w, scratch, cfg->window, &info, &has), EDGESER_OK);
        if (has != 1) {
            CHECK(has == 0);
            return;
        }
        if (l->count >= max) {
            CHECK(!"more windows than the one-shot path");
            return;
        }
        l->info[l->count] = info;
        memcpy(l->samples + l->count * cfg->window, scratch, info.length * sizeof(float));
        l->count += 1u;
    }
}

/* Stream `pcm` through `w` in chunks (sizes cycled; 0 entries are empty pushes); with
 * `lazy`, windows are pulled only when a push cannot take everything. */
static window_list streamed(edgeser_windower *w, const edgeser_windower_config *cfg,
                            const unsigned char *pcm, size_t frames, const size_t *sizes,
                            size_t n_sizes, int lazy, size_t max)
{
    window_list l = {0, NULL, NULL};
    size_t frame_bytes = edgeser_pcm_bytes_per_sample(cfg->format) * cfg->channels;
    size_t done = 0, k = 0, guard = 0;
    float *scratch = (float *)xmalloc(cfg->window * sizeof(float));
    uint64_t total = 0;

    l.info = (edgeser_window *)xmalloc((max + 1u) * sizeof(edgeser_window));
    l.samples = (float *)xmalloc((max + 1u) * cfg->window * sizeof(float));
    while (done < frames && guard++ < 100000000u) {
        size_t step = sizes == NULL ? frames : sizes[k++ % n_sizes];
        size_t taken = 0;
        if (step > frames - done) {
            step = frames - done;
        }
        CHECK_STATUS(edgeser_windower_push(w, pcm + done * frame_bytes, step, &taken),
                     EDGESER_OK);
        CHECK(taken <= step);
        done += taken;
        if (!lazy || taken < step) {
            pull_all(w, cfg, &l, max, scratch);
        }
        if (taken < step) {
            size_t again = 0;
            /* After pulling, the rest of this chunk goes in. */
            CHECK_STATUS(edgeser_windower_push(w, pcm + done * frame_bytes, step - taken, &again),
                         EDGESER_OK);
            done += again;
            if (again < step - taken) {
                pull_all(w, cfg, &l, max, scratch);
            }
        }
    }
    CHECK_STATUS(edgeser_windower_finish(w), EDGESER_OK);
    pull_all(w, cfg, &l, max, scratch);
    CHECK_STATUS(edgeser_windower_samples(w, &total), EDGESER_OK);
    CHECK(total == ((uint64_t)frames * 16000u + cfg->rate_in_hz - 1u) / cfg->rate_in_hz);
    free(scratch);
    return l;
}

static unsigned long g_mismatch = 0;

static void compare(const window_list *got, const window_list *want,
                    const edgeser_windower_config *cfg, const char *what)
{
    size_t k;
    int ok = got->count == want->count;
    for (k = 0; ok && k < want->count; ++k) {
        const edgeser_window *a = &got->info[k], *b = &want->info[k];
        ok = a->index == b->index && a->start == b->start && a->stop == b->stop &&
             a->length == b->length && memcmp(&a->level_dbfs, &b->level_dbfs, sizeof(float)) == 0 &&
             a->silent == b->silent &&
             memcmp(got->samples + k * cfg->window, want->samples + k * cfg->window,
                    b->length * sizeof(float)) == 0;
        /* is_final: only the short window after finish. */
        ok = ok && a->is_final == (k + 1u == want->count && a->length < cfg->window);
    }
    if (!CHECK(ok)) {
        ++g_mismatch;
        fprintf(stderr, "  windows differ: %s (rate %u, ch %u, fmt %d, window %zu, hop %zu; "
                        "%zu windows, expected %zu)\n", what, (unsigned)cfg->rate_in_hz,
                (unsigned)cfg->channels, (int)cfg->format, cfg->window, cfg->hop, got->count,
                want->count);
    }
}

/* ---------------------------------------------------------------- tests ---------------- */

static edgeser_windower_config base_config(void)
{
    edgeser_windower_config c;
    memset(&c, 0, sizeof(c));
    c.rate_in_hz = 48000u;
    c.channels = 2u;
    c.format = EDGESER_PCM_S16;
    c.window = 8000u;
    c.hop = 2000u;
    c.min_len = EDGESER_MIN_WINDOW_SAMPLES;
    c.silence_dbfs = -60.0f;
    c.normalization = EDGESER_NORMALIZE_PER_WINDOW;
    return c;
}

static void test_config_errors(void)
{
    edgeser_windower_config c = base_config();
    edgeser_windower *w = NULL;
    size_t bytes = 0;

    CHECK_STATUS(edgeser_windower_size(NULL, &bytes), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_windower_size(&c, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_windower_create(&c, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_windower_create(NULL, &w), EDGESER_ERR_NULL);
    c.rate_in_hz = 999u;
    CHECK_STATUS(edgeser_windower_size(&c, &bytes), EDGESER_ERR_RATE);
    c = base_config();
    c.channels = 0u;
    CHECK_STATUS(edgeser_windower_size(&c, &bytes), EDGESER_ERR_CHANNELS);
    c = base_config();
    c.format = (edgeser_pcm_format)9;
    CHECK_STATUS(edgeser_windower_size(&c, &bytes), EDGESER_ERR_FORMAT);
    c = base_config();
    c.window = 0u;
    CHECK_STATUS(edgeser_windower_size(&c, &bytes), EDGESER_ERR_ARGUMENT);
    c = base_config();
    c.hop = 0u;
    CHECK_STATUS(edgeser_windower_size(&c, &bytes), EDGESER_ERR_ARGUMENT);
    c = base_config();
    c.hop = c.window + 1u;
    CHECK_STATUS(edgeser_windower_create(&c, &w), EDGESER_ERR_ARGUMENT);
    c = base_config();
    c.normalization = (edgeser_normalization)2;
    CHECK_STATUS(edgeser_windower_size(&c, &bytes), EDGESER_ERR_ARGUMENT);
    c = base_config();
    c.silence_dbfs = (float)NAN;
    CHECK_STATUS(edgeser_windower_size(&c, &bytes), EDGESER_ERR_ARGUMENT);
    c = base_config();
    c.window = SIZE_MAX - 3u;
    c.hop = 1u;
    CHECK_STATUS(edgeser_windower_size(&c, &bytes), EDGESER_ERR_OVERFLOW);
    c = base_config();
    c.channels = 0xffffffffu;
    c.format = EDGESER_PCM_F64;
    bytes = 0;
    /* Absurd channel counts are sized honestly (or refused as overflow on 32-bit targets). */
    {
        edgeser_status st = edgeser_windower_size(&c, &bytes);
        CHECK(st == EDGESER_OK || st == EDGESER_ERR_OVERFLOW);
        if (st == EDGESER_OK) {
            CHECK(bytes > (size_t)0xffffffffu);
        }
    }
    CHECK(w == NULL);
    edgeser_windower_destroy(NULL); /* no-op */
}

/* Static memory as firmware would reserve it; the union aligns it for any type. */
static union {
    long double align_ld;
    uint64_t align_u64;
    unsigned char bytes[1u << 20];
} g_arena_u;
#define g_arena (g_arena_u.bytes)

static void test_caller_memory(void)
{
    edgeser_windower_config c = base_config();
    edgeser_windower *w = NULL, *h = NULL;
    size_t bytes = 0, frames = 48000u * 3u + 777u, n_bytes;
    unsigned char *pcm = make_pcm(frames, c.channels, c.format, c.rate_in_hz, 7u, &n_bytes);
    static const size_t sizes[] = {480};
    window_list a, b, want;
    unsigned char *heap;

    CHECK_STATUS(edgeser_windower_size(&c, &bytes), EDGESER_OK);
    CHECK(bytes > c.window * sizeof(float) && bytes <= sizeof(g_arena));
    CHECK_STATUS(edgeser_windower_init(NULL, bytes, &c, &w), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_windower_init(g_arena, bytes, NULL, &w), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_windower_init(g_arena, bytes, &c, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_windower_init(g_arena + 4, bytes, &c, &w), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_windower_init(g_arena, bytes - 1u, &c, &w), EDGESER_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(edgeser_windower_init(g_arena, 16u, &c, &w), EDGESER_ERR_BUFFER_TOO_SMALL);
    CHECK(w == NULL);
    CHECK_STATUS(edgeser_windower_init(g_arena, bytes, &c, &w), EDGESER_OK);
    CHECK((unsigned char *)w == g_arena);

    /* Exactly `bytes` of heap memory: ASan sees any access past it. */
    heap = (unsigned char *)xmalloc(bytes);
    CHECK_STATUS(edgeser_windower_init(heap, bytes, &c, &h), EDGESER_OK);

    want = one_shot(pcm, frames, &c);
    a = streamed(w, &c, pcm, frames, sizes, 1, 0, want.count);
    b = streamed(h, &c, pcm, frames, NULL, 0, 1, want.count);
    compare(&a, &want, &c, "static arena");
    compare(&b, &want, &c, "heap block");
    /* Destroy on caller memory only invalidates it. */
    edgeser_windower_destroy(w);
    {
        size_t taken = 0;
        CHECK_STATUS(edgeser_windower_push(w, pcm, 1, &taken), EDGESER_ERR_STATE);
    }
    edgeser_windower_destroy(h);
    free(heap);
    list_free(&a);
    list_free(&b);
    list_free(&want);
    free(pcm);
}

/* Chunkings: one frame, primes, around the internal block size, everything at once. */
static const size_t kOne[] = {1};
static const size_t kPrimes[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 997};
static const size_t kBlockish[] = {2047, 2048, 2049, 0, 4096, 4097, 1};
static const size_t kBig[] = {100003};

typedef struct chunking {
    const char *name;
    const size_t *sizes;
    size_t n;
} chunking;

static const chunking kChunkings[] = {
    {"one frame", kOne, 1}, {"primes", kPrimes, COUNT_OF(kPrimes)},
    {"block-ish", kBlockish, COUNT_OF(kBlockish)}, {"big", kBig, 1}, {"whole", NULL, 0},
};

typedef struct setup {
    uint32_t rate;
    uint32_t channels;
    edgeser_pcm_format format;
    size_t window, hop;
    edgeser_normalization norm;
} setup;

static const setup kSetups[] = {
    {48000u, 2u, EDGESER_PCM_S16, 8000u, 2000u, EDGESER_NORMALIZE_PER_WINDOW},
    {44100u, 1u, EDGESER_PCM_F32, 4800u, 4800u, EDGESER_NORMALIZE_PER_WINDOW},
    {16000u, 1u, EDGESER_PCM_S24, 1600u, 320u, EDGESER_NORMALIZE_NONE},
    {22050u, 3u, EDGESER_PCM_S32, 6400u, 1600u, EDGESER_NORMALIZE_PER_WINDOW},
    {8000u, 2u, EDGESER_PCM_U8, 3200u, 3200u, EDGESER_NORMALIZE_PER_WINDOW},
    {12345u, 1u, EDGESER_PCM_F64, 4000u, 1000u, EDGESER_NORMALIZE_PER_WINDOW},
    {96000u, 6u, EDGESER_PCM_F32, 16000u, 4000u, EDGESER_NORMALIZE_PER_WINDOW},
};

static void test_stream_equals_one_shot(void)
{
    size_t s, k, li;
    for (s = 0; s < COUNT_OF(kSetups); ++s) {
        const setup *su = &kSetups[s];
        edgeser_windower_config c = base_config();
        /* Lengths: shorter than a window, about one window, several with every tail case. */
        size_t lengths[4];
        c.rate_in_hz = su->rate;
        c.channels = su->channels;
        c.format = su->format;
        c.window = su->window;
        c.hop = su->hop;
        c.normalization = su->norm;
        lengths[0] = (size_t)((uint64_t)su->window * su->rate / 16000u) / 2u;
        lengths[1] = (size_t)((uint64_t)su->window * su->rate / 16000u) + 1u;
        lengths[2] = (size_t)su->rate * 2u + 333u;
        lengths[3] = 37u; /* below one model frame at any rate >= 1480 Hz */
        for (li = 0; li < COUNT_OF(lengths); ++li) {
            size_t frames = lengths[li], n_bytes;
            unsigned char *pcm = make_pcm(frames, c.channels, c.format, c.rate_in_hz,
                                          (uint32_t)(s * 10u + li), &n_bytes);
            window_list want = one_shot(pcm, frames, &c);
            edgeser_windower *w = NULL;
            CHECK_STATUS(edgeser_windower_create(&c, &w), EDGESER_OK);
            for (k = 0; k < COUNT_OF(kChunkings); ++k) {
                int lazy;
                if (kChunkings[k].sizes == kOne && frames > 20000u) {
                    continue; /* one-frame pushes of long inputs only cost time */
                }
                for (lazy = 0; lazy < 2; ++lazy) {
                    window_list got;
                    CHECK_STATUS(edgeser_windower_reset(w), EDGESER_OK);
                    got = streamed(w, &c, pcm, frames, kChunkings[k].sizes, kChunkings[k].n, lazy,
                                   want.count);
                    compare(&got, &want, &c, kChunkings[k].name);
                    list_free(&got);
                }
            }
            if (li == 3) {
                CHECK(want.count == 0u);
            } else {
                CHECK(want.count > 0u);
            }
            edgeser_windower_destroy(w);
            list_free(&want);
            free(pcm);
        }
    }
}

/* At 16 kHz the resampler is the identity, so the signal's length in samples is chosen
 * exactly: every boundary of the tail rule. */
static void test_tail_rule(void)
{
    static const size_t kWindows[][2] = {{1600, 400}, {1600, 1600}, {800, 320}, {4000, 1000}};
    size_t wi;
    for (wi = 0; wi < COUNT_OF(kWindows); ++wi) {
        edgeser_windower_config c = base_config();
        size_t n;
        c.rate_in_hz = 16000u;
        c.channels = 1u;
        c.format = EDGESER_PCM_F32;
        c.window = kWindows[wi][0];
        c.hop = kWindows[wi][1];
        for (n = 0; n <= 3u * c.window + 2u * c.hop + 450u; n += (n < 420u ? 1u : 7u)) {
            size_t n_bytes, count = 0, k;
            unsigned char *pcm = make_pcm(n, 1u, c.format, 16000u, (uint32_t)n, &n_bytes);
            window_list want = one_shot(pcm, n, &c);
            edgeser_windower *w = NULL;
            window_list got;
            CHECK_STATUS(edgeser_windower_create(&c, &w), EDGESER_OK);
            got = streamed(w, &c, pcm, n, kPrimes, COUNT_OF(kPrimes), 0, want.count);
            compare(&got, &want, &c, "tail rule");
            CHECK_STATUS(edgeser_window_count(n, c.window, c.hop, c.min_len, &count), EDGESER_OK);
            CHECK(got.count == count);
            /* Never padded: every window lies inside the signal; the last reaches its end
             * unless only a sub-frame tail is left. */
            for (k = 0; k < got.count; ++k) {
                CHECK(got.info[k].stop <= n && got.info[k].length >= c.min_len);
            }
            if (got.count > 0u) {
                CHECK(got.info[got.count - 1u].stop + c.min_len > n ||
                      got.info[got.count - 1u].stop == n);
            }
            edgeser_windower_destroy(w);
            list_free(&got);
            list_free(&want);
            free(pcm);
        }
    }
}

static void test_silence_and_raw_windows(void)
{
    edgeser_windower_config c = base_config();
    edgeser_windower *w = NULL;
    size_t n = 16000u * 3u, i, taken = 0;
    float *x = (float *)xmalloc(n * sizeof(float));
    float out[8000];
    edgeser_window info;
    int has = 0;
    int silent[16];
    size_t count = 0;

    c.rate_in_hz = 16000u;
    c.channels = 1u;
    c.format = EDGESER_PCM_F32;
    c.window = 8000u;
    c.hop = 8000u;
    c.silence_dbfs = -40.0f;
    c.normalization = EDGESER_NORMALIZE_NONE;
    /* 1 s of -6 dBFS square wave, 1 s of silence, 1 s at -50 dBFS. */
    for (i = 0; i < n; ++i) {
        float a = i < 16000u ? 0.5f : (i < 32000u ? 0.0f : 0.0031622776f);
        x[i] = (i & 1u) ? a : -a;
    }
    CHECK_STATUS(edgeser_windower_create(&c, &w), EDGESER_OK);
    for (i = 0; i < n; i += taken) {
        CHECK_STATUS(edgeser_windower_push(w, x + i, n - i, &taken), EDGESER_OK);
        if (i + taken == n) {
            CHECK_STATUS(edgeser_windower_finish(w), EDGESER_OK);
        }
        for (;;) {
            CHECK_STATUS(edgeser_windower_next(w, out, 8000u, &info, &has), EDGESER_OK);
            if (!has || count >= 16u) {
                break;
            }
            silent[count] = info.silent;
            if (count == 0u) {
                CHECK_NEAR(info.level_dbfs, -6.0206, 1e-3);
                CHECK(memcmp(out, x, 8000u * sizeof(float)) == 0); /* raw: not normalised */
            }
            if (count == 2u) {
                CHECK(info.level_dbfs == EDGESER_DBFS_FLOOR);
            }
            if (count == 4u) {
                CHECK_NEAR(info.level_dbfs, -50.0, 1e-3);
            }
            ++count;
        }
    }
    CHECK(count == 6u);
    CHECK(!silent[0] && !silent[1] && silent[2] && silent[3] && silent[4] && silent[5]);
    /* A -inf gate flags nothing, not even digital silence. */
    c.silence_dbfs = -INFINITY;
    edgeser_windower_destroy(w);
    CHECK_STATUS(edgeser_windower_create(&c, &w), EDGESER_OK);
    count = 0;
    for (i = 0; i < n; i += taken) {
        CHECK_STATUS(edgeser_windower_push(w, x + i, n - i, &taken), EDGESER_OK);
        for (;;) {
            CHECK_STATUS(edgeser_windower_next(w, out, 8000u, &info, &has), EDGESER_OK);
            if (!has) {
                break;
            }
            CHECK(!info.silent);
            ++count;
        }
    }
    CHECK_STATUS(edgeser_windower_finish(w), EDGESER_OK);
    CHECK_STATUS(edgeser_windower_next(w, out, 8000u, &info, &has), EDGESER_OK);
    count += (size_t)has;
    CHECK(count == 6u);
    edgeser_windower_destroy(w);
    free(x);
}

static void test_bounded_intake_and_errors(void)
{
    edgeser_windower_config c = base_config();
    edgeser_windower *w = NULL;
    size_t frames = 48000u * 10u, n_bytes, taken = 0, bytes = 0, pulled = 0, done = 0;
    unsigned char *pcm = make_pcm(frames, c.channels, c.format, c.rate_in_hz, 3u, &n_bytes);
    float *out = (float *)xmalloc(c.window * sizeof(float));
    float *again = (float *)xmalloc(c.window * sizeof(float));
    edgeser_window info, info2;
    int has = 0;

    c.hop = 800u; /* many windows per second: the buffer fills with ready windows */
    CHECK_STATUS(edgeser_windower_size(&c, &bytes), EDGESER_OK);
    CHECK(bytes < 256u * 1024u); /* one window plus one block, not the whole signal */
    CHECK_STATUS(edgeser_windower_create(&c, &w), EDGESER_OK);
    CHECK_STATUS(edgeser_windower_push(w, NULL, 0, &taken), EDGESER_OK);
    CHECK(taken == 0u);
    CHECK_STATUS(edgeser_windower_push(w, NULL, 1, &taken), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_windower_push(w, pcm, frames, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_windower_push(NULL, pcm, frames, &taken), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_windower_push(w, pcm, frames, &taken), EDGESER_OK);
    CHECK(taken > 0u && taken < frames);
    /* Full: nothing more goes in until windows are pulled. */
    done = taken;
    CHECK_STATUS(edgeser_windower_push(w, pcm + done * 4u, frames - done, &taken), EDGESER_OK);
    CHECK(taken == 0u);
    /* Too small an output buffer, NULL pointers: errors, and the same window comes next. */
    CHECK_STATUS(edgeser_windower_next(w, out, c.window - 1u, &info, &has),
                 EDGESER_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(edgeser_windower_next(w, NULL, c.window, &info, &has), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_windower_next(w, out, c.window, NULL, &has), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_windower_next(w, out, c.window, &info, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_windower_next(w, out, c.window, &info, &has), EDGESER_OK);
    CHECK(has == 1 && info.index == 0u && info.start == 0u && info.length == c.window);
    ++pulled;
    while (done < frames) {
        CHECK_STATUS(edgeser_windower_next(w, out, c.window, &info, &has), EDGESER_OK);
        pulled += (size_t)has;
        CHECK_STATUS(edgeser_windower_push(w, pcm + done * 4u, frames - done, &taken), EDGESER_OK);
        done += taken;
    }
    CHECK_STATUS(edgeser_windower_finish(w), EDGESER_OK);
    CHECK_STATUS(edgeser_windower_finish(w), EDGESER_ERR_STATE);
    CHECK_STATUS(edgeser_windower_push(w, pcm, 1, &taken), EDGESER_ERR_STATE);
    for (;;) {
        CHECK_STATUS(edgeser_windower_next(w, out, c.window, &info, &has), EDGESER_OK);
        if (!has) {
            break;
        }
        ++pulled;
    }
    {
        size_t count = 0;
        CHECK_STATUS(edgeser_window_count(160000u, c.window, c.hop, c.min_len, &count), EDGESER_OK);
        CHECK(pulled == count);
    }
    /* After the end, next keeps answering "none". */
    CHECK_STATUS(edgeser_windower_next(w, out, c.window, &info, &has), EDGESER_OK);
    CHECK(has == 0);
    /* Reset: the same stream gives the same first window. */
    CHECK_STATUS(edgeser_windower_reset(w), EDGESER_OK);
    CHECK_STATUS(edgeser_windower_push(w, pcm, 48000u, &taken), EDGESER_OK);
    CHECK_STATUS(edgeser_windower_next(w, again, c.window, &info2, &has), EDGESER_OK);
    CHECK(has == 1 && info2.index == 0u && info2.start == 0u);
    {
        uint64_t samples = 0;
        CHECK_STATUS(edgeser_windower_samples(w, &samples), EDGESER_OK);
        CHECK(samples > 0u && samples <= 16000u);
        CHECK_STATUS(edgeser_windower_samples(w, NULL), EDGESER_ERR_NULL);
    }
    edgeser_windower_destroy(w);
    free(again);
    free(out);
    free(pcm);
}

/* A window is ready as soon as the resampler's output covers it: at 16 kHz with its last
 * sample, at 48 kHz within the look-ahead of the filter (under 6.25 ms). */
static void test_latency(void)
{
    static const uint32_t kRates[] = {16000u, 48000u};
    size_t ri;
    for (ri = 0; ri < COUNT_OF(kRates); ++ri) {
        edgeser_windower_config c = base_config();
        edgeser_windower *w = NULL;
        uint32_t rate = kRates[ri];
        size_t frames = rate * 2u, n_bytes, taken = 0, end0, extra;
        unsigned char *pcm;
        float out[8000];
        edgeser_window info;
        int has = 0;
        c.rate_in_hz = rate;
        c.channels = 1u;
        c.format = EDGESER_PCM_F32;
        pcm = make_pcm(frames, 1u, c.format, rate, 11u, &n_bytes);
        CHECK_STATUS(edgeser_windower_create(&c, &w), EDGESER_OK);
        end0 = (size_t)((uint64_t)c.window * rate / 16000u); /* input frames of window 0 */
        CHECK_STATUS(edgeser_windower_push(w, pcm, end0 - 1u, &taken), EDGESER_OK);
        CHECK_STATUS(edgeser_windower_next(w, out, 8000u, &info, &has), EDGESER_OK);
        CHECK(has == 0);
        for (extra = 0; extra <= 300u && !has; ++extra) {
            CHECK_STATUS(edgeser_windower_push(w, pcm + (end0 - 1u + extra) * 4u, 1, &taken),
                         EDGESER_OK);
            CHECK_STATUS(edgeser_windower_next(w, out, 8000u, &info, &has), EDGESER_OK);
        }
        CHECK(has == 1 && info.start == 0u && info.stop == 8000u);
        /* `extra` counts the frames pushed after the first end0 - 1, plus one. */
        if (rate == 16000u) {
            CHECK(extra == 2u); /* the last sample and one more (the identity filter's) */
        } else {
            CHECK(extra > 2u && extra <= 301u);
        }
        edgeser_windower_destroy(w);
        free(pcm);
    }
}

int main(void)
{
    test_config_errors();
    test_caller_memory();
    test_stream_equals_one_shot();
    test_tail_rule();
    test_silence_and_raw_windows();
    test_bounded_intake_and_errors();
    test_latency();
    if (g_mismatch != 0u) {
        fprintf(stderr, "%lu window comparisons differed\n", g_mismatch);
    }
    return check_report("test_windower");
}
