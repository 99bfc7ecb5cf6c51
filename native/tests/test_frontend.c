/* Tests for status strings, PCM conversion, mixdown, normalisation, RMS level and windowing.
 * Plain C99 + libm; no Python. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "edgeser/frontend.h"
#include "check.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
#define SENTINEL 12345.0f

static const double kPi = 3.14159265358979323846;

/* ---------------------------------------------------------------- status / version ---- */

static void test_status(void)
{
    const char *unknown = edgeser_strerror((edgeser_status)42);
    int code;

    CHECK(unknown != NULL && unknown[0] != '\0');
    CHECK(edgeser_strerror((edgeser_status)10) != NULL);
    for (code = EDGESER_OK; code <= EDGESER_ERR_NOMEM; ++code) {
        const char *s = edgeser_strerror((edgeser_status)code);
        CHECK(s != NULL);
        if (s != NULL) {
            CHECK(s[0] != '\0');
            CHECK(strcmp(s, unknown) != 0);
        }
    }
    CHECK(strcmp(edgeser_strerror(EDGESER_OK), edgeser_strerror(EDGESER_ERR_NULL)) != 0);
    CHECK(edgeser_version() != NULL);
    CHECK(strcmp(edgeser_version(), EDGESER_VERSION_STRING) == 0);
}

/* ---------------------------------------------------------------- PCM ------------------ */

/* Convert `n` mono samples from `bytes` both aligned and at an odd address, and compare every
 * output bit-exactly with `expected`. */
static void check_decode(edgeser_pcm_format format, const unsigned char *bytes, size_t n,
                         const float *expected)
{
    unsigned char storage[8 * 16 + 16];
    float out[16];
    size_t bps = edgeser_pcm_bytes_per_sample(format);
    size_t offset;

    if (!CHECK(n <= 16 && bps > 0)) {
        return;
    }
    for (offset = 0; offset <= 3; offset += 1) {
        size_t i;
        unsigned char *buf = storage + offset; /* offsets 1 and 3: odd alignment */
        memcpy(buf, bytes, n * bps);
        for (i = 0; i < n; ++i) {
            out[i] = SENTINEL;
        }
        CHECK_STATUS(edgeser_pcm_to_float(buf, n, 1, format, out), EDGESER_OK);
        for (i = 0; i < n; ++i) {
            if (!CHECK(out[i] == expected[i])) {
                fprintf(stderr, "  format %d offset %u sample %u: got %.9g expected %.9g\n",
                        (int)format, (unsigned)offset, (unsigned)i, out[i], expected[i]);
            }
        }
    }
}

static void test_pcm_bytes_per_sample(void)
{
    CHECK(edgeser_pcm_bytes_per_sample(EDGESER_PCM_U8) == 1);
    CHECK(edgeser_pcm_bytes_per_sample(EDGESER_PCM_S16) == 2);
    CHECK(edgeser_pcm_bytes_per_sample(EDGESER_PCM_S24) == 3);
    CHECK(edgeser_pcm_bytes_per_sample(EDGESER_PCM_S32) == 4);
    CHECK(edgeser_pcm_bytes_per_sample(EDGESER_PCM_F32) == 4);
    CHECK(edgeser_pcm_bytes_per_sample(EDGESER_PCM_F64) == 8);
    CHECK(edgeser_pcm_bytes_per_sample((edgeser_pcm_format)0) == 0);
    CHECK(edgeser_pcm_bytes_per_sample((edgeser_pcm_format)7) == 0);
}

