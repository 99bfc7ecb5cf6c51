/*
 * Streaming polyphase windowed-sinc resampler to 16 kHz.
 *
 * Output sample j is the band-limited input evaluated at input position t_j = j * M / L
 * (L/M = 16000/rate in lowest terms), so the filter delay never shows in the output:
 *
 *     y[j] = sum_i x[i] * g(t_j - i),    g(tau) = 2 fc/r * sinc(2 fc/r * tau) * kaiser(tau / H)
 *
 * with |tau| < H input samples. Writing t_j = q + p/L, the coefficients depend only on the
 * phase p, so they are tabulated per phase ("row"): row r holds g(r/P + H - 1 - k) for
 * k = 0..T-1 (T = 2H), applied to input samples q-H+1 .. q+H. g is even, hence
 * row[P - r][k] == row[r][T - 1 - k]: only rows 0..P/2 are stored. When all L phases fit the
 * table budget, P = L and every coefficient is exact; otherwise P is the largest even count
 * that fits and coefficients are linearly interpolated between neighbouring rows (timing is
 * still exact; the measured effect is in the README of the frontend).
 *
 * Input is kept in a history buffer indexed by "virtual" position v = i + H - 1, so the H - 1
 * zeros before the first sample are ordinary stored samples and output j reads v = q..q+T-1.
 * Every output sample is computed by the same code from the same values whatever the chunking,
 * so streamed output is bit-identical to one-shot output.
 */
#include "edgeser/frontend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RESAMPLER_MAGIC 0x65647273u /* "edrs" */
/* Design rejection of the Kaiser estimate (measured alias rejection in the README). */
#define STOPBAND_DB 130.0
/* Transition band as a fraction of the lower Nyquist frequency. Downsampling keeps 92.5% of
 * the 8 kHz band (passband to 7.31 kHz, stopband from 8 kHz: the band edges of soxr HQ, so the
 * two agree on real audio); upsampling from low rates uses a wider
 * band since the input holds nothing near its own Nyquist worth keeping. */
#define TRANSITION_DOWN 0.0864
#define TRANSITION_UP 0.10
/* New input samples staged per inner pass; history moves once per pass. */
#define STAGE_SAMPLES 4096u
#define ALIGN_BYTES 64u

struct edgeser_resampler {
    uint32_t magic;
    uint32_t rate_in_hz;
    uint32_t up;            /* L */
    uint32_t down;          /* M */
    uint32_t half;          /* H */
    uint32_t taps;          /* T = 2H */
    uint32_t phases;        /* P */
    uint32_t rows;          /* P/2 + 1 stored rows */
    int exact;
    int finished;
    int owns_memory;
    double passband_hz;
    double stopband_hz;
    size_t state_bytes;
    float *table;           /* rows * taps */
    float *hist;            /* hist_cap samples */
    size_t hist_cap;
    size_t hist_len;
    uint64_t hist_start;    /* virtual position of hist[0] */
    uint64_t consumed;      /* input samples taken since init/reset */
    uint64_t emitted;       /* output samples written since init/reset */
    uint64_t q;             /* floor(emitted * M / L) */
    uint32_t p;             /* emitted * M mod L */
};

typedef struct design {
    uint32_t up, down, half, taps, phases, rows;
    int identity;
    double cutoff_hz, passband_hz, stopband_hz, beta;
    size_t table_bytes, hist_cap, state_bytes;
} design;

