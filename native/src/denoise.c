/*
 * Streaming noise suppressor (see the header for the contract).
 *
 * Stream: input is gathered in blocks of hop = frame/2 samples at the end of a frame buffer
 * that holds the last `frame` input samples. Each full block runs one frame: window (sqrt
 * Hann), real FFT, gain per bin, inverse FFT, window again, overlap-add with the previous
 * frame's second half. The first half of that sum is complete and waits in `outq` while the
 * next block is gathered, one output sample per input sample: so output trails input by
 * exactly one frame, and nothing depends on how the input was chunked.
 *
 * Per frame and bin k, with P = |Y|^2 the periodogram (all time constants are in seconds and
 * turned into per-frame factors at init, so behaviour does not depend on the rate):
 *
 *  1. S: P smoothed over 3 bins and over time; Smin: its minimum over the last MIN_WINDOW_S
 *     seconds, from SUBWINDOWS sub-window minima (Martin's minimum statistics tracking).
 *  2. Speech presence for the gain (MCRA): the indicator S > PRESENCE_RATIO * Smin, smoothed
 *     over time into `presence`.
 *  3. Noise power N: recursive averaging of P weighted by the a-posteriori probability that
 *     the bin holds noise only under a fixed speech SNR (NOISE_SPEECH_SNR_DB), with a guard
 *     against the probability sticking at 1; then N >= Smin, so a noise that rises is
 *     followed within MIN_WINDOW_S even when every bin looks like speech.
 *  4. a-posteriori SNR g = P / N; a-priori SNR xi decision-directed from the previous frame's
 *     clean estimate, its weight lower after low-SNR frames (fast onsets) and at most DD_MAX.
 *  5. Gain: the log-spectral amplitude estimator G1 = xi/(1+xi) exp(E1(v)/2), v = g xi/(1+xi),
 *     combined with the floor as G1^p Gmin^(1-p) by the conditional probability p of speech
 *     presence (optimally modified LSA), with a-priori absence probability 1 - presence.
 *
 * Every division has a floored denominator and every ratio a ceiling, so any finite input
 * keeps the state finite; the input is sanitised before it enters the frame buffer.
 */
#include "edgeser/frontend.h"
#include "fft.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DENOISER_MAGIC 0x6564646eu /* "eddn" */

/* Tuned constants (benchmarks/denoise.py documents how). */
#define SMOOTH_S 0.072          /* time constant of S */
#define MIN_WINDOW_S 1.5        /* span of the minimum search */
#define SUBWINDOWS 8u           /* sub-windows of the minimum search */
#define PRESENCE_RATIO 5.0f     /* S / Smin above this: speech present */
#define PRESENCE_S 0.010        /* time constant of the presence average */
#define ABSENCE_MAX 0.5f        /* a-priori speech absence probability, upper bound */
#define NOISE_S 0.072           /* time constant of the noise average */
#define NOISE_SPEECH_SNR_DB 15.0 /* speech SNR assumed by the noise tracker's presence test */
#define NOISE_PRIOR 0.7f        /* prior probability of speech in the noise tracker */
#define STUCK_LIMIT 0.99f       /* presence probability cap once it has stayed above it */
#define INIT_S 0.1              /* noise = plain average of the first frames of this span */
#define DD_MAX 0.95f            /* decision-directed weight after high-SNR frames */
#define DD_MIN 0.93f            /* ... and after low-SNR frames */
#define XI_MIN_DB (-25.0)       /* a-priori SNR floor */
#define SNR_MAX 1.0e4f          /* ceiling of every SNR */
#define NOISE_FLOOR 1.0e-12f    /* per-sample power floor (-120 dBFS) */

typedef struct bins {
    float *power;    /* P */
    float *smooth;   /* S */
    float *sub_min;  /* running minimum of the current sub-window */
    float *ring;     /* SUBWINDOWS sub-window minima, SUBWINDOWS * bins */
    float *presence; /* MCRA speech presence */
    float *noise;    /* N */
    float *stuck;    /* smoothed noise-tracker presence probability */
    float *clean;    /* previous frame's clean power estimate G1^2 P */
    float *gain;     /* this frame's gain */
} bins;