static void test_pcm_integers(void)
{
    static const unsigned char u8[] = {0x00, 0x80, 0xFF, 0x40, 0x81, 0x7F};
    static const float u8_exp[] = {-1.0f, 0.0f, 127.0f / 128.0f, -0.5f, 1.0f / 128.0f,
                                   -1.0f / 128.0f};

    static const unsigned char s16[] = {0x00, 0x80, /* -32768 */
                                        0xFF, 0x7F, /*  32767 */
                                        0x00, 0x00, /*      0 */
                                        0xFF, 0xFF, /*     -1 */
                                        0x01, 0x00, /*      1 */
                                        0x00, 0x40, /*  16384 */
                                        0x34, 0x12 /*   4660 */};
    static const float s16_exp[] = {-1.0f, 32767.0f / 32768.0f, 0.0f, -1.0f / 32768.0f,
                                    1.0f / 32768.0f, 0.5f, 4660.0f / 32768.0f};

    static const unsigned char s24[] = {0x00, 0x00, 0x80, /* -8388608 */
                                        0xFF, 0xFF, 0x7F, /*  8388607 */
                                        0x00, 0x00, 0x00, /*        0 */
                                        0xFF, 0xFF, 0xFF, /*       -1 */
                                        0x01, 0x00, 0x00, /*        1 */
                                        0x00, 0x00, 0xC0, /* -4194304 */
                                        0x56, 0x34, 0x12 /*   0x123456 */};
    static const float s24_exp[] = {-1.0f,
                                    8388607.0f / 8388608.0f,
                                    0.0f,
                                    -1.0f / 8388608.0f,
                                    1.0f / 8388608.0f,
                                    -0.5f,
                                    (float)0x123456 / 8388608.0f};

    static const unsigned char s32[] = {0x00, 0x00, 0x00, 0x80, /* INT32_MIN */
                                        0xFF, 0xFF, 0xFF, 0x7F, /* INT32_MAX */
                                        0x00, 0x00, 0x00, 0x00, /* 0 */
                                        0xFF, 0xFF, 0xFF, 0xFF, /* -1 */
                                        0x00, 0x00, 0x01, 0x00, /* 65536 */
                                        0x00, 0x00, 0x00, 0x40, /* 2^30 */
                                        0x78, 0x56, 0x34, 0x12 /* 0x12345678 */};
    float s32_exp[7];

    s32_exp[0] = -1.0f;
    s32_exp[1] = (float)(2147483647.0 / 2147483648.0); /* rounds to 1.0f */
    s32_exp[2] = 0.0f;
    s32_exp[3] = (float)(-1.0 / 2147483648.0);
    s32_exp[4] = 1.0f / 32768.0f;
    s32_exp[5] = 0.5f;
    s32_exp[6] = (float)((double)0x12345678 / 2147483648.0);

    check_decode(EDGESER_PCM_U8, u8, COUNT_OF(u8_exp), u8_exp);
    check_decode(EDGESER_PCM_S16, s16, COUNT_OF(s16_exp), s16_exp);
    check_decode(EDGESER_PCM_S24, s24, COUNT_OF(s24_exp), s24_exp);
    check_decode(EDGESER_PCM_S32, s32, COUNT_OF(s32_exp), s32_exp);

    /* Extremes stay inside [-1, 1]. */
    CHECK(u8_exp[2] < 1.0f && s16_exp[1] < 1.0f && s24_exp[1] < 1.0f);
    CHECK(s32_exp[1] <= 1.0f);
}

static void test_pcm_floats(void)
{
    float f32_vals[6];
    double f64_vals[5];
    unsigned char f32_bytes[sizeof f32_vals];
    unsigned char f64_bytes[sizeof f64_vals];
    float f64_exp[5];
    size_t i;

    f32_vals[0] = 0.5f;
    f32_vals[1] = -1.25f;
    f32_vals[2] = 0.0f;
    f32_vals[3] = 1e-40f; /* subnormal */
    f32_vals[4] = 3.0e38f;
    f32_vals[5] = -0.1f;
    memcpy(f32_bytes, f32_vals, sizeof f32_vals);
    check_decode(EDGESER_PCM_F32, f32_bytes, COUNT_OF(f32_vals), f32_vals);

    f64_vals[0] = -0.75;
    f64_vals[1] = 0.1;
    f64_vals[2] = 1.0 / 3.0;
    f64_vals[3] = -1.0;
    f64_vals[4] = 1e-5;
    for (i = 0; i < COUNT_OF(f64_vals); ++i) {
        f64_exp[i] = (float)f64_vals[i];
    }
    memcpy(f64_bytes, f64_vals, sizeof f64_vals);
    check_decode(EDGESER_PCM_F64, f64_bytes, COUNT_OF(f64_vals), f64_exp);

    /* NaN passes through as NaN. */
    {
        float nan_in = (float)NAN;
        float out = 0.0f;
        unsigned char b[1 + sizeof(float)];
        memcpy(b + 1, &nan_in, sizeof nan_in);
        CHECK_STATUS(edgeser_pcm_to_float(b + 1, 1, 1, EDGESER_PCM_F32, &out), EDGESER_OK);
        CHECK(out != out);
    }
}