static uint32_t gcd_u32(uint32_t a, uint32_t b) {
    while (b != 0) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static size_t align_up(size_t n) { return (n + (ALIGN_BYTES - 1)) & ~(size_t)(ALIGN_BYTES - 1); }

/* a * b, or 0 with *overflow set. */
static uint64_t mul_u64(uint64_t a, uint64_t b, int *overflow) {
    if (a != 0 && b > UINT64_MAX / a) {
        *overflow = 1;
        return 0;
    }
    return a * b;
}

static edgeser_status make_design(uint32_t rate_in_hz, design *d) {
    const double pi = 3.14159265358979323846;
    double nyquist_hz, transition_hz, width;
    uint32_t g;
    size_t row_bytes, budget_rows;

    if (rate_in_hz < EDGESER_MIN_RATE_HZ || rate_in_hz > EDGESER_MAX_RATE_HZ) return EDGESER_ERR_RATE;
    memset(d, 0, sizeof(*d));
    g = gcd_u32(EDGESER_TARGET_RATE_HZ, rate_in_hz);
    d->up = EDGESER_TARGET_RATE_HZ / g;
    d->down = rate_in_hz / g;
    d->identity = (rate_in_hz == EDGESER_TARGET_RATE_HZ);
    nyquist_hz = 0.5 * (double)(rate_in_hz < EDGESER_TARGET_RATE_HZ ? rate_in_hz : EDGESER_TARGET_RATE_HZ);
    transition_hz = nyquist_hz * (rate_in_hz < EDGESER_TARGET_RATE_HZ ? TRANSITION_UP : TRANSITION_DOWN);
    d->stopband_hz = nyquist_hz;
    d->passband_hz = nyquist_hz - transition_hz;
    d->cutoff_hz = nyquist_hz - 0.5 * transition_hz;
    d->beta = 0.1102 * (STOPBAND_DB - 8.7);
    if (d->identity) {
        d->half = 1;
        d->passband_hz = d->stopband_hz = nyquist_hz;
    } else {
        /* Kaiser's length estimate, in input samples. */
        width = (STOPBAND_DB - 8.0) * (double)rate_in_hz / (2.285 * 2.0 * pi * transition_hz);
        d->half = (uint32_t)ceil(0.5 * width) + 1u;
    }
    d->taps = 2u * d->half;
    row_bytes = (size_t)d->taps * sizeof(float);
    budget_rows = EDGESER_TABLE_BUDGET_BYTES / row_bytes;
    if ((size_t)d->up / 2u + 1u <= budget_rows) {
        d->phases = d->up;
    } else {
        if (budget_rows < 2u) return EDGESER_ERR_OVERFLOW; /* cannot happen for 1..384 kHz */
        d->phases = (uint32_t)(2u * (budget_rows - 1u));
    }
    d->rows = d->phases / 2u + 1u;
    d->table_bytes = (size_t)d->rows * row_bytes;
    d->hist_cap = (size_t)d->taps - 1u + STAGE_SAMPLES;
    d->state_bytes = align_up(sizeof(struct edgeser_resampler)) + align_up(d->table_bytes) +
                     align_up(d->hist_cap * sizeof(float));
    return EDGESER_OK;
}

static double bessel_i0(double x) {
    double sum = 1.0, term = 1.0, half = 0.5 * x;
    int k;
    for (k = 1; k < 500; ++k) {
        term *= (half / k) * (half / k);
        sum += term;
        if (term < 1e-17 * sum) break;
    }
    return sum;
}

/* The continuous kernel g(tau), tau in input samples. */
static double kernel(const design *d, double rate_in_hz, double tau) {
    const double pi = 3.14159265358979323846;
    double ratio, arg, sinc, ratio_h;
    if (d->identity) return tau == 0.0 ? 1.0 : 0.0;
    ratio_h = tau / (double)d->half;
    if (ratio_h <= -1.0 || ratio_h >= 1.0) return 0.0;
    ratio = 2.0 * d->cutoff_hz / rate_in_hz;
    arg = pi * ratio * tau;
    sinc = (arg == 0.0) ? 1.0 : sin(arg) / arg;
    return ratio * sinc * bessel_i0(d->beta * sqrt(1.0 - ratio_h * ratio_h)) / bessel_i0(d->beta);
}

edgeser_status edgeser_resampler_size(uint32_t rate_in_hz, size_t *bytes) {
    design d;
    edgeser_status st;
    if (bytes == NULL) return EDGESER_ERR_NULL;
    st = make_design(rate_in_hz, &d);
    if (st != EDGESER_OK) return st;
    *bytes = d.state_bytes;
    return EDGESER_OK;
}

static void clear_stream(edgeser_resampler *r) {
    /* H - 1 zeros stand for the signal before time zero. */
    r->hist_len = (size_t)r->half - 1u;
    memset(r->hist, 0, r->hist_len * sizeof(float));
    r->hist_start = 0;
    r->consumed = 0;
    r->emitted = 0;
    r->q = 0;
    r->p = 0;
    r->finished = 0;
}

edgeser_status edgeser_resampler_init(void *mem, size_t bytes, uint32_t rate_in_hz,
                                      edgeser_resampler **out) {
    design d;
    edgeser_status st;
    edgeser_resampler *r;
    unsigned char *base = (unsigned char *)mem;
    uint32_t row, k;

    if (mem == NULL || out == NULL) return EDGESER_ERR_NULL;
    if (((uintptr_t)mem & 15u) != 0u) return EDGESER_ERR_ARGUMENT;
    st = make_design(rate_in_hz, &d);
    if (st != EDGESER_OK) return st;
    if (bytes < d.state_bytes) return EDGESER_ERR_BUFFER_TOO_SMALL;

    r = (edgeser_resampler *)base;
    memset(r, 0, sizeof(*r));
    r->rate_in_hz = rate_in_hz;
    r->up = d.up;
    r->down = d.down;
    r->half = d.half;
    r->taps = d.taps;
    r->phases = d.phases;
    r->rows = d.rows;
    r->exact = (d.phases == d.up);
    r->passband_hz = d.passband_hz;
    r->stopband_hz = d.stopband_hz;
    r->state_bytes = d.state_bytes;
    r->table = (float *)(base + align_up(sizeof(struct edgeser_resampler)));
    r->hist = (float *)(base + align_up(sizeof(struct edgeser_resampler)) + align_up(d.table_bytes));
    r->hist_cap = d.hist_cap;
    for (row = 0; row < d.rows; ++row) {
        double frac = (double)row / (double)d.phases;
        for (k = 0; k < d.taps; ++k) {
            double tau = frac + (double)d.half - 1.0 - (double)k;
            r->table[(size_t)row * d.taps + k] = (float)kernel(&d, (double)rate_in_hz, tau);
        }
    }
    clear_stream(r);
    r->magic = RESAMPLER_MAGIC;
    *out = r;
    return EDGESER_OK;
}

edgeser_status edgeser_resampler_create(uint32_t rate_in_hz, edgeser_resampler **out) {
    size_t bytes;
    void *mem;
    edgeser_status st;
    if (out == NULL) return EDGESER_ERR_NULL;
    st = edgeser_resampler_size(rate_in_hz, &bytes);
    if (st != EDGESER_OK) return st;
    /* malloc guarantees alignment for any standard type (>= 16 bytes on supported targets). */
    mem = malloc(bytes);
    if (mem == NULL) return EDGESER_ERR_NOMEM;
    st = edgeser_resampler_init(mem, bytes, rate_in_hz, out);
    if (st != EDGESER_OK) {
        free(mem);
        return st;
    }
    (*out)->owns_memory = 1;
    return EDGESER_OK;
}

void edgeser_resampler_destroy(edgeser_resampler *r) {
    if (r == NULL || r->magic != RESAMPLER_MAGIC) return;
    r->magic = 0;
    if (r->owns_memory) free(r);
}

static int valid(const edgeser_resampler *r) { return r != NULL && r->magic == RESAMPLER_MAGIC; }

edgeser_status edgeser_resampler_info_get(const edgeser_resampler *r, edgeser_resampler_info *info) {
    if (r == NULL || info == NULL) return EDGESER_ERR_NULL;
    if (!valid(r)) return EDGESER_ERR_STATE;
    memset(info, 0, sizeof(*info));
    info->rate_in_hz = r->rate_in_hz;
    info->rate_out_hz = EDGESER_TARGET_RATE_HZ;
    info->up = r->up;
    info->down = r->down;
    info->taps_per_phase = r->taps;
    info->phases = r->phases;
    info->exact = r->exact;
    info->passband_hz = r->passband_hz;
    info->stopband_hz = r->stopband_hz;
    info->stopband_db = STOPBAND_DB;
    info->table_bytes = (size_t)r->rows * r->taps * sizeof(float);
    info->state_bytes = r->state_bytes;
    return EDGESER_OK;
}

edgeser_status edgeser_resampler_reset(edgeser_resampler *r) {
    if (r == NULL) return EDGESER_ERR_NULL;
    if (!valid(r)) return EDGESER_ERR_STATE;
    clear_stream(r);
    return EDGESER_OK;
}

/* Outputs j (counted from 0) with t_j < limit_num / L, i.e. j * M < limit_num: ceil(limit/M). */
static uint64_t outputs_below(uint64_t limit_num, uint32_t down) {
    return limit_num / down + (limit_num % down != 0u);
}

/* Total outputs computable once the history reaches virtual position `end` (exclusive):
 * those with q_j + T <= end. */
static edgeser_status ready_total(const edgeser_resampler *r, uint64_t end, uint64_t *total) {
    int overflow = 0;
    uint64_t limit;
    if (end < r->taps) {
        *total = 0;
        return EDGESER_OK;
    }
    /* q_j <= end - T  <=>  j * M < (end - T + 1) * L */
    limit = mul_u64(end - r->taps + 1u, r->up, &overflow);
    if (overflow) return EDGESER_ERR_OVERFLOW;
    *total = outputs_below(limit, r->down);
    return EDGESER_OK;
}

static edgeser_status flush_total(const edgeser_resampler *r, uint64_t *total) {
    int overflow = 0;
    uint64_t limit = mul_u64(r->consumed, r->up, &overflow);
    if (overflow) return EDGESER_ERR_OVERFLOW;
    *total = outputs_below(limit, r->down);
    return EDGESER_OK;
}

edgeser_status edgeser_resampler_max_output(const edgeser_resampler *r, size_t n_in, size_t *n_out) {
    uint64_t end, total;
    edgeser_status st;
    if (r == NULL || n_out == NULL) return EDGESER_ERR_NULL;
    if (!valid(r) || r->finished) return EDGESER_ERR_STATE;
    if ((uint64_t)n_in > UINT64_MAX - r->consumed - r->half) return EDGESER_ERR_OVERFLOW;
    end = r->consumed + (uint64_t)n_in + r->half - 1u;
    st = ready_total(r, end, &total);
    if (st != EDGESER_OK) return st;
    total = total > r->emitted ? total - r->emitted : 0u;
    if (total > (uint64_t)SIZE_MAX) return EDGESER_ERR_OVERFLOW;
    *n_out = (size_t)total;
    return EDGESER_OK;
}

edgeser_status edgeser_resampler_flush_output(const edgeser_resampler *r, size_t *n_out) {
    uint64_t total;
    edgeser_status st;
    if (r == NULL || n_out == NULL) return EDGESER_ERR_NULL;
    if (!valid(r) || r->finished) return EDGESER_ERR_STATE;
    st = flush_total(r, &total);
    if (st != EDGESER_OK) return st;
    total = total > r->emitted ? total - r->emitted : 0u;
    if (total > (uint64_t)SIZE_MAX) return EDGESER_ERR_OVERFLOW;
    *n_out = (size_t)total;
    return EDGESER_OK;
}

/*
 * Dot products of 16 interleaved lanes (two 8-float accumulators), then a fixed reduction tree.
 * The summation order depends only on the length, never on how input was chunked, so streamed
 * output stays bit-identical to one-shot output. The build uses -std=c99 without
 * -ffp-contract=fast, so no clone fuses multiply and add differently.
 */
#if defined(__GNUC__) && !defined(EDGESER_PORTABLE_DOT)
typedef float v8f __attribute__((vector_size(32)));
#if defined(__clang__)
#define REVERSE8(v) __builtin_shufflevector((v), (v), 7, 6, 5, 4, 3, 2, 1, 0)
#else
typedef int v8i __attribute__((vector_size(32)));
#define REVERSE8(v) __builtin_shuffle((v), (v8i){7, 6, 5, 4, 3, 2, 1, 0})
#endif
/* x86-64 builds target the baseline ISA; an AVX2 clone chosen at load time runs ~3x faster. */
#if defined(__x86_64__) && defined(__linux__) && !defined(__clang__) && !defined(EDGESER_NO_CLONES)
#define DOT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DOT_CLONES
#endif
#define LOAD8(dst, src) memcpy(&(dst), (src), sizeof(v8f))

static float reduce16(const v8f *a0, const v8f *a1, const float *x, const float *c, int step, uint32_t tail) {
    float acc[8];
    uint32_t k;
    v8f sum = *a0 + *a1;
    memcpy(acc, &sum, sizeof acc);
    for (k = 0; k < tail; ++k) acc[k & 7u] += x[k] * c[(long)step * (long)k];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* sum_k x[k] * c[k] */
DOT_CLONES static float dot_forward(const float *x, const float *c, uint32_t n) {
    v8f a0 = {0, 0, 0, 0, 0, 0, 0, 0}, a1 = a0, x0, x1, c0, c1;
    uint32_t k = 0;
    for (; k + 16u <= n; k += 16u) {
        LOAD8(x0, x + k);
        LOAD8(x1, x + k + 8);
        LOAD8(c0, c + k);
        LOAD8(c1, c + k + 8);
        a0 += x0 * c0;
        a1 += x1 * c1;
    }
    return reduce16(&a0, &a1, x + k, c + k, 1, n - k);
}

/* sum_k x[k] * c[n - 1 - k]: a mirrored row. */
DOT_CLONES static float dot_reverse(const float *x, const float *c, uint32_t n) {
    v8f a0 = {0, 0, 0, 0, 0, 0, 0, 0}, a1 = a0, x0, x1, c0, c1;
    const float *end = c + n;
    uint32_t k = 0;
    for (; k + 16u <= n; k += 16u) {
        LOAD8(x0, x + k);
        LOAD8(x1, x + k + 8);
        LOAD8(c0, end - k - 8);
        LOAD8(c1, end - k - 16);
        a0 += x0 * REVERSE8(c0);
        a1 += x1 * REVERSE8(c1);
    }
    return reduce16(&a0, &a1, x + k, end - 1 - k, -1, n - k);
}
#else
/* Portable version with the same lanes and reduction order. */
static float reduce_lanes(float *lane, const float *x, const float *c, int step, uint32_t tail) {
    float acc[8];
    uint32_t k;
    for (k = 0; k < 8u; ++k) acc[k] = lane[k] + lane[k + 8u];
    for (k = 0; k < tail; ++k) acc[k & 7u] += x[k] * c[(long)step * (long)k];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static float dot_forward(const float *x, const float *c, uint32_t n) {
    float lane[16] = {0};
    uint32_t k = 0, l;
    for (; k + 16u <= n; k += 16u)
        for (l = 0; l < 16u; ++l) lane[l] += x[k + l] * c[k + l];
    return reduce_lanes(lane, x + k, c + k, 1, n - k);
}

static float dot_reverse(const float *x, const float *c, uint32_t n) {
    float lane[16] = {0};
    const float *last = c + n - 1u;
    uint32_t k = 0, l;
    for (; k + 16u <= n; k += 16u)
        for (l = 0; l < 16u; ++l) lane[l] += x[k + l] * *(last - k - l);
    return reduce_lanes(lane, x + k, last - k, -1, n - k);
}
#endif

static float apply_row(const edgeser_resampler *r, const float *x, uint32_t row) {
    if (row < r->rows) return dot_forward(x, r->table + (size_t)row * r->taps, r->taps);
    return dot_reverse(x, r->table + (size_t)(r->phases - row) * r->taps, r->taps);
}

static float output_sample(const edgeser_resampler *r, const float *x) {
    uint64_t pos;
    uint32_t row, rem;
    float a, b, frac;
    if (r->exact) return apply_row(r, x, r->p);
    pos = (uint64_t)r->p * r->phases; /* < L * P <= 16000 * 2^17: no overflow */
    row = (uint32_t)(pos / r->up);
    rem = (uint32_t)(pos % r->up);
    a = apply_row(r, x, row);
    if (rem == 0u) return a;
    b = apply_row(r, x, row + 1u);
    frac = (float)((double)rem / (double)r->up);
    return a + frac * (b - a);
}

static void advance(edgeser_resampler *r) {
    r->emitted += 1u;
    r->p += r->down;
    if (r->p >= r->up) {
        r->q += r->p / r->up;
        r->p %= r->up;
    }
}

/* Emit every output with q + T <= history end, up to `total_limit` outputs in all. */
static size_t emit_ready(edgeser_resampler *r, float *out, uint64_t total_limit) {
    size_t n = 0;
    uint64_t end = r->hist_start + r->hist_len;
    while (r->emitted < total_limit && r->q + r->taps <= end) {
        out[n++] = output_sample(r, r->hist + (size_t)(r->q - r->hist_start));
        advance(r);
    }
    return n;
}

/* Drop history no future output reads (positions before q). */
static void discard_used(edgeser_resampler *r) {
    uint64_t drop = r->q > r->hist_start ? r->q - r->hist_start : 0u;
    if (drop > r->hist_len) drop = r->hist_len;
    if (drop == 0u) return;
    memmove(r->hist, r->hist + (size_t)drop, (r->hist_len - (size_t)drop) * sizeof(float));
    r->hist_len -= (size_t)drop;
    r->hist_start += drop;
}

/* Append up to n samples (zeros when in == NULL); returns how many were taken. */
static size_t append(edgeser_resampler *r, const float *in, size_t n) {
    size_t room = r->hist_cap - r->hist_len;
    size_t take = n < room ? n : room;
    if (in != NULL)
        memcpy(r->hist + r->hist_len, in, take * sizeof(float));
    else
        memset(r->hist + r->hist_len, 0, take * sizeof(float));
    r->hist_len += take;
    return take;
}

edgeser_status edgeser_resampler_process(edgeser_resampler *r, const float *in, size_t n_in,
                                         float *out, size_t out_capacity, size_t *n_out) {
    size_t expected, written = 0;
    edgeser_status st;
    if (r == NULL || n_out == NULL) return EDGESER_ERR_NULL;
    if (n_in > 0u && in == NULL) return EDGESER_ERR_NULL;
    st = edgeser_resampler_max_output(r, n_in, &expected);
    if (st != EDGESER_OK) return st;
    if (expected > 0u && out == NULL) return EDGESER_ERR_NULL;
    if (out_capacity < expected) return EDGESER_ERR_BUFFER_TOO_SMALL;
    while (n_in > 0u) {
        size_t take = append(r, in, n_in);
        in += take;
        n_in -= take;
        r->consumed += take;
        written += emit_ready(r, out + written, UINT64_MAX);
        discard_used(r);
    }
    *n_out = written;
    return EDGESER_OK;
}

edgeser_status edgeser_resampler_flush(edgeser_resampler *r, float *out, size_t out_capacity,
                                       size_t *n_out) {
    size_t expected, written = 0;
    uint64_t total;
    edgeser_status st;
    if (r == NULL || n_out == NULL) return EDGESER_ERR_NULL;
    st = edgeser_resampler_flush_output(r, &expected);
    if (st != EDGESER_OK) return st;
    if (expected > 0u && out == NULL) return EDGESER_ERR_NULL;
    if (out_capacity < expected) return EDGESER_ERR_BUFFER_TOO_SMALL;
    st = flush_total(r, &total);
    if (st != EDGESER_OK) return st;
    /* Zeros past the end complete the support of the last outputs (at most H + 1 needed). */
    while (r->emitted < total) {
        append(r, NULL, r->hist_cap - r->hist_len);
        written += emit_ready(r, out + written, total);
        discard_used(r);
    }
    r->finished = 1;
    *n_out = written;
    return EDGESER_OK;
}
