/* Tests for the noise suppressor and its real FFT: the FFT against a direct DFT and its
 * inverse; sizes, latency and argument errors; output bit-identical for every chunking and in
 * place; the delay is exactly the stated latency; a loud tone in faint noise comes through
 * close to the input while noise alone drops by at least 10 dB, at every supported frame
 * size; silence, DC, clipped and huge input; NaN and infinities taken as 0; flush, reset and
 * caller memory. Plain C99 + libm. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgeser/frontend.h"
#include "../src/fft.h"
#include "check.h"

#define PI 3.14159265358979323846

static uint32_t rng_state = 12345u;

static float uniform(void) /* in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (float)((double)rng_state / 2147483648.0 - 1.0);
}

static float gaussian(void)
{
    float s = 0.0f;
    int i;
    for (i = 0; i < 12; ++i) {
        s += 0.5f * uniform();
    }
    return s; /* variance 1 */
}

static double energy(const float *x, size_t n)
{
    double e = 0.0;
    size_t i;
    for (i = 0; i < n; ++i) {
        e += (double)x[i] * (double)x[i];
    }
    return e;
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

/* The whole signal through one suppressor: n outputs from process, then the flush. */
static float *run(uint32_t rate, const float *x, size_t n, size_t *latency)
{
    edgeser_denoiser *d = NULL;
    size_t lat = 0, got = 0;
    float *out;
    CHECK_STATUS(edgeser_denoiser_latency(rate, &lat), EDGESER_OK);
    out = (float *)malloc((n + lat) * sizeof(float));
    CHECK_STATUS(edgeser_denoiser_create(rate, &d), EDGESER_OK);
    CHECK_STATUS(edgeser_denoiser_process(d, x, out, n), EDGESER_OK);
    CHECK_STATUS(edgeser_denoiser_flush(d, out + n, lat, &got), EDGESER_OK);
    CHECK(got == lat);
    edgeser_denoiser_destroy(d);
    *latency = lat;
    return out;
}

/* ---------------------------------------------------------------- FFT ------------------ */

static void test_fft(void)
{
    static const size_t sizes[] = {8, 64, 512, 4096};
    size_t s;
    for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); ++s) {
        size_t n = sizes[s], k, t;
        float *tw = (float *)malloc(edgeser_rfft_table_floats_(n) * sizeof(float));
        uint32_t *rev = (uint32_t *)malloc((n / 2u) * sizeof(uint32_t));
        float *x = (float *)malloc(n * sizeof(float)), *buf = (float *)malloc(n * sizeof(float));
        double worst = 0.0, worst_back = 0.0;
        edgeser_rfft_init_(n, tw, rev);
        for (t = 0; t < n; ++t) {
            x[t] = uniform();
        }
        memcpy(buf, x, n * sizeof(float));
        edgeser_rfft_forward_(buf, n, tw, rev);
        for (k = 0; k <= n / 2u; ++k) {
            double re = 0.0, im = 0.0, got_re, got_im;
            for (t = 0; t < n; ++t) {
                re += x[t] * cos(2.0 * PI * (double)(k * t % n) / (double)n);
                im -= x[t] * sin(2.0 * PI * (double)(k * t % n) / (double)n);
            }
            if (k == 0u) {
                got_re = buf[0];
                got_im = 0.0;
            } else if (k == n / 2u) {
                got_re = buf[1];
                got_im = 0.0;
            } else {
                got_re = buf[2u * k];
                got_im = buf[2u * k + 1u];
            }
            worst = fmax(worst, fmax(fabs(got_re - re), fabs(got_im - im)));
        }
        edgeser_rfft_inverse_(buf, n, tw, rev);
        for (t = 0; t < n; ++t) {
            worst_back = fmax(worst_back, fabs((double)buf[t] - (double)x[t]));
        }
        /* float rounding: about sqrt(n) * log2(n) ulps of the spectrum's size */
        CHECK(worst < 1e-5 * sqrt((double)n) * log2((double)n) * 4.0);
        CHECK(worst_back < 1e-6 * log2((double)n) * 4.0);
        free(tw);
        free(rev);
        free(x);
        free(buf);
    }
}

/* ---------------------------------------------------------------- API ------------------ */