static void test_pcm_interleaved(void)
{
    /* 3 frames of stereo S16 at an odd address: (L, R) = (-32768, 32767), (1, -1), (0, 16384). */
    static const unsigned char s16[] = {0x00, 0x80, 0xFF, 0x7F, 0x01, 0x00,
                                        0xFF, 0xFF, 0x00, 0x00, 0x00, 0x40};
    unsigned char buf[sizeof s16 + 1];
    float out[7];
    float mono[3];
    int i;

    memcpy(buf + 1, s16, sizeof s16);
    out[6] = SENTINEL;
    CHECK_STATUS(edgeser_pcm_to_float(buf + 1, 3, 2, EDGESER_PCM_S16, out), EDGESER_OK);
    CHECK(out[0] == -1.0f);
    CHECK(out[1] == 32767.0f / 32768.0f);
    CHECK(out[2] == 1.0f / 32768.0f);
    CHECK(out[3] == -1.0f / 32768.0f);
    CHECK(out[4] == 0.0f);
    CHECK(out[5] == 0.5f);
    CHECK(out[6] == SENTINEL); /* nothing written past n_frames * channels */

    CHECK_STATUS(edgeser_mixdown(out, 3, 2, mono), EDGESER_OK);
    CHECK(mono[0] == (float)((-1.0 + 32767.0 / 32768.0) / 2.0));
    CHECK(mono[1] == 0.0f);
    CHECK(mono[2] == 0.25f);

    /* 5-channel U8, one frame. */
    {
        unsigned char u8[6] = {0, 0x00, 0x40, 0x80, 0xC0, 0xFF};
        float o[5];
        CHECK_STATUS(edgeser_pcm_to_float(u8 + 1, 1, 5, EDGESER_PCM_U8, o), EDGESER_OK);
        CHECK(o[0] == -1.0f && o[1] == -0.5f && o[2] == 0.0f && o[3] == 0.5f);
        CHECK(o[4] == 127.0f / 128.0f);
    }
    for (i = 0; i < 3; ++i) {
        CHECK(mono[i] >= -1.0f && mono[i] <= 1.0f);
    }
}