struct edgeser_denoiser {
    uint32_t magic;
    int owns_memory;
    uint32_t rate_hz;
    size_t frame, hop, nbins, state_bytes;
    /* Per-frame factors derived from the time constants. */
    float a_smooth, a_presence, a_noise, a_stuck;
    float noise_floor, xi_min, gain_min, log_gain_min, noise_prior_ratio, speech_snr;
    uint32_t sub_frames, init_frames;
    /* Tables and buffers. */
    float *window;   /* frame: sqrt-Hann */
    float *twiddles; /* edgeser_rfft_table_floats_(frame) */
    uint32_t *bitrev;/* frame / 2 */
    float *input;    /* frame: the last `frame` input samples */
    float *work;     /* frame: FFT buffer */
    float *tail;     /* hop: second half of the previous synthesised frame */
    float *outq;     /* hop: output samples of the current block */
    bins b;
    /* Stream state. */
    size_t fill;     /* input samples in the current block */
    uint64_t frames; /* frames run since init/reset */
    uint32_t sub_count, ring_pos;
    int flushed;
};

/* ---------------------------------------------------------------- layout --------------- */

typedef struct layout {
    size_t frame, hop, nbins;
    size_t off_floats, n_floats, off_bitrev, total;
} layout;

static size_t frame_for(uint32_t rate_hz)
{
    size_t n = 256u; /* 32 ms at 8 kHz: the smallest frame used */
    while ((uint64_t)n * 2u * 1000u <= (uint64_t)rate_hz * EDGESER_DENOISE_FRAME_MAX_MS) {
        n *= 2u;
    }
    return n;
}

static edgeser_status plan(uint32_t rate_hz, layout *lay)
{
    if (rate_hz < EDGESER_DENOISE_MIN_RATE_HZ || rate_hz > EDGESER_DENOISE_MAX_RATE_HZ) {
        return EDGESER_ERR_RATE;
    }
    lay->frame = frame_for(rate_hz);
    lay->hop = lay->frame / 2u;
    lay->nbins = lay->hop + 1u;
    /* Sizes are bounded by the rate range (frame <= 16384), so nothing here overflows. */
    lay->off_floats = edgeser_align_up_(sizeof(struct edgeser_denoiser));
    lay->n_floats = 3u * lay->frame + edgeser_rfft_table_floats_(lay->frame) + 2u * lay->hop +
                    (8u + SUBWINDOWS) * lay->nbins;
    lay->off_bitrev = edgeser_align_up_(lay->off_floats + lay->n_floats * sizeof(float));
    lay->total = edgeser_align_up_(lay->off_bitrev + (lay->frame / 2u) * sizeof(uint32_t));
    return EDGESER_OK;
}

static int valid(const edgeser_denoiser *d)
{
    return d != NULL && d->magic == DENOISER_MAGIC;
}

/* The plan's `total` (bytes) or `frame` (latency) for `rate_hz` into *value. */
static edgeser_status query(uint32_t rate_hz, size_t *value, int latency)
{
    layout lay;
    edgeser_status st;
    if (value == NULL) {
        return EDGESER_ERR_NULL;
    }
    st = plan(rate_hz, &lay);
    if (st == EDGESER_OK) {
        *value = latency ? lay.frame : lay.total;
    }
    return st;
}

EDGESER_API edgeser_status edgeser_denoiser_size(uint32_t rate_hz, size_t *bytes)
{
    return query(rate_hz, bytes, 0);
}

EDGESER_API edgeser_status edgeser_denoiser_latency(uint32_t rate_hz, size_t *samples)
{
    return query(rate_hz, samples, 1);
}

static void clear_stream(edgeser_denoiser *d)
{
    size_t k;
    memset(d->input, 0, d->frame * sizeof(float));
    memset(d->tail, 0, d->hop * sizeof(float));
    memset(d->outq, 0, d->hop * sizeof(float));
    for (k = 0; k < d->nbins; ++k) {
        d->b.presence[k] = 0.0f;
        d->b.stuck[k] = 0.0f;
        d->b.clean[k] = 0.0f;
        d->b.noise[k] = 0.0f;
    }
    d->fill = 0u;
    d->frames = 0u;
    d->sub_count = 0u;
    d->ring_pos = 0u;
    d->flushed = 0;
}

static float per_frame(double hop_s, double tau_s)
{
    return (float)exp(-hop_s / tau_s);
}