static void test_sizes_and_errors(void)
{
    static const uint32_t rates[] = {8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000,
                                     96000, 192000};
    size_t r, bytes = 0, lat = 0;
    edgeser_denoiser *d = NULL;
    edgeser_denoiser_info info;

    CHECK_STATUS(edgeser_denoiser_latency(16000, &lat), EDGESER_OK);
    CHECK(lat == 1024u);
    for (r = 0; r < sizeof(rates) / sizeof(rates[0]); ++r) {
        double ms;
        CHECK_STATUS(edgeser_denoiser_size(rates[r], &bytes), EDGESER_OK);
        CHECK_STATUS(edgeser_denoiser_latency(rates[r], &lat), EDGESER_OK);
        CHECK((lat & (lat - 1u)) == 0u);
        ms = 1000.0 * (double)lat / rates[r];
        CHECK(ms <= EDGESER_DENOISE_FRAME_MAX_MS && ms > EDGESER_DENOISE_FRAME_MAX_MS / 2.0);
        CHECK_STATUS(edgeser_denoiser_create(rates[r], &d), EDGESER_OK);
        CHECK_STATUS(edgeser_denoiser_info_get(d, &info), EDGESER_OK);
        CHECK(info.rate_hz == rates[r] && info.latency == lat && info.frame == lat &&
              info.hop == lat / 2u && info.memory_bytes == bytes);
        edgeser_denoiser_destroy(d);
    }
    CHECK_STATUS(edgeser_denoiser_size(EDGESER_DENOISE_MIN_RATE_HZ - 1u, &bytes), EDGESER_ERR_RATE);
    CHECK_STATUS(edgeser_denoiser_size(EDGESER_DENOISE_MAX_RATE_HZ + 1u, &bytes), EDGESER_ERR_RATE);
    CHECK_STATUS(edgeser_denoiser_latency(0u, &lat), EDGESER_ERR_RATE);
    CHECK_STATUS(edgeser_denoiser_create(4000u, &d), EDGESER_ERR_RATE);
    CHECK_STATUS(edgeser_denoiser_size(16000, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_denoiser_latency(16000, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_denoiser_create(16000, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_denoiser_process(NULL, NULL, NULL, 0), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_denoiser_reset(NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_denoiser_info_get(NULL, &info), EDGESER_ERR_NULL);
    edgeser_denoiser_destroy(NULL);
}

/* Caller memory: too small refused, misaligned refused, exact size works (ASan sees any
 * access past it), and the object equals a heap one. */
static void test_caller_memory(void)
{
    size_t bytes = 0, n = 20000, i, lat = 0, got = 0;
    void *mem;
    edgeser_denoiser *d = NULL;
    float *x = (float *)malloc(n * sizeof(float)), *a = (float *)malloc(n * sizeof(float)), *b;

    for (i = 0; i < n; ++i) {
        x[i] = 0.1f * gaussian();
    }
    CHECK_STATUS(edgeser_denoiser_size(16000, &bytes), EDGESER_OK);
    mem = malloc(bytes);
    CHECK_STATUS(edgeser_denoiser_init(mem, bytes - 1u, 16000, &d), EDGESER_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(edgeser_denoiser_init((char *)mem + 4, bytes - 4u, 16000, &d),
                 EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_denoiser_init(NULL, bytes, 16000, &d), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_denoiser_init(mem, bytes, 16000, &d), EDGESER_OK);
    CHECK((void *)d == mem);
    CHECK_STATUS(edgeser_denoiser_process(d, x, a, n), EDGESER_OK);
    b = run(16000, x, n, &lat);
    CHECK(memcmp(a, b, n * sizeof(float)) == 0);
    {
        float *tail = (float *)malloc(lat * sizeof(float));
        CHECK_STATUS(edgeser_denoiser_flush(d, tail, lat, &got), EDGESER_OK);
        CHECK(got == lat && memcmp(tail, b + n, lat * sizeof(float)) == 0);
        free(tail);
    }
    edgeser_denoiser_destroy(d); /* caller memory: nothing freed */
    free(mem);
    free(x);
    free(a);
    free(b);
}

/* ---------------------------------------------------------------- streaming ------------ */

/* Speech-like test signal: tone bursts with a few harmonics over white noise. */
static float *test_signal(uint32_t rate, size_t n, float noise_rms)
{
    float *x = (float *)malloc(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; ++i) {
        double t = (double)i / rate;
        double burst = fmod(t, 0.6) < 0.35 ? 1.0 : 0.0;
        double f0 = 140.0 + 40.0 * sin(2.0 * PI * 0.7 * t);
        double v = 0.0;
        int h;
        for (h = 1; h <= 8; ++h) {
            v += 0.3 / h * sin(2.0 * PI * f0 * h * t);
        }
        x[i] = (float)(burst * v) + noise_rms * gaussian();
    }
    return x;
}

static void test_chunking(void)
{
    static const uint32_t rates[] = {16000, 44100, 8000};
    size_t r;
    for (r = 0; r < sizeof(rates) / sizeof(rates[0]); ++r) {
        uint32_t rate = rates[r];
        size_t n = rate * 3u, lat = 0, pass;
        float *x = test_signal(rate, n, 0.05f);
        float *ref = run(rate, x, n, &lat);
        for (pass = 0; pass < 4; ++pass) {
            edgeser_denoiser *d = NULL;
            float *out = (float *)malloc((n + lat) * sizeof(float));
            size_t done = 0, got = 0;
            CHECK_STATUS(edgeser_denoiser_create(rate, &d), EDGESER_OK);
            while (done < n) {
                size_t step;
                switch (pass) {
                case 0: step = 1u; break;
                case 1: step = lat / 2u + 1u; break;
                case 2: step = 1u + (size_t)((uniform() + 1.0f) * 700.0f); break;
                default: step = lat * 3u - 1u; break;
                }
                if (step > n - done) {
                    step = n - done;
                }
                if (pass == 3) { /* in place */
                    memcpy(out + done, x + done, step * sizeof(float));
                    CHECK_STATUS(edgeser_denoiser_process(d, out + done, out + done, step),
                                 EDGESER_OK);
                } else {
                    CHECK_STATUS(edgeser_denoiser_process(d, x + done, out + done, step),
                                 EDGESER_OK);
                }
                CHECK_STATUS(edgeser_denoiser_process(d, NULL, NULL, 0), EDGESER_OK);
                done += step;
            }
            CHECK_STATUS(edgeser_denoiser_flush(d, out + n, lat, &got), EDGESER_OK);
            CHECK(memcmp(out, ref, (n + lat) * sizeof(float)) == 0);
            edgeser_denoiser_destroy(d);
            free(out);
        }
        free(ref);
        free(x);
    }
}

/* A tone switched on for 0.4 s in every 0.8 s, as speech pauses (a stationary tone is noise
 * to any suppressor: the noise tracker follows it within its 1.5 s minimum window). */
static int tone_on(double t)
{
    return fmod(t, 0.8) < 0.4;
}

/* Inside the tone's on-periods, away from the switching (a frame either side). */
static int tone_steady(double t, double frame_s)
{
    double u = fmod(t, 0.8);
    return u > frame_s + 0.01 && u < 0.4 - frame_s - 0.01;
}

/* The output lags by exactly `latency`: a loud tone in faint noise, after the estimates
 * settle, matches the input shifted by latency within -25 dB (-44 dB at 8 and 16 kHz when
 * measured; the sine window's side lobes reach bins where the noise is suppressed), at least
 * 10 dB better than shifted by one sample more or less. */
static void test_latency_and_tone(void)
{
    static const uint32_t rates[] = {16000, 8000, 22050, 48000};
    size_t r;
    for (r = 0; r < sizeof(rates) / sizeof(rates[0]); ++r) {
        uint32_t rate = rates[r];
        size_t n = rate * 4u, lat = 0, i, from = rate;
        float *x = (float *)malloc(n * sizeof(float)), *y;
        double err[3] = {0.0, 0.0, 0.0}, sig = 0.0;
        for (i = 0; i < n; ++i) {
            double t = (double)i / rate;
            x[i] = (float)(tone_on(t) * 0.5 * sin(2.0 * PI * 1000.0 * t)) + 0.0005f * gaussian();
        }
        y = run(rate, x, n, &lat);
        CHECK(all_finite(y, n + lat));
        for (i = from; i < n; ++i) {
            int s;
            if (!tone_steady((double)i / rate, (double)lat / rate)) {
                continue;
            }
            for (s = -1; s <= 1; ++s) {
                double e = (double)y[i + lat] - (double)x[(size_t)((long)i + s)];
                err[s + 1] += e * e;
            }
            sig += (double)x[i] * x[i];
        }
        CHECK(sig > 0.0 && err[1] < pow(10.0, -25.0 / 10.0) * sig);
        CHECK(err[1] * 10.0 < err[0] && err[1] * 10.0 < err[2]);
        free(x);
        free(y);
    }
}

/* White noise alone: at least 10 dB less energy once the estimate has settled (1 s), at
 * every frame size. */
static void test_noise_reduction(void)
{
    static const uint32_t rates[] = {16000, 8000, 11025, 44100, 96000};
    size_t r;
    for (r = 0; r < sizeof(rates) / sizeof(rates[0]); ++r) {
        uint32_t rate = rates[r];
        size_t n = rate * 4u, lat = 0, i, from = rate;
        float *x = (float *)malloc(n * sizeof(float)), *y;
        double drop_db;
        for (i = 0; i < n; ++i) {
            x[i] = 0.03f * gaussian();
        }
        y = run(rate, x, n, &lat);
        drop_db = 10.0 * log10(energy(x + from, n - from) / energy(y + from + lat, n - from));
        CHECK(drop_db >= 10.0);
        CHECK(drop_db <= -EDGESER_DENOISE_FLOOR_DB + 1.0); /* never below the floor */
        free(x);
        free(y);
    }
}

/* Speech-like bursts in noise: noise between bursts drops by >= 8 dB while the bursts keep
 * most of their energy (within 3 dB). */
static void test_bursts_in_noise(void)
{
    uint32_t rate = 16000;
    size_t n = rate * 6u, lat = 0, i;
    float *x = test_signal(rate, n, 0.02f), *y = run(rate, x, n, &lat);
    double in_on = 0, out_on = 0, in_off = 0, out_off = 0;
    for (i = rate * 2u; i < n; ++i) {
        double t = fmod((double)i / rate, 0.6);
        double xi = x[i], yi = y[i + lat];
        if (t > 0.05 && t < 0.30) {
            in_on += xi * xi;
            out_on += yi * yi;
        } else if (t > 0.40 && t < 0.55) {
            in_off += xi * xi;
            out_off += yi * yi;
        }
    }
    CHECK(10.0 * log10(in_off / out_off) >= 8.0);
    CHECK(fabs(10.0 * log10(in_on / out_on)) <= 3.0);
    free(x);
    free(y);
}

/* ---------------------------------------------------------------- hostile input -------- */

static void test_silence_dc_clipping(void)
{
    uint32_t rate = 16000;
    size_t n = rate * 4u, lat = 0, i, from = rate * 2u;
    float *x = (float *)malloc(n * sizeof(float)), *y;
    double mean = 0.0;

    /* Digital silence: exactly zero out. */
    memset(x, 0, n * sizeof(float));
    y = run(rate, x, n, &lat);
    for (i = 0; i < n + lat && y[i] == 0.0f; ++i) {
    }
    CHECK(i == n + lat);
    free(y);

    /* Silence, then noise: the estimate follows (minimum statistics) within ~2 s. */
    for (i = 0; i < n; ++i) {
        x[i] = i < rate ? 0.0f : 0.03f * gaussian();
    }
    y = run(rate, x, n, &lat);
    CHECK(all_finite(y, n + lat));
    CHECK(10.0 * log10(energy(x + 3u * rate, rate) / energy(y + 3u * rate + lat, rate)) >= 10.0);
    free(y);

    /* DC offset with a switched tone: finite, the DC attenuated by >= 10 dB, the tone kept
     * within -25 dB where it is steady. */
    for (i = 0; i < n; ++i) {
        double t = (double)i / rate;
        x[i] = 0.5f + (float)(tone_on(t) * 0.3 * sin(2.0 * PI * 440.0 * t));
    }
    y = run(rate, x, n, &lat);
    CHECK(all_finite(y, n + lat));
    for (i = from; i < n; ++i) {
        mean += y[i + lat];
    }
    mean /= (double)(n - from);
    CHECK(fabs(mean) < 0.5 * pow(10.0, -10.0 / 20.0));
    {
        double tone = 0.0, sig = 0.0;
        for (i = from; i < n; ++i) {
            double t = (double)i / rate, ref = 0.3 * sin(2.0 * PI * 440.0 * t);
            if (tone_steady(t, (double)lat / rate)) {
                tone += (y[i + lat] - mean - ref) * (y[i + lat] - mean - ref);
                sig += ref * ref;
            }
        }
        CHECK(sig > 0.0 && tone < pow(10.0, -25.0 / 10.0) * sig);
    }
    free(y);

    /* Clipped full-scale input (a square-ish wave) and values far beyond full scale. */
    for (i = 0; i < n; ++i) {
        float v = (float)(4.0 * sin(2.0 * PI * 300.0 * i / rate)) + 0.1f * gaussian();
        x[i] = v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : v);
        if (i % 997u == 0u) {
            x[i] = i % 2u ? 3.0e38f : -1.0e30f;
        }
    }
    y = run(rate, x, n, &lat);
    CHECK(all_finite(y, n + lat));
    for (i = 0; i < n + lat; ++i) {
        if (!(fabs(y[i]) <= 4.0 * EDGESER_DENOISE_INPUT_LIMIT)) {
            break;
        }
    }
    CHECK(i == n + lat);
    free(y);
    free(x);
}

/* NaN and infinite samples are taken as 0: the output equals that of the zeroed input. */
static void test_nonfinite(void)
{
    uint32_t rate = 16000;
    size_t n = rate * 2u, lat = 0, i;
    float *x = test_signal(rate, n, 0.05f), *z = (float *)malloc(n * sizeof(float)), *a, *b;
    for (i = 0; i < n; ++i) {
        int bad = i % 101u == 0u || (i > 5000u && i < 5600u);
        z[i] = bad ? 0.0f : x[i];
        if (bad) {
            x[i] = i % 3u == 0u ? NAN : (i % 3u == 1u ? INFINITY : -INFINITY);
        }
    }
    a = run(rate, x, n, &lat);
    b = run(rate, z, n, &lat);
    CHECK(all_finite(a, n + lat));
    CHECK(memcmp(a, b, (n + lat) * sizeof(float)) == 0);
    free(a);
    free(b);
    free(x);
    free(z);
}

/* Flush and reset: a too-small flush changes nothing; after flush, process and flush are
 * state errors; after reset the object behaves as new. */
static void test_flush_reset(void)
{
    uint32_t rate = 16000;
    size_t n = 5000, lat = 0, got = 0;
    float *x = test_signal(rate, n, 0.05f), *ref = run(rate, x, n, &lat);
    float *out = (float *)malloc((n + lat) * sizeof(float));
    edgeser_denoiser *d = NULL;

    CHECK_STATUS(edgeser_denoiser_create(rate, &d), EDGESER_OK);
    CHECK_STATUS(edgeser_denoiser_process(d, x, out, n), EDGESER_OK);
    CHECK_STATUS(edgeser_denoiser_process(d, NULL, out, 1), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_denoiser_flush(d, out + n, lat - 1u, &got), EDGESER_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(edgeser_denoiser_flush(d, NULL, lat, &got), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_denoiser_flush(d, out + n, lat, &got), EDGESER_OK);
    CHECK(memcmp(out, ref, (n + lat) * sizeof(float)) == 0);
    CHECK_STATUS(edgeser_denoiser_process(d, x, out, n), EDGESER_ERR_STATE);
    CHECK_STATUS(edgeser_denoiser_flush(d, out, lat, &got), EDGESER_ERR_STATE);
    CHECK_STATUS(edgeser_denoiser_reset(d), EDGESER_OK);
    memset(out, 0, (n + lat) * sizeof(float));
    CHECK_STATUS(edgeser_denoiser_process(d, x, out, n), EDGESER_OK);
    CHECK_STATUS(edgeser_denoiser_flush(d, out + n, lat, &got), EDGESER_OK);
    CHECK(memcmp(out, ref, (n + lat) * sizeof(float)) == 0);
    edgeser_denoiser_destroy(d);
    free(out);
    free(ref);
    free(x);
}

int main(void)
{
    test_fft();
    test_sizes_and_errors();
    test_caller_memory();
    test_chunking();
    test_latency_and_tone();
    test_noise_reduction();
    test_bursts_in_noise();
    test_silence_dc_clipping();
    test_nonfinite();
    test_flush_reset();
    return check_report("test_denoise");
}