static void test_pcm_errors(void)
{
    unsigned char in[16] = {0};
    float out[4];
    const edgeser_pcm_format formats[] = {EDGESER_PCM_U8,  EDGESER_PCM_S16, EDGESER_PCM_S24,
                                          EDGESER_PCM_S32, EDGESER_PCM_F32, EDGESER_PCM_F64};
    size_t f;

    out[0] = SENTINEL;
    CHECK_STATUS(edgeser_pcm_to_float(NULL, 1, 1, EDGESER_PCM_S16, out), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_pcm_to_float(in, 1, 1, EDGESER_PCM_S16, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_pcm_to_float(in, 1, 0, EDGESER_PCM_S16, out), EDGESER_ERR_CHANNELS);
    CHECK_STATUS(edgeser_pcm_to_float(in, 1, 1, (edgeser_pcm_format)0, out), EDGESER_ERR_FORMAT);
    CHECK_STATUS(edgeser_pcm_to_float(in, 1, 1, (edgeser_pcm_format)7, out), EDGESER_ERR_FORMAT);
    CHECK_STATUS(edgeser_pcm_to_float(in, 1, 1, (edgeser_pcm_format)255, out), EDGESER_ERR_FORMAT);
    CHECK(out[0] == SENTINEL);

    /* Zero frames: OK even with NULL buffers, nothing written. */
    CHECK_STATUS(edgeser_pcm_to_float(NULL, 0, 1, EDGESER_PCM_S16, NULL), EDGESER_OK);
    CHECK_STATUS(edgeser_pcm_to_float(in, 0, 2, EDGESER_PCM_F64, out), EDGESER_OK);
    CHECK(out[0] == SENTINEL);

    /* Overflow: checked before any memory is touched (the buffers here are tiny). */
    CHECK_STATUS(edgeser_pcm_to_float(in, SIZE_MAX, 2, EDGESER_PCM_U8, out), EDGESER_ERR_OVERFLOW);
    CHECK_STATUS(edgeser_pcm_to_float(in, SIZE_MAX / 2 + 1, 2, EDGESER_PCM_S16, out),
                 EDGESER_ERR_OVERFLOW);
    CHECK_STATUS(edgeser_pcm_to_float(in, SIZE_MAX / 3 + 1, 1, EDGESER_PCM_S24, out),
                 EDGESER_ERR_OVERFLOW);
    CHECK_STATUS(edgeser_pcm_to_float(in, SIZE_MAX / 8 + 1, 1, EDGESER_PCM_F64, out),
                 EDGESER_ERR_OVERFLOW);
    CHECK_STATUS(edgeser_pcm_to_float(in, SIZE_MAX / 4 + 1, 1, EDGESER_PCM_S32, out),
                 EDGESER_ERR_OVERFLOW);
    /* U8 input bytes fit, but the float output would not. */
    CHECK_STATUS(edgeser_pcm_to_float(in, SIZE_MAX / 2, 1, EDGESER_PCM_U8, out),
                 EDGESER_ERR_OVERFLOW);
    CHECK_STATUS(edgeser_pcm_to_float(in, SIZE_MAX, UINT32_MAX, EDGESER_PCM_F32, out),
                 EDGESER_ERR_OVERFLOW);
    for (f = 0; f < COUNT_OF(formats); ++f) {
        CHECK_STATUS(edgeser_pcm_to_float(in, SIZE_MAX, 1, formats[f], out), EDGESER_ERR_OVERFLOW);
    }
    CHECK(out[0] == SENTINEL);
}

/* ---------------------------------------------------------------- mixdown -------------- */

static void test_mixdown(void)
{
    enum { FRAMES = 9, MAXCH = 7 };
    float in[FRAMES * MAXCH];
    float buf[FRAMES * MAXCH];
    float out[FRAMES + 1];
    uint32_t channels;

    for (channels = 1; channels <= MAXCH; ++channels) {
        size_t i;
        size_t n = (size_t)FRAMES * channels;
        for (i = 0; i < n; ++i) {
            /* Distinct, non-trivial values in [-1, 1]. */
            in[i] = (float)sin(0.37 * (double)i + 0.1 * (double)channels);
            buf[i] = in[i];
        }
        out[FRAMES] = SENTINEL;
        CHECK_STATUS(edgeser_mixdown(in, FRAMES, channels, out), EDGESER_OK);
        CHECK(out[FRAMES] == SENTINEL);
        /* In place: out aliases in. */
        CHECK_STATUS(edgeser_mixdown(buf, FRAMES, channels, buf), EDGESER_OK);
        for (i = 0; i < FRAMES; ++i) {
            double acc = 0.0;
            uint32_t c;
            for (c = 0; c < channels; ++c) {
                acc += (double)in[i * channels + c];
            }
            if (!CHECK(out[i] == (float)(acc / (double)channels))) {
                fprintf(stderr, "  channels %u frame %u\n", (unsigned)channels, (unsigned)i);
            }
            if (!CHECK(buf[i] == out[i])) {
                fprintf(stderr, "  in place: channels %u frame %u\n", (unsigned)channels,
                        (unsigned)i);
            }
        }
    }

    /* 1 channel is an identity. */
    {
        float mono[3] = {0.25f, -0.5f, 1.0f};
        float o[3];
        CHECK_STATUS(edgeser_mixdown(mono, 3, 1, o), EDGESER_OK);
        CHECK(o[0] == 0.25f && o[1] == -0.5f && o[2] == 1.0f);
        CHECK_STATUS(edgeser_mixdown(mono, 3, 1, mono), EDGESER_OK);
        CHECK(mono[0] == 0.25f && mono[1] == -0.5f && mono[2] == 1.0f);
    }

    /* Accumulation is in double: float accumulation would lose the 1.0 entirely. */
    {
        float f[3] = {1e8f, 1.0f, -1e8f};
        float o = 0.0f;
        CHECK_STATUS(edgeser_mixdown(f, 1, 3, &o), EDGESER_OK);
        CHECK(o == (float)(1.0 / 3.0));
    }

    /* 7 channels, hand-computed: frame 0 = 0..6 -> 3, frame 1 = all -1 -> -1. */
    {
        float seven[14] = {0, 1, 2, 3, 4, 5, 6, -1, -1, -1, -1, -1, -1, -1};
        CHECK_STATUS(edgeser_mixdown(seven, 2, 7, seven), EDGESER_OK);
        CHECK(seven[0] == 3.0f);
        CHECK(seven[1] == -1.0f);
        CHECK(seven[2] == 2.0f); /* untouched beyond n_frames */
    }

    /* Errors. */
    out[0] = SENTINEL;
    CHECK_STATUS(edgeser_mixdown(NULL, 1, 2, out), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_mixdown(in, 1, 2, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_mixdown(in, 1, 0, out), EDGESER_ERR_CHANNELS);
    CHECK_STATUS(edgeser_mixdown(in, SIZE_MAX, 2, out), EDGESER_ERR_OVERFLOW);
    CHECK_STATUS(edgeser_mixdown(in, SIZE_MAX / 4 + 1, 1, out), EDGESER_ERR_OVERFLOW);
    CHECK_STATUS(edgeser_mixdown(in, SIZE_MAX / 2, UINT32_MAX, out), EDGESER_ERR_OVERFLOW);
    CHECK_STATUS(edgeser_mixdown(NULL, 0, 2, NULL), EDGESER_OK);
    CHECK(out[0] == SENTINEL);
}

/* ---------------------------------------------------------------- normalize ------------ */

static void test_normalize(void)
{
    const float x[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    float y[4];
    float z[4];
    /* mean 2.5, population variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25 */
    const double denom = sqrt(1.25 + 1e-7);
    const double expect[4] = {-1.5 / denom, -0.5 / denom, 0.5 / denom, 1.5 / denom};
    size_t i;

    CHECK_STATUS(edgeser_normalize(x, 4, y), EDGESER_OK);
    memcpy(z, x, sizeof z);
    CHECK_STATUS(edgeser_normalize(z, 4, z), EDGESER_OK);
    for (i = 0; i < 4; ++i) {
        CHECK_NEAR(y[i], expect[i], 1e-6);
        CHECK(y[i] == (float)expect[i]);
        CHECK(z[i] == y[i]);
    }

    /* Constant input: (x - mean) == 0 exactly, so 0 / sqrt(1e-7) == 0. */
    {
        float c[5] = {0.3f, 0.3f, 0.3f, 0.3f, 0.3f};
        float one = -0.7f;
        CHECK_STATUS(edgeser_normalize(c, 5, c), EDGESER_OK);
        for (i = 0; i < 5; ++i) {
            CHECK(c[i] == 0.0f);
        }
        CHECK_STATUS(edgeser_normalize(&one, 1, &one), EDGESER_OK);
        CHECK(one == 0.0f);
    }

    /* A longer signal comes out with mean ~0 and population variance ~1. */
    {
        enum { N = 4000 };
        static float s[N];
        double m = 0.0;
        double v = 0.0;
        for (i = 0; i < N; ++i) {
            s[i] = (float)(0.2 + 0.05 * sin(0.013 * (double)i) + 0.01 * cos(1.7 * (double)i));
        }
        CHECK_STATUS(edgeser_normalize(s, N, s), EDGESER_OK);
        for (i = 0; i < N; ++i) {
            m += s[i];
        }
        m /= N;
        for (i = 0; i < N; ++i) {
            v += ((double)s[i] - m) * ((double)s[i] - m);
        }
        v /= N;
        CHECK_NEAR(m, 0.0, 1e-5);
        CHECK_NEAR(v, 1.0, 1e-3); /* var / (var + 1e-7) */
    }

    /* NaN in -> NaN out, no crash. */
    {
        float q[3] = {1.0f, (float)NAN, 2.0f};
        CHECK_STATUS(edgeser_normalize(q, 3, q), EDGESER_OK);
        CHECK(q[0] != q[0]);
    }

    CHECK_STATUS(edgeser_normalize(NULL, 0, NULL), EDGESER_OK);
    CHECK_STATUS(edgeser_normalize(NULL, 4, y), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_normalize(x, 4, NULL), EDGESER_ERR_NULL);
}

/* ---------------------------------------------------------------- rms ------------------ */

static void test_rms(void)
{
    enum { N = 16000 };
    static float s[N];
    float db = 1.0f;
    size_t i;

    for (i = 0; i < N; ++i) {
        s[i] = (i & 1u) ? -1.0f : 1.0f;
    }
    CHECK_STATUS(edgeser_rms_dbfs(s, N, &db), EDGESER_OK);
    CHECK_NEAR(db, 0.0, 1e-6);

    /* Full-scale 1 kHz sine at 16 kHz over whole periods: mean square 0.5 -> -3.0103 dBFS. */
    for (i = 0; i < N; ++i) {
        s[i] = (float)sin(2.0 * kPi * 1000.0 * (double)i / 16000.0);
    }
    CHECK_STATUS(edgeser_rms_dbfs(s, N, &db), EDGESER_OK);
    CHECK_NEAR(db, -3.0103, 1e-3);
    CHECK_NEAR(db, 10.0 * log10(0.5), 1e-4);

    /* Half-scale DC: -6.0206 dBFS. */
    for (i = 0; i < 100; ++i) {
        s[i] = -0.5f;
    }
    CHECK_STATUS(edgeser_rms_dbfs(s, 100, &db), EDGESER_OK);
    CHECK_NEAR(db, 20.0 * log10(0.5), 1e-5);

    /* Digital silence and empty input: the floor. */
    for (i = 0; i < N; ++i) {
        s[i] = 0.0f;
    }
    db = 1.0f;
    CHECK_STATUS(edgeser_rms_dbfs(s, N, &db), EDGESER_OK);
    CHECK(db == EDGESER_DBFS_FLOOR);
    db = 1.0f;
    CHECK_STATUS(edgeser_rms_dbfs(NULL, 0, &db), EDGESER_OK);
    CHECK(db == EDGESER_DBFS_FLOOR);

    /* Never below the floor: 1e-30 would be -600 dBFS. */
    for (i = 0; i < 10; ++i) {
        s[i] = 1e-30f;
    }
    CHECK_STATUS(edgeser_rms_dbfs(s, 10, &db), EDGESER_OK);
    CHECK(db == EDGESER_DBFS_FLOOR);
    s[0] = 1e-45f; /* subnormal, square underflows nothing in double */
    CHECK_STATUS(edgeser_rms_dbfs(s, 1, &db), EDGESER_OK);
    CHECK(db == EDGESER_DBFS_FLOOR);

    /* NaN in -> NaN out. */
    s[0] = (float)NAN;
    CHECK_STATUS(edgeser_rms_dbfs(s, 2, &db), EDGESER_OK);
    CHECK(db != db);

    db = 1.0f;
    CHECK_STATUS(edgeser_rms_dbfs(NULL, 3, &db), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_rms_dbfs(s, 3, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_rms_dbfs(NULL, 0, NULL), EDGESER_ERR_NULL);
    CHECK(db == 1.0f);
}

/* ---------------------------------------------------------------- windows -------------- */

typedef struct window_case {
    const char *name;
    size_t n, window, hop, min_len;
    size_t count;
    size_t starts[8];
    size_t lens[8];
} window_case;

static const window_case kWindowCases[] = {
    {"empty signal", 0, 8, 4, 0, 0, {0}, {0}},
    {"n < min_len (shorter than window)", 3, 8, 4, 5, 0, {0}, {0}},
    {"n < window, n >= min_len: one short window", 6, 8, 4, 5, 1, {0}, {6}},
    {"n < window, n == min_len", 5, 8, 4, 5, 1, {0}, {5}},
    {"n == window", 8, 8, 4, 1, 1, {0}, {8}},
    {"n == window, hop == window", 8, 8, 8, 8, 1, {0}, {8}},
    {"n == window + 1, hop < window", 9, 8, 4, 1, 2, {0, 4}, {8, 5}},
    {"n == window + 1, tail below min_len", 9, 8, 4, 6, 1, {0}, {8}},
    {"hop == window", 20, 8, 8, 1, 3, {0, 8, 16}, {8, 8, 4}},
    {"n multiple of hop", 16, 8, 4, 1, 3, {0, 4, 8}, {8, 8, 8}},
    {"n not a multiple", 22, 8, 4, 1, 5, {0, 4, 8, 12, 16}, {8, 8, 8, 8, 6}},
    {"short tail dropped (6 < 7)", 22, 8, 8, 7, 2, {0, 8}, {8, 8}},
    {"short tail kept (6 == min_len)", 22, 8, 8, 6, 3, {0, 8, 16}, {8, 8, 6}},
    {"hop 1", 10, 8, 1, 8, 3, {0, 1, 2}, {8, 8, 8}},
    /* As specified, min_len only filters short windows: full windows are kept. */
    {"min_len > window, full windows kept", 20, 8, 8, 10, 2, {0, 8}, {8, 8}},
    {"2.5 s at 16 kHz, 2 s window, 1 s hop", 40000, 32000, 16000, 400, 2, {0, 16000},
     {32000, 24000}},
    {"tail of 399 dropped", 32399, 32000, 32000, 400, 1, {0}, {32000}},
    {"tail of 400 kept", 32400, 32000, 32000, 400, 2, {0, 32000}, {32000, 400}},
};

static void test_window_table(void)
{
    size_t c;
    for (c = 0; c < COUNT_OF(kWindowCases); ++c) {
        const window_case *wc = &kWindowCases[c];
        size_t count = 999;
        size_t k;
        size_t start = 777, len = 777;
        if (!CHECK_STATUS(edgeser_window_count(wc->n, wc->window, wc->hop, wc->min_len, &count),
                          EDGESER_OK) ||
            !CHECK(count == wc->count)) {
            fprintf(stderr, "  case '%s': count %u expected %u\n", wc->name, (unsigned)count,
                    (unsigned)wc->count);
            continue;
        }
        for (k = 0; k < count; ++k) {
            CHECK_STATUS(edgeser_window_bounds(wc->n, wc->window, wc->hop, wc->min_len, k,
                                               &start, &len),
                         EDGESER_OK);
            if (!CHECK(start == wc->starts[k] && len == wc->lens[k])) {
                fprintf(stderr, "  case '%s' window %u: [%u, +%u) expected [%u, +%u)\n", wc->name,
                        (unsigned)k, (unsigned)start, (unsigned)len, (unsigned)wc->starts[k],
                        (unsigned)wc->lens[k]);
            }
        }
        /* k == count is out of range and leaves the outputs alone. */
        start = 777;
        len = 777;
        CHECK_STATUS(edgeser_window_bounds(wc->n, wc->window, wc->hop, wc->min_len, count, &start,
                                           &len),
                     EDGESER_ERR_ARGUMENT);
        CHECK(start == 777 && len == 777);
    }
}

static void test_window_errors(void)
{
    size_t count = 999, start = 777, len = 777;

    CHECK_STATUS(edgeser_window_count(100, 8, 9, 1, &count), EDGESER_ERR_ARGUMENT); /* hop > window */
    CHECK_STATUS(edgeser_window_count(100, 8, 0, 1, &count), EDGESER_ERR_ARGUMENT); /* hop 0 */
    CHECK_STATUS(edgeser_window_count(100, 0, 0, 1, &count), EDGESER_ERR_ARGUMENT); /* window 0 */
    CHECK_STATUS(edgeser_window_count(0, 0, 1, 0, &count), EDGESER_ERR_ARGUMENT);
    CHECK(count == 999);
    CHECK_STATUS(edgeser_window_count(100, 8, 4, 1, NULL), EDGESER_ERR_NULL);

    CHECK_STATUS(edgeser_window_bounds(100, 8, 9, 1, 0, &start, &len), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_window_bounds(100, 8, 0, 1, 0, &start, &len), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_window_bounds(100, 8, 4, 1, 1000, &start, &len), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_window_bounds(100, 8, 4, 1, SIZE_MAX, &start, &len), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_window_bounds(3, 8, 4, 5, 0, &start, &len), EDGESER_ERR_ARGUMENT); /* none */
    CHECK_STATUS(edgeser_window_bounds(100, 8, 4, 1, 0, NULL, &len), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_window_bounds(100, 8, 4, 1, 0, &start, NULL), EDGESER_ERR_NULL);
    CHECK(start == 777 && len == 777);
}

static void test_window_extremes(void)
{
    size_t count = 0, start = 0, len = 0;

    /* Huge sizes must neither overflow nor be refused spuriously. */
    CHECK_STATUS(edgeser_window_count(SIZE_MAX, SIZE_MAX, 1, 0, &count), EDGESER_OK);
    CHECK(count == 1);
    CHECK_STATUS(edgeser_window_count(SIZE_MAX, 2, 1, 0, &count), EDGESER_OK);
    CHECK(count == SIZE_MAX - 1);
    CHECK_STATUS(edgeser_window_bounds(SIZE_MAX, 2, 1, 0, SIZE_MAX - 2, &start, &len), EDGESER_OK);
    CHECK(start == SIZE_MAX - 2 && len == 2);
    CHECK_STATUS(edgeser_window_count(SIZE_MAX, 3, 2, 0, &count), EDGESER_OK);
    CHECK(count == (SIZE_MAX - 1) / 2);
    CHECK_STATUS(edgeser_window_bounds(SIZE_MAX, 3, 2, 0, count - 1, &start, &len), EDGESER_OK);
    CHECK(start == SIZE_MAX - 3 && len == 3);
    CHECK_STATUS(edgeser_window_count(SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 1, 1, &count), EDGESER_OK);
    CHECK(count == 2);
    CHECK_STATUS(edgeser_window_bounds(SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 1, 1, 1, &start, &len),
                 EDGESER_OK);
    CHECK(start == SIZE_MAX - 1 && len == 1);
    CHECK_STATUS(edgeser_window_count(SIZE_MAX - 1, SIZE_MAX, 1, SIZE_MAX, &count), EDGESER_OK);
    CHECK(count == 0);
}

/* Structural properties over every small configuration. */
static void test_window_sweep(void)
{
    size_t n, w, h, m;
    unsigned long bad = 0;

    for (n = 0; n <= 40; ++n) {
        for (w = 1; w <= 10; ++w) {
            for (h = 1; h <= w; ++h) {
                for (m = 0; m <= 12; ++m) {
                    size_t count = 0, k, start = 0, len = 0;
                    size_t covered_end = 0;
                    int ok = edgeser_window_count(n, w, h, m, &count) == EDGESER_OK;
                    for (k = 0; ok && k < count; ++k) {
                        ok = edgeser_window_bounds(n, w, h, m, k, &start, &len) == EDGESER_OK &&
                             len > 0 && len <= w && start + len <= n &&
                             (len == w || len >= m) &&             /* short ones honour min_len */
                             (len == w || k == count - 1) &&       /* only the last is short */
                             start == k * h &&                     /* every window on the hop grid */
                             (k == 0 || start + len > covered_end); /* each adds new samples */
                        if (start + len > covered_end) {
                            covered_end = start + len;
                        }
                    }
                    ok = ok &&
                         edgeser_window_bounds(n, w, h, m, count, &start, &len) ==
                             EDGESER_ERR_ARGUMENT &&
                         /* whatever is left uncovered is a dropped short remainder */
                         (covered_end == n || n - covered_end < w) &&
                         (count > 0 || n == 0 || n < m) && (count == 0 || covered_end > 0);
                    if (count > 0 && covered_end < n) {
                        /* dropped tail: [count_full*hop, n) must have been shorter than m */
                        size_t tail_start = (n >= w) ? ((n - w) / h + 1) * h : 0;
                        ok = ok && n - tail_start < m;
                    }
                    if (!ok) {
                        if (bad < 5) {
                            fprintf(stderr, "  sweep: n=%u window=%u hop=%u min_len=%u\n",
                                    (unsigned)n, (unsigned)w, (unsigned)h, (unsigned)m);
                        }
                        ++bad;
                    }
                }
            }
        }
    }
    CHECK(bad == 0);
}

int main(void)
{
    test_status();
    test_pcm_bytes_per_sample();
    test_pcm_integers();
    test_pcm_floats();
    test_pcm_interleaved();
    test_pcm_errors();
    test_mixdown();
    test_normalize();
    test_rms();
    test_window_table();
    test_window_errors();
    test_window_extremes();
    test_window_sweep();
    return check_report("test_frontend");
}