EDGESER_API edgeser_status edgeser_denoiser_init(void *mem, size_t bytes, uint32_t rate_hz,
                                                 edgeser_denoiser **out)
{
    layout lay;
    edgeser_status st;
    edgeser_denoiser *d;
    unsigned char *base = (unsigned char *)mem;
    float *f;
    size_t i;
    double hop_s, speech_snr;

    if (mem == NULL || out == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (((uintptr_t)mem & 15u) != 0u) {
        return EDGESER_ERR_ARGUMENT;
    }
    st = plan(rate_hz, &lay);
    if (st != EDGESER_OK) {
        return st;
    }
    if (bytes < lay.total) {
        return EDGESER_ERR_BUFFER_TOO_SMALL;
    }
    d = (edgeser_denoiser *)base;
    memset(d, 0, sizeof(*d));
    d->rate_hz = rate_hz;
    d->frame = lay.frame;
    d->hop = lay.hop;
    d->nbins = lay.nbins;
    d->state_bytes = lay.total;

    f = (float *)(base + lay.off_floats);
    d->window = f;
    f += d->frame;
    d->input = f;
    f += d->frame;
    d->work = f;
    f += d->frame;
    d->twiddles = f;
    f += edgeser_rfft_table_floats_(d->frame);
    d->tail = f;
    f += d->hop;
    d->outq = f;
    f += d->hop;
    d->b.power = f;
    f += d->nbins;
    d->b.smooth = f;
    f += d->nbins;
    d->b.sub_min = f;
    f += d->nbins;
    d->b.presence = f;
    f += d->nbins;
    d->b.noise = f;
    f += d->nbins;
    d->b.stuck = f;
    f += d->nbins;
    d->b.clean = f;
    f += d->nbins;
    d->b.gain = f;
    f += d->nbins;
    d->b.ring = f;
    d->bitrev = (uint32_t *)(base + lay.off_bitrev);

    for (i = 0; i < d->frame; ++i) {
        d->window[i] = (float)sin(3.14159265358979323846 * (double)i / (double)d->frame);
    }
    edgeser_rfft_init_(d->frame, d->twiddles, d->bitrev);

    hop_s = (double)d->hop / (double)rate_hz;
    d->a_smooth = per_frame(hop_s, SMOOTH_S);
    d->a_presence = per_frame(hop_s, PRESENCE_S);
    d->a_noise = per_frame(hop_s, NOISE_S);
    d->a_stuck = 0.9f;
    d->sub_frames = (uint32_t)(MIN_WINDOW_S / (SUBWINDOWS * hop_s) + 0.5);
    if (d->sub_frames == 0u) {
        d->sub_frames = 1u;
    }
    d->init_frames = (uint32_t)(INIT_S / hop_s + 0.5);
    if (d->init_frames == 0u) {
        d->init_frames = 1u;
    }
    /* Periodogram of white noise of variance s: s * sum(window^2) = s * frame / 2. */
    d->noise_floor = NOISE_FLOOR * (float)d->hop;
    d->xi_min = (float)pow(10.0, XI_MIN_DB / 10.0);
    d->gain_min = (float)pow(10.0, EDGESER_DENOISE_FLOOR_DB / 20.0);
    d->log_gain_min = (float)log((double)d->gain_min);
    speech_snr = pow(10.0, NOISE_SPEECH_SNR_DB / 10.0);
    d->speech_snr = (float)(speech_snr / (1.0 + speech_snr));
    d->noise_prior_ratio = (float)((1.0 - NOISE_PRIOR) / NOISE_PRIOR * (1.0 + speech_snr));

    clear_stream(d);
    d->magic = DENOISER_MAGIC;
    *out = d;
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_denoiser_create(uint32_t rate_hz, edgeser_denoiser **out)
{
    size_t bytes;
    void *mem;
    edgeser_status st;

    if (out == NULL) {
        return EDGESER_ERR_NULL;
    }
    st = edgeser_denoiser_size(rate_hz, &bytes);
    if (st != EDGESER_OK) {
        return st;
    }
    mem = malloc(bytes);
    if (mem == NULL) {
        return EDGESER_ERR_NOMEM;
    }
    st = edgeser_denoiser_init(mem, bytes, rate_hz, out);
    if (st != EDGESER_OK) {
        free(mem);
        return st;
    }
    (*out)->owns_memory = 1;
    return EDGESER_OK;
}

EDGESER_API void edgeser_denoiser_destroy(edgeser_denoiser *d)
{
    if (!valid(d)) {
        return;
    }
    d->magic = 0u;
    if (d->owns_memory) {
        free(d);
    }
}

EDGESER_API edgeser_status edgeser_denoiser_info_get(const edgeser_denoiser *d,
                                                     edgeser_denoiser_info *info)
{
    if (d == NULL || info == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!valid(d)) {
        return EDGESER_ERR_STATE;
    }
    info->rate_hz = d->rate_hz;
    info->frame = d->frame;
    info->hop = d->hop;
    info->latency = d->frame;
    info->memory_bytes = d->state_bytes;
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_denoiser_reset(edgeser_denoiser *d)
{
    if (d == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!valid(d)) {
        return EDGESER_ERR_STATE;
    }
    clear_stream(d);
    return EDGESER_OK;
}

/* ---------------------------------------------------------------- the frame ------------ */

/* E1(x), the exponential integral, for x > 0 (Abramowitz & Stegun 5.1.53 and 5.1.56, relative
 * error below 5e-5, which the gain's exp(E1/2) halves). */
static float expint1(float x)
{
    if (x < 1.0f) {
        return -logf(x) +
               (-0.57721566f +
                x * (0.99999193f +
                     x * (-0.24991055f + x * (0.05519968f + x * (-0.00976004f + x * 0.00107857f)))));
    }
    return expf(-x) / x * ((x * x + 2.334733f * x + 0.250621f) / (x * x + 3.330657f * x + 1.681534f));
}

static float min_f(float a, float b)
{
    return a < b ? a : b;
}

static float max_f(float a, float b)
{
    return a > b ? a : b;
}

/* Steps 1 to 3 of the file comment: S, Smin, presence and the noise power. */
static void track_noise(edgeser_denoiser *d)
{
    const bins *b = &d->b;
    size_t k, K = d->nbins, u;
    int first = d->frames == 0u;
    int closing = d->sub_count + 1u >= d->sub_frames;

    for (k = 0; k < K; ++k) {
        float lo = b->power[k == 0u ? 1u : k - 1u], hi = b->power[k + 1u < K ? k + 1u : K - 2u];
        float sf = 0.25f * lo + 0.5f * b->power[k] + 0.25f * hi, s, smin, p;

        s = first ? sf : d->a_smooth * b->smooth[k] + (1.0f - d->a_smooth) * sf;
        s = max_f(s, d->noise_floor);
        b->smooth[k] = s;
        if (first) {
            for (u = 0; u < SUBWINDOWS; ++u) {
                b->ring[u * K + k] = s;
            }
            b->sub_min[k] = s;
        }
        b->sub_min[k] = min_f(b->sub_min[k], s);
        smin = b->sub_min[k];
        for (u = 0; u < SUBWINDOWS; ++u) {
            smin = min_f(smin, b->ring[u * K + k]);
        }
        if (closing) {
            b->ring[d->ring_pos * K + k] = b->sub_min[k];
            b->sub_min[k] = s;
        }

        p = s > PRESENCE_RATIO * smin ? 1.0f : 0.0f;
        b->presence[k] = d->a_presence * b->presence[k] + (1.0f - d->a_presence) * p;

        if (d->frames < d->init_frames) {
            /* The plain average of the first frames. */
            float w = 1.0f / (float)(d->frames + 1u);
            b->noise[k] = (1.0f - w) * b->noise[k] + w * b->power[k];
        } else {
            float n = b->noise[k];
            float g = min_f(b->power[k] / n, SNR_MAX);
            float ph1 = 1.0f / (1.0f + d->noise_prior_ratio * expf(-min_f(g * d->speech_snr, 80.0f)));
            b->stuck[k] = d->a_stuck * b->stuck[k] + (1.0f - d->a_stuck) * ph1;
            if (b->stuck[k] > STUCK_LIMIT) {
                ph1 = min_f(ph1, STUCK_LIMIT);
            }
            n = d->a_noise * n + (1.0f - d->a_noise) * ((1.0f - ph1) * b->power[k] + ph1 * n);
            b->noise[k] = n;
        }
        b->noise[k] = max_f(max_f(b->noise[k], smin), d->noise_floor);
    }
    if (closing) {
        d->ring_pos = (d->ring_pos + 1u) % SUBWINDOWS;
        d->sub_count = 0u;
    } else {
        d->sub_count += 1u;
    }
}

/* Steps 4 and 5: the gain per bin into b->gain. */
static void compute_gain(edgeser_denoiser *d)
{
    const bins *b = &d->b;
    size_t k;

    for (k = 0; k < d->nbins; ++k) {
        float n = b->noise[k], pw = b->power[k];
        float g = min_f(pw / n, SNR_MAX);
        float prev = min_f(b->clean[k] / n, SNR_MAX);
        float r = prev / (1.0f + prev);
        float a = DD_MIN + (DD_MAX - DD_MIN) * r * r;
        float xi = a * prev + (1.0f - a) * max_f(g - 1.0f, 0.0f);
        float ratio, v, g1, q, p, lg;

        xi = max_f(xi, d->xi_min);
        ratio = xi / (1.0f + xi);
        v = max_f(g * ratio, 1.0e-6f);
        g1 = min_f(ratio * expf(0.5f * expint1(v)), 1.0f);
        b->clean[k] = g1 * g1 * pw;

        q = min_f(1.0f - b->presence[k], ABSENCE_MAX);
        p = 1.0f / (1.0f + q / (1.0f - q) * (1.0f + xi) * expf(-min_f(v, 80.0f)));
        lg = p * logf(max_f(g1, d->gain_min)) + (1.0f - p) * d->log_gain_min;
        b->gain[k] = max_f(expf(lg), d->gain_min);
    }
}

static void run_frame(edgeser_denoiser *d)
{
    float *w = d->work;
    size_t i, N = d->frame, H = d->hop, K = d->nbins;

    for (i = 0; i < N; ++i) {
        w[i] = d->input[i] * d->window[i];
    }
    edgeser_rfft_forward_(w, N, d->twiddles, d->bitrev);
    d->b.power[0] = w[0] * w[0];
    d->b.power[K - 1u] = w[1] * w[1];
    for (i = 1; i + 1u < K; ++i) {
        d->b.power[i] = w[2u * i] * w[2u * i] + w[2u * i + 1u] * w[2u * i + 1u];
    }
    track_noise(d);
    compute_gain(d);
    w[0] *= d->b.gain[0];
    w[1] *= d->b.gain[K - 1u];
    for (i = 1; i + 1u < K; ++i) {
        w[2u * i] *= d->b.gain[i];
        w[2u * i + 1u] *= d->b.gain[i];
    }
    edgeser_rfft_inverse_(w, N, d->twiddles, d->bitrev);
    for (i = 0; i < H; ++i) {
        d->outq[i] = d->tail[i] + w[i] * d->window[i];
        d->tail[i] = w[H + i] * d->window[H + i];
    }
    memcpy(d->input, d->input + H, (N - H) * sizeof(float));
    d->frames += 1u;
}

/* ---------------------------------------------------------------- streaming ------------ */

static float sanitize(float x)
{
    if (x >= -EDGESER_DENOISE_INPUT_LIMIT && x <= EDGESER_DENOISE_INPUT_LIMIT) {
        return x;
    }
    if (isnan(x) || isinf(x)) {
        return 0.0f;
    }
    return x > 0.0f ? EDGESER_DENOISE_INPUT_LIMIT : -EDGESER_DENOISE_INPUT_LIMIT;
}

/* `in` NULL: zeros. */
static void stream(edgeser_denoiser *d, const float *in, float *out, size_t n)
{
    size_t done = 0u;
    while (done < n) {
        size_t i, m = d->hop - d->fill;
        float *dst = d->input + (d->frame - d->hop) + d->fill;
        if (m > n - done) {
            m = n - done;
        }
        /* Read every input sample of the segment before writing its outputs: out may be in. */
        for (i = 0; i < m; ++i) {
            dst[i] = in != NULL ? sanitize(in[done + i]) : 0.0f;
        }
        memcpy(out + done, d->outq + d->fill, m * sizeof(float));
        d->fill += m;
        done += m;
        if (d->fill == d->hop) {
            run_frame(d);
            d->fill = 0u;
        }
    }
}

EDGESER_API edgeser_status edgeser_denoiser_process(edgeser_denoiser *d, const float *in,
                                                    float *out, size_t n)
{
    if (d == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!valid(d) || d->flushed) {
        return EDGESER_ERR_STATE;
    }
    if (n == 0u) {
        return EDGESER_OK;
    }
    if (in == NULL || out == NULL) {
        return EDGESER_ERR_NULL;
    }
    stream(d, in, out, n);
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_denoiser_flush(edgeser_denoiser *d, float *out,
                                                  size_t out_capacity, size_t *n_out)
{
    if (d == NULL || out == NULL || n_out == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!valid(d) || d->flushed) {
        return EDGESER_ERR_STATE;
    }
    if (out_capacity < d->frame) {
        return EDGESER_ERR_BUFFER_TOO_SMALL;
    }
    stream(d, NULL, out, d->frame);
    d->flushed = 1;
    *n_out = d->frame;
    return EDGESER_OK;
}
