/*
 * Streaming resampler to 16 kHz: one or two stages of Kaiser-windowed-sinc filters.
 *
 * A stage from rate r to rate r' (L/M = r'/r in lowest terms) evaluates the band-limited input
 * at input position t_j = j * M / L for output j, so the filter delay never shows in the output:
 *
 *     y[j] = sum_i x[i] * g(t_j - i),    g(tau) = 2 fc/r * sinc(2 fc/r * tau) * kaiser(tau / H)
 *
 * with |tau| < H input samples (T = 2H taps). Writing t_j = q + p/L, the coefficients depend only
 * on the phase p and are tabulated per phase ("row"): row r holds g(r/P + H - 1 - k) for
 * k = 0..T-1, applied to input samples q-H+1 .. q+H. Input before the first sample is zero (H - 1
 * zeros lead the history), input after the end is zero at flush.
 *
 * The plan depends on the input rate:
 * - 16 kHz: one stage that passes samples through (H = 1, one sample of look-ahead).
 * - a multiple of 16 kHz (32, 48, 64, 96 kHz, ...): one decimating stage (L = 1, M = r/16000),
 *   passband to 7.31 kHz, stopband from 8 kHz (soxr HQ's band edges), 130 dB design.
 * - below 16 kHz: one interpolating stage, transition in the top 10% of the input band.
 * - any other rate above 16 kHz (22.05, 24, 44.1, 88.2 kHz, ...): two stages. Stage 1 takes the
 *   input to 32 kHz with a short filter (flat to 8 kHz, 130 dB from 24 kHz: whatever it lets
 *   through between 8 and 24 kHz lands above 8 kHz at 32 kHz), stage 2 is the decimating stage of
 *   32 kHz. The sharp filter then runs at 32 kHz in the fast decimation kernel instead of at the
 *   input rate with a different coefficient row for every output.
 *
 * Three kernels, chosen per stage:
 * - decimation (L = 1): eight (or four) consecutive outputs share the vector lanes. The stage
 *   keeps its history split into M phase streams (x[M i + r] in stream r), so the input values
 *   of consecutive outputs at one tap are contiguous; g is even, so taps k and T - 2 - k share a
 *   coefficient and are added before the multiply (row 0 has g(-H) = 0 in its last tap);
 *   vectors of input slide through registers from one block of outputs to the next. Each
 *   output's sum runs over the tap pairs in a fixed order into two accumulators (alternating
 *   steps), whatever lane or block it occupies, so any chunking gives the same bits. Blocks of
 *   outputs past the ready ones are computed from stale buffer contents and dropped.
 * - polyphase with a full table (every phase stored, H rounded up to a multiple of 4 so rows
 *   are whole 8-float vectors): one dot product per output, used where the table fits.
 * - polyphase with half a table (g is even: row[P - r][k] == row[r][T - 1 - k], rows 0..P/2
 *   stored): when all L phases fit, P = L and every coefficient is exact; otherwise P is the
 *   largest even count that fits and coefficients are interpolated linearly between rows
 *   (timing stays exact).
 * Every output is computed by the same code from the same values whatever the chunking, so
 * streamed output is bit-identical to one-shot output. Results can differ in the last bits
 * between CPUs (the kernels use fused multiply-add where the CPU has it).
 */
#include "edgeser/frontend.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RESAMPLER_MAGIC 0x65647273u /* "edrs" */
/* Design rejection of the Kaiser estimate (measured alias rejection in the README). */
#define STOPBAND_DB 130.0
/* Transition band as a fraction of the lower Nyquist frequency. Downsampling keeps 92.5% of
 * the 8 kHz band (passband to 7.31 kHz, stopband from 8 kHz: the band edges of soxr HQ, so the
 * two agree on real audio); upsampling from low rates uses a wider band since the input holds
 * nothing near its own Nyquist worth keeping. */
#define TRANSITION_DOWN 0.0864
#define TRANSITION_UP 0.10
/* Two-stage plans: the intermediate rate, and the first stage's band edges. */
#define MID_RATE_HZ 32000u
#define PRE_PASSBAND_HZ 8000.0
#define PRE_STOPBAND_HZ 24000.0
/* New input samples staged per inner pass; history moves once per pass. */
#define STAGE_SAMPLES 4096u
#define ALIGN_BYTES EDGESER_ALIGN_BYTES
/* Full-table rows are whole vectors of this many floats. */
#define ROW_VECTOR 8u

/* Decimation kernel: lanes per vector, blocks per call, and the padding of each phase stream
 * (the kernel reads up to 2 vectors before a block's first input and past its last). */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define DECIM_LANES 8
#else
#define DECIM_LANES 4
#endif
#define DECIM_BLOCKS 4
#define DECIM_GROUP (DECIM_LANES * DECIM_BLOCKS)
#define STREAM_FRONT (4u * DECIM_LANES)
#define STREAM_BACK (DECIM_GROUP + 4u * DECIM_LANES)

typedef enum layout {
    LAYOUT_HALF = 0,    /* polyphase, rows 0..P/2, mirrored */
    LAYOUT_FULL = 1,    /* polyphase, every row */
    LAYOUT_DECIMATE = 2 /* L = 1, row 0 only, phase streams */
} layout;

/* One stage's filter and memory. */
typedef struct design {
    uint32_t rate_in, rate_out;
    uint32_t up, down;          /* L, M */
    uint32_t half, taps;        /* H, T = 2H */
    uint32_t phases, rows;      /* P, stored rows */
    layout kind;
    int identity;
    double cutoff_hz, passband_hz, stopband_hz, beta;
    size_t table_bytes;
    size_t hist_cap;            /* HALF/FULL: history floats; DECIMATE: floats per stream */
    size_t mem_bytes;           /* table + history, each aligned */
} design;

typedef struct plan {
    uint32_t n_stages;
    design st[2];
    size_t mid_cap;             /* two stages: floats between them per pass */
    size_t state_bytes;
} plan;

typedef struct stage {
    design d;
    float *table;
    float *hist;                /* HALF/FULL: hist_cap floats; DECIMATE: M streams */
    size_t hist_len;            /* HALF/FULL: samples held; DECIMATE: unused */
    uint64_t hist_start;        /* HALF/FULL: virtual position of hist[0]; DECIMATE: stream
                                   index of each stream's first held entry */
    uint64_t filled;            /* virtual positions written (input + the leading zeros) */
    uint64_t consumed;          /* input samples taken since init/reset */
    uint64_t emitted;           /* outputs written since init/reset */
    uint64_t q;                 /* floor(emitted * M / L) */
    uint32_t p;                 /* emitted * M mod L */
    /* DECIMATE: per class i0 of tap pairs (i = i0 + LANES * M * s), the stream and offset of
     * the forward tap, of the mirrored tap, and the step count. */
    uint32_t n_classes;
    uint32_t *cls;              /* 5 values per class */
} stage;

struct edgeser_resampler {
    uint32_t magic;
    uint32_t rate_in_hz;
    uint32_t up, down;          /* overall L, M */
    uint32_t n_stages;
    int finished;
    int owns_memory;
    int kernel;                 /* decimation kernel for this CPU */
    size_t state_bytes;
    double passband_hz, stopband_hz;
    stage st[2];
    float *mid;                 /* two stages: stage 1 output staged for stage 2 */
    size_t mid_cap;
};

static uint32_t gcd_u32(uint32_t a, uint32_t b)
{
    while (b != 0) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static size_t align_up(size_t n) { return edgeser_align_up_(n); }

/* a * b, or 0 with *overflow set. */
static uint64_t mul_u64(uint64_t a, uint64_t b, int *overflow)
{
    if (a != 0 && b > UINT64_MAX / a) {
        *overflow = 1;
        return 0;
    }
    return a * b;
}

/* Outputs j (counted from 0) with t_j < limit_num / L, i.e. j * M < limit_num: ceil(limit/M). */
static uint64_t outputs_below(uint64_t limit_num, uint32_t down)
{
    return limit_num / down + (limit_num % down != 0u);
}

/* ---------------------------------------------------------------- design --------------- */

/* The filter of one stage from rate_in to rate_out, band edges in Hz; `budget` bounds the
 * table. `want` asks for a layout (DECIMATE needs L == 1). */
static edgeser_status design_stage(uint32_t rate_in, uint32_t rate_out, double passband_hz,
                                   double stopband_hz, int identity, layout want, size_t budget,
                                   design *d)
{
    const double pi = 3.14159265358979323846;
    uint32_t g = gcd_u32(rate_out, rate_in);
    double width;

    memset(d, 0, sizeof(*d));
    d->rate_in = rate_in;
    d->rate_out = rate_out;
    d->up = rate_out / g;
    d->down = rate_in / g;
    d->identity = identity;
    d->passband_hz = passband_hz;
    d->stopband_hz = stopband_hz;
    d->cutoff_hz = 0.5 * (passband_hz + stopband_hz);
    d->beta = 0.1102 * (STOPBAND_DB - 8.7);
    if (identity) {
        d->half = 1;
    } else {
        /* Kaiser's length estimate, in input samples. */
        width = (STOPBAND_DB - 8.0) * (double)rate_in /
                (2.285 * 2.0 * pi * (stopband_hz - passband_hz));
        d->half = (uint32_t)ceil(0.5 * width) + 1u;
    }
    if (want == LAYOUT_DECIMATE && d->up == 1u && !identity) {
        d->kind = LAYOUT_DECIMATE;
        d->taps = 2u * d->half;
        d->phases = d->rows = 1u;
        d->table_bytes = (size_t)d->taps * sizeof(float);
        /* Each stream holds the taps' share, one pass of input, the padding. */
        d->hist_cap = ((size_t)d->taps + STAGE_SAMPLES) / d->down + 2u + STREAM_FRONT + STREAM_BACK;
        d->mem_bytes = align_up(d->table_bytes) +
                       align_up((size_t)d->down * d->hist_cap * sizeof(float)) +
                       align_up((size_t)5u * DECIM_LANES * d->down * sizeof(uint32_t));
        return EDGESER_OK;
    }
    if (!identity) {
        /* A full table needs whole-vector rows: H a multiple of ROW_VECTOR / 2. */
        uint32_t quarter = ROW_VECTOR / 2u;
        uint32_t full_half = (d->half + quarter - 1u) / quarter * quarter;
        if ((size_t)d->up * 2u * full_half * sizeof(float) <= budget) {
            d->kind = LAYOUT_FULL;
            d->half = full_half;
            d->taps = 2u * d->half;
            d->phases = d->rows = d->up;
        }
    }
    if (d->kind != LAYOUT_FULL) {
        size_t row_bytes, budget_rows;
        d->kind = LAYOUT_HALF;
        d->taps = 2u * d->half;
        row_bytes = (size_t)d->taps * sizeof(float);
        budget_rows = budget / row_bytes;
        if ((size_t)d->up / 2u + 1u <= budget_rows) {
            d->phases = d->up;
        } else {
            if (budget_rows < 2u) {
                return EDGESER_ERR_OVERFLOW; /* cannot happen for 1..384 kHz */
            }
            d->phases = (uint32_t)(2u * (budget_rows - 1u));
        }
        d->rows = d->phases / 2u + 1u;
    }
    d->table_bytes = (size_t)d->rows * d->taps * sizeof(float);
    d->hist_cap = (size_t)d->taps - 1u + STAGE_SAMPLES;
    d->mem_bytes = align_up(d->table_bytes) + align_up(d->hist_cap * sizeof(float));
    return EDGESER_OK;
}

static edgeser_status make_plan(uint32_t rate_in_hz, plan *pl)
{
    const uint32_t target = EDGESER_TARGET_RATE_HZ;
    edgeser_status st;
    double nyquist;

    if (rate_in_hz < EDGESER_MIN_RATE_HZ || rate_in_hz > EDGESER_MAX_RATE_HZ) {
        return EDGESER_ERR_RATE;
    }
    memset(pl, 0, sizeof(*pl));
    if (rate_in_hz == target) {
        pl->n_stages = 1;
        st = design_stage(rate_in_hz, target, 0.5 * target, 0.5 * target, 1, LAYOUT_FULL,
                          EDGESER_TABLE_BUDGET_BYTES, &pl->st[0]);
    } else if (rate_in_hz < target) {
        nyquist = 0.5 * (double)rate_in_hz;
        pl->n_stages = 1;
        st = design_stage(rate_in_hz, target, nyquist * (1.0 - TRANSITION_UP), nyquist, 0,
                          LAYOUT_FULL, EDGESER_TABLE_BUDGET_BYTES, &pl->st[0]);
    } else {
        /* The decimating stage: from the input, or from 32 kHz after a first stage. */
        uint32_t sharp_in = rate_in_hz % target == 0u ? rate_in_hz : MID_RATE_HZ;
        nyquist = 0.5 * (double)target;
        pl->n_stages = sharp_in == rate_in_hz ? 1u : 2u;
        st = design_stage(sharp_in, target, nyquist * (1.0 - TRANSITION_DOWN), nyquist, 0,
                          LAYOUT_DECIMATE, EDGESER_TABLE_BUDGET_BYTES,
                          &pl->st[pl->n_stages - 1u]);
        if (st == EDGESER_OK && pl->n_stages == 2u) {
            st = design_stage(rate_in_hz, MID_RATE_HZ, PRE_PASSBAND_HZ, PRE_STOPBAND_HZ, 0,
                              LAYOUT_FULL, EDGESER_TABLE_BUDGET_BYTES - pl->st[1].table_bytes,
                              &pl->st[0]);
        }
    }
    if (st != EDGESER_OK) {
        return st;
    }
    if (pl->n_stages == 2u) {
        /* Stage 1's outputs for one pass of STAGE_SAMPLES inputs (or of its flush). */
        pl->mid_cap = (size_t)outputs_below((uint64_t)(STAGE_SAMPLES + pl->st[0].taps) *
                                                pl->st[0].up, pl->st[0].down) + 2u;
    }
    pl->state_bytes = align_up(sizeof(struct edgeser_resampler)) + pl->st[0].mem_bytes +
                      (pl->n_stages == 2u ? pl->st[1].mem_bytes : 0u) +
                      align_up(pl->mid_cap * sizeof(float));
    return EDGESER_OK;
}

static double bessel_i0(double x)
{
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
static double kernel(const design *d, double i0_beta, double tau)
{
    const double pi = 3.14159265358979323846;
    double ratio, arg, sinc, ratio_h;
    if (d->identity) return tau == 0.0 ? 1.0 : 0.0;
    ratio_h = tau / (double)d->half;
    if (ratio_h <= -1.0 || ratio_h >= 1.0) return 0.0;
    ratio = 2.0 * d->cutoff_hz / (double)d->rate_in;
    arg = pi * ratio * tau;
    sinc = (arg == 0.0) ? 1.0 : sin(arg) / arg;
    return ratio * sinc * bessel_i0(d->beta * sqrt(1.0 - ratio_h * ratio_h)) / i0_beta;
}

static void fill_table(const design *d, float *table)
{
    double i0_beta = bessel_i0(d->beta);
    uint32_t row, k;
    for (row = 0; row < d->rows; ++row) {
        double frac = (double)row / (double)d->phases;
        for (k = 0; k < d->taps; ++k) {
            double tau = frac + (double)d->half - 1.0 - (double)k;
            table[(size_t)row * d->taps + k] = (float)kernel(d, i0_beta, tau);
        }
    }
}

/* ---------------------------------------------------------------- kernels -------------- */

/*
 * Polyphase, half table: dot products of 16 interleaved lanes (two 8-float accumulators), then
 * a fixed reduction tree. The build uses -std=c99 without -ffp-contract=fast, so no clone
 * fuses multiply and add differently.
 */
#if defined(__GNUC__) && !defined(EDGESER_PORTABLE_DOT)
#define EDGESER_VECTORS 1
typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
#if defined(__clang__)
#define REVERSE8(v) __builtin_shufflevector((v), (v), 7, 6, 5, 4, 3, 2, 1, 0)
#else
typedef int v8i __attribute__((vector_size(32)));
#define REVERSE8(v) __builtin_shuffle((v), (v8i){7, 6, 5, 4, 3, 2, 1, 0})
#endif
/* x86-64 builds target the baseline ISA; an AVX2 clone chosen at load time runs ~3x faster. */
#if defined(__x86_64__) && defined(__linux__) && !defined(__clang__) && !defined(EDGESER_NO_CLONES)
#define DOT_CLONES __attribute__((target_clones("avx2", "default")))
/* With fused multiply-add: AVX2 + FMA (x86-64-v3). */
#define FMA_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define EDGESER_X86_DISPATCH 1
#else
#define DOT_CLONES
#define FMA_CLONES
#endif
#define LOAD8(dst, src) memcpy(&(dst), (src), sizeof(v8f))

static float reduce16(const v8f *a0, const v8f *a1, const float *x, const float *c, int step, uint32_t tail)
{
    float acc[8];
    uint32_t k;
    v8f sum = *a0 + *a1;
    memcpy(acc, &sum, sizeof acc);
    for (k = 0; k < tail; ++k) acc[k & 7u] += x[k] * c[(long)step * (long)k];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* sum_k x[k] * c[k] */
DOT_CLONES static float dot_forward(const float *x, const float *c, uint32_t n)
{
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
DOT_CLONES static float dot_reverse(const float *x, const float *c, uint32_t n)
{
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
static float reduce_lanes(float *lane, const float *x, const float *c, int step, uint32_t tail)
{
    float acc[8];
    uint32_t k;
    for (k = 0; k < 8u; ++k) acc[k] = lane[k] + lane[k + 8u];
    for (k = 0; k < tail; ++k) acc[k & 7u] += x[k] * c[(long)step * (long)k];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static float dot_forward(const float *x, const float *c, uint32_t n)
{
    float lane[16] = {0};
    uint32_t k = 0, l;
    for (; k + 16u <= n; k += 16u)
        for (l = 0; l < 16u; ++l) lane[l] += x[k + l] * c[k + l];
    return reduce_lanes(lane, x + k, c + k, 1, n - k);
}

static float dot_reverse(const float *x, const float *c, uint32_t n)
{
    float lane[16] = {0};
    const float *last = c + n - 1u;
    uint32_t k = 0, l;
    for (; k + 16u <= n; k += 16u)
        for (l = 0; l < 16u; ++l) lane[l] += x[k + l] * *(last - k - l);
    return reduce_lanes(lane, x + k, last - k, -1, n - k);
}
#endif

/* Fused multiply-add where the target has it: `a += b * c` contracts in these functions. */
#if defined(__GNUC__) && !defined(__clang__)
#define FMA_FUNCTION __attribute__((optimize("fp-contract=fast")))
#define FMA_PRAGMA
#elif defined(__clang__)
#define FMA_FUNCTION
#define FMA_PRAGMA _Pragma("clang fp contract(fast)")
#else
#define FMA_FUNCTION
#define FMA_PRAGMA
#endif

/*
 * Polyphase, full table: rows are whole vectors; two accumulators (even and odd vectors), then
 * the fixed tree of reduce8. Writes `n` outputs, advancing q and p.
 */
#if defined(EDGESER_VECTORS)
/* ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)), with vector shuffles. */
#if defined(__clang__)
#define LOW4(v) __builtin_shufflevector((v), (v), 0, 1, 2, 3)
#define HIGH4(v) __builtin_shufflevector((v), (v), 4, 5, 6, 7)
#define SWAP_HALVES4(v) __builtin_shufflevector((v), (v), 2, 3, 0, 1)
#else
typedef int v4i __attribute__((vector_size(16)));
#define LOW4(v) ((v4f){(v)[0], (v)[1], (v)[2], (v)[3]})
#define HIGH4(v) ((v4f){(v)[4], (v)[5], (v)[6], (v)[7]})
#define SWAP_HALVES4(v) __builtin_shuffle((v), (v4i){2, 3, 0, 1})
#endif
#define REDUCE8(s, result)                                                                       \
    do {                                                                                         \
        v4f r4_ = LOW4(s) + HIGH4(s);                                                            \
        r4_ = r4_ + SWAP_HALVES4(r4_);                                                           \
        (result) = r4_[0] + r4_[1];                                                              \
    } while (0)

/* One output: vectors 0, 2, 4, ... into a0 and 1, 3, 5, ... into a1, in order. */
#define POLY_DOT(NV, x, c, result)                                                               \
    do {                                                                                         \
        v8f a0_, a1_ = {0, 0, 0, 0, 0, 0, 0, 0}, xv_, cv_;                                       \
        uint32_t v_;                                                                             \
        LOAD8(xv_, (x));                                                                         \
        LOAD8(cv_, (c));                                                                         \
        a0_ = xv_ * cv_;                                                                         \
        for (v_ = 1; v_ + 1u < (NV); v_ += 2u) {                                                 \
            LOAD8(xv_, (x) + 8u * v_);                                                           \
            LOAD8(cv_, (c) + 8u * v_);                                                           \
            a1_ += xv_ * cv_;                                                                    \
            LOAD8(xv_, (x) + 8u * v_ + 8u);                                                      \
            LOAD8(cv_, (c) + 8u * v_ + 8u);                                                      \
            a0_ += xv_ * cv_;                                                                    \
        }                                                                                        \
        if (v_ < (NV)) {                                                                         \
            LOAD8(xv_, (x) + 8u * v_);                                                           \
            LOAD8(cv_, (c) + 8u * v_);                                                           \
            a1_ += xv_ * cv_;                                                                    \
        }                                                                                        \
        a0_ += a1_;                                                                              \
        REDUCE8(a0_, result);                                                                    \
    } while (0)

/* The output loop for a row length of NV vectors (a constant where the caller names one). */
#define POLY_LOOP(NV)                                                                            \
    for (j = 0; j < n; ++j) {                                                                    \
        const float *x = hist + (size_t)(qq - hist_start), *c = table + (size_t)pp * taps;       \
        POLY_DOT(NV, x, c, out[j]);                                                              \
        qq += step_q;                                                                            \
        pp += step_p;                                                                            \
        if (pp >= up) {                                                                          \
            pp -= up;                                                                            \
            qq += 1u;                                                                            \
        }                                                                                        \
    }

FMA_CLONES FMA_FUNCTION static void poly_full(const float *hist, uint64_t hist_start,
                                              const float *table, uint32_t taps, uint32_t up,
                                              uint32_t down, uint64_t *q, uint32_t *p, size_t n,
                                              float *out)
{
    size_t j;
    uint32_t nv = taps / 8u, step_q = down / up, step_p = down % up;
    uint64_t qq = *q;
    uint32_t pp = *p;
    FMA_PRAGMA
    /* The common row lengths unrolled; every length computes the same statements. */
    switch (nv) {
    case 2u: POLY_LOOP(2u) break;
    case 4u: POLY_LOOP(4u) break;
    case 7u: POLY_LOOP(7u) break;
    default: POLY_LOOP(nv) break;
    }
    *q = qq;
    *p = pp;
}
#else
static void poly_full(const float *hist, uint64_t hist_start, const float *table, uint32_t taps,
                      uint32_t up, uint32_t down, uint64_t *q, uint32_t *p, size_t n, float *out)
{
    size_t j;
    uint32_t step_q = down / up, step_p = down % up;
    for (j = 0; j < n; ++j) {
        const float *x = hist + (size_t)(*q - hist_start), *c = table + (size_t)*p * taps;
        float a[2][8] = {{0}}, s[8];
        uint32_t k, l;
        for (k = 0; k < taps; k += 8u)
            for (l = 0; l < 8u; ++l) a[(k / 8u) & 1u][l] += x[k + l] * c[k + l];
        for (l = 0; l < 8u; ++l) s[l] = a[0][l] + a[1][l];
        out[j] = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
        *q += step_q;
        *p += step_p;
        if (*p >= up) {
            *p -= up;
            *q += 1u;
        }
    }
}
#endif

/*
 * Decimation (L = 1): see the comment at the top. `a` describes the stage; outputs j0 .. j0 +
 * DECIM_LANES * nb - 1 go to out[]. Per lane, with i running over the tap pairs in the order of
 * the classes i0 = 0 .. LANES*M - 1 and, within a class, i = i0 + LANES*M*s:
 *     acc[s % 2] += c[i] * (x[i] + x[T - 2 - i]);  y = (acc[0] + acc[1]) + c[H-1] * x[H-1]
 * where x[k] is the input at virtual position M j + k.
 */
typedef struct decim_args {
    const float *streams;       /* M streams, `stride` floats apart, entry 0 at index `base` */
    size_t stride;
    uint64_t base;
    const float *coef;          /* row 0 */
    uint32_t half, down, n_classes;
    const uint32_t *cls;        /* per class: fwd stream, fwd offset, mirror stream, mirror
                                   offset, steps */
} decim_args;

#if defined(EDGESER_VECTORS)
#if DECIM_LANES == 8
typedef v8f vdec;
#else
typedef v4f vdec;
#endif

/* An unaligned vector load (an expression; no vector is passed by value across calls). */
#define ld(p) __extension__({ vdec ld_v_; memcpy(&ld_v_, (p), sizeof ld_v_); ld_v_; })

/* All lanes set to x. */
#if DECIM_LANES == 8
#define SPLAT(x) ((vdec){(x), (x), (x), (x), (x), (x), (x), (x)})
#else
#define SPLAT(x) ((vdec){(x), (x), (x), (x)})
#endif

/* One step of the four blocks: block b takes forward vector Vb and mirrored vector Wb. */
#define DECIM_STEP(ACC, C, V0, V1, V2, V3, W0, W1, W2, W3)                                        \
    ACC##0 += (C) * ((V0) + (W0));                                                               \
    ACC##1 += (C) * ((V1) + (W1));                                                               \
    ACC##2 += (C) * ((V2) + (W2));                                                               \
    ACC##3 += (C) * ((V3) + (W3))

/* The mirrored vector of block b at step t: stored at m - W*t + W*b. With SLIDE_MIRROR they
 * rotate through w0..w3 like the forward ones (loaded once each); else each is loaded. */
#define MIRROR(SLIDE, REG, T, B) ((SLIDE) ? (REG) : ld(m - (T) * W + (B) * W))

/* The kernel body: blocks of DECIM_LANES outputs; nb 1 or DECIM_BLOCKS. Four blocks: the
 * forward input vectors of step t are V[t..t+3] (V[t] = f + W*t) and rotate through v0..v3,
 * one new load per step; four steps per iteration bring every register back to its role.
 * Even steps add into a0..a3, odd steps into b0..b3. */
#define DECIM_BODY(SLIDE)                                                                         \
    {                                                                                             \
        const size_t W = DECIM_LANES;                                                             \
        const vdec zero = {0};                                                                    \
        vdec a0 = zero, a1 = zero, a2 = zero, a3 = zero, b0 = zero, b1 = zero, b2 = zero,         \
             b3 = zero, r;                                                                        \
        size_t off = (size_t)(j0 - a->base);                                                      \
        uint32_t c_i, n_cls = a->n_classes, stepc = (uint32_t)W * a->down;                        \
        const float *ctr = a->streams + (size_t)((a->half - 1u) % a->down) * a->stride + off +     \
                           (a->half - 1u) / a->down;                                              \
        vdec cc = SPLAT(a->coef[a->half - 1u]);                                                   \
        FMA_PRAGMA                                                                                \
        for (c_i = 0; c_i < n_cls; ++c_i) {                                                       \
            const uint32_t *k = a->cls + 5u * c_i;                                                \
            const float *f = a->streams + (size_t)k[0] * a->stride + off + k[1];                  \
            const float *m = a->streams + (size_t)k[2] * a->stride + off + k[3];                  \
            const float *cp = a->coef + c_i;                                                      \
            uint32_t n = k[4], s = 0;                                                             \
            if (nb == DECIM_BLOCKS) {                                                             \
                vdec v0 = ld(f), v1 = ld(f + W), v2 = ld(f + 2 * W), v3 = ld(f + 3 * W);          \
                vdec w0 = zero, w1 = zero, w2 = zero, w3 = zero, c0, c1, c2, c3;                  \
                if ((SLIDE)) {                                                                    \
                    w0 = ld(m);                                                                   \
                    w1 = ld(m + W);                                                               \
                    w2 = ld(m + 2 * W);                                                           \
                    w3 = ld(m + 3 * W);                                                           \
                }                                                                                 \
                for (; s + 4u <= n; s += 4u) {                                                    \
                    c0 = SPLAT(cp[0]);                                                            \
                    c1 = SPLAT(cp[stepc]);                                                        \
                    c2 = SPLAT(cp[2u * stepc]);                                                   \
                    c3 = SPLAT(cp[3u * stepc]);                                                   \
                    DECIM_STEP(a, c0, v0, v1, v2, v3, MIRROR(SLIDE, w0, 0, 0),                    \
                               MIRROR(SLIDE, w1, 0, 1), MIRROR(SLIDE, w2, 0, 2),                  \
                               MIRROR(SLIDE, w3, 0, 3));                                          \
                    v0 = ld(f + 4 * W);                                                           \
                    if ((SLIDE)) w3 = ld(m - W);                                                  \
                    DECIM_STEP(b, c1, v1, v2, v3, v0, MIRROR(SLIDE, w3, 1, 0),                    \
                               MIRROR(SLIDE, w0, 1, 1), MIRROR(SLIDE, w1, 1, 2),                  \
                               MIRROR(SLIDE, w2, 1, 3));                                          \
                    v1 = ld(f + 5 * W);                                                           \
                    if ((SLIDE)) w2 = ld(m - 2 * W);                                              \
                    DECIM_STEP(a, c2, v2, v3, v0, v1, MIRROR(SLIDE, w2, 2, 0),                    \
                               MIRROR(SLIDE, w3, 2, 1), MIRROR(SLIDE, w0, 2, 2),                  \
                               MIRROR(SLIDE, w1, 2, 3));                                          \
                    v2 = ld(f + 6 * W);                                                           \
                    if ((SLIDE)) w1 = ld(m - 3 * W);                                              \
                    DECIM_STEP(b, c3, v3, v0, v1, v2, MIRROR(SLIDE, w1, 3, 0),                    \
                               MIRROR(SLIDE, w2, 3, 1), MIRROR(SLIDE, w3, 3, 2),                  \
                               MIRROR(SLIDE, w0, 3, 3));                                          \
                    v3 = ld(f + 7 * W);                                                           \
                    if ((SLIDE)) w0 = ld(m - 4 * W);                                              \
                    f += 4 * W;                                                                   \
                    m -= 4 * W;                                                                   \
                    cp += 4u * stepc;                                                             \
                }                                                                                 \
                /* Up to three steps left: the same statements, in the same order. */             \
                if (s < n) {                                                                      \
                    c0 = SPLAT(cp[0]);                                                            \
                    DECIM_STEP(a, c0, v0, v1, v2, v3, MIRROR(SLIDE, w0, 0, 0),                    \
                               MIRROR(SLIDE, w1, 0, 1), MIRROR(SLIDE, w2, 0, 2),                  \
                               MIRROR(SLIDE, w3, 0, 3));                                          \
                }                                                                                 \
                if (s + 1u < n) {                                                                 \
                    c1 = SPLAT(cp[stepc]);                                                        \
                    v0 = ld(f + 4 * W);                                                           \
                    if ((SLIDE)) w3 = ld(m - W);                                                  \
                    DECIM_STEP(b, c1, v1, v2, v3, v0, MIRROR(SLIDE, w3, 1, 0),                    \
                               MIRROR(SLIDE, w0, 1, 1), MIRROR(SLIDE, w1, 1, 2),                  \
                               MIRROR(SLIDE, w2, 1, 3));                                          \
                }                                                                                 \
                if (s + 2u < n) {                                                                 \
                    c2 = SPLAT(cp[2u * stepc]);                                                   \
                    v1 = ld(f + 5 * W);                                                           \
                    if ((SLIDE)) w2 = ld(m - 2 * W);                                              \
                    DECIM_STEP(a, c2, v2, v3, v0, v1, MIRROR(SLIDE, w2, 2, 0),                    \
                               MIRROR(SLIDE, w3, 2, 1), MIRROR(SLIDE, w0, 2, 2),                  \
                               MIRROR(SLIDE, w1, 2, 3));                                          \
                }                                                                                 \
            } else {                                                                              \
                for (; s + 2u <= n; s += 2u) {                                                    \
                    vdec ca = SPLAT(cp[0]), cb = SPLAT(cp[stepc]);                                \
                    a0 += ca * (ld(f) + ld(m));                                                   \
                    b0 += cb * (ld(f + W) + ld(m - W));                                           \
                    f += 2 * W;                                                                   \
                    m -= 2 * W;                                                                   \
                    cp += 2u * stepc;                                                             \
                }                                                                                 \
                if (s < n) {                                                                      \
                    vdec ca = SPLAT(cp[0]);                                                       \
                    a0 += ca * (ld(f) + ld(m));                                                   \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        r = (a0 + b0) + cc * ld(ctr);                                                             \
        memcpy(out, &r, sizeof r);                                                                \
        if (nb == DECIM_BLOCKS) {                                                                 \
            r = (a1 + b1) + cc * ld(ctr + W);                                                     \
            memcpy(out + W, &r, sizeof r);                                                        \
            r = (a2 + b2) + cc * ld(ctr + 2 * W);                                                 \
            memcpy(out + 2 * W, &r, sizeof r);                                                    \
            r = (a3 + b3) + cc * ld(ctr + 3 * W);                                                 \
            memcpy(out + 3 * W, &r, sizeof r);                                                    \
        }                                                                                         \
    }

#if defined(EDGESER_X86_DISPATCH)
/* 32 vector registers (AVX-512VL): both input streams slide through registers. */
__attribute__((target("arch=x86-64-v4"))) FMA_FUNCTION static void
decim_x86_v4(const decim_args *a, uint64_t j0, int nb, float *out) DECIM_BODY(1)
/* AVX2 + FMA, 16 registers: the mirrored inputs are loaded. */
__attribute__((target("arch=x86-64-v3"))) FMA_FUNCTION static void
decim_x86_v3(const decim_args *a, uint64_t j0, int nb, float *out) DECIM_BODY(0)
#endif
FMA_FUNCTION static void decim_base(const decim_args *a, uint64_t j0, int nb, float *out)
    DECIM_BODY(DECIM_LANES == 4)

static int decim_kernel_for_cpu(void)
{
#if defined(EDGESER_DECIM_KERNEL) /* tests: force a kernel (0 baseline, 1 AVX2, 2 AVX-512) */
    return EDGESER_DECIM_KERNEL;
#elif defined(EDGESER_X86_DISPATCH)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")) {
        return 2;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("bmi2")) {
        return 1;
    }
#endif
    return 0;
}

static void decimate(int kernel, const decim_args *a, uint64_t j0, int nb, float *out)
{
#if defined(EDGESER_X86_DISPATCH)
    if (kernel == 2) {
        decim_x86_v4(a, j0, nb, out);
        return;
    }
    if (kernel == 1) {
        decim_x86_v3(a, j0, nb, out);
        return;
    }
#endif
    (void)kernel;
    decim_base(a, j0, nb, out);
}
#else
/* Portable: the same per-lane sums, one output at a time, without fused multiply-add. */
static int decim_kernel_for_cpu(void) { return 0; }

static void decimate(int kernel, const decim_args *a, uint64_t j0, int nb, float *out)
{
    size_t W = DECIM_LANES, lane, n_out = (size_t)nb * W;
    uint32_t stepc = (uint32_t)W * a->down;
    (void)kernel;
    for (lane = 0; lane < n_out; ++lane) {
        size_t off = (size_t)(j0 - a->base) + lane;
        float acc[2] = {0.0f, 0.0f};
        uint32_t c_i;
        const float *ctr = a->streams + (size_t)((a->half - 1u) % a->down) * a->stride + off +
                           (a->half - 1u) / a->down;
        for (c_i = 0; c_i < a->n_classes; ++c_i) {
            const uint32_t *k = a->cls + 5u * c_i;
            const float *f = a->streams + (size_t)k[0] * a->stride + off + k[1];
            const float *m = a->streams + (size_t)k[2] * a->stride + off + k[3];
            uint32_t s;
            for (s = 0; s < k[4]; ++s) {
                acc[s & 1u] += a->coef[c_i + s * stepc] * (f[s * W] + m[-(long)(s * W)]);
            }
        }
        out[lane] = (acc[0] + acc[1]) + a->coef[a->half - 1u] * *ctr;
    }
}
#endif

/* ---------------------------------------------------------------- stages --------------- */

static void stage_clear(stage *s)
{
    const design *d = &s->d;
    s->consumed = 0;
    s->emitted = 0;
    s->q = 0;
    s->p = 0;
    if (d->kind == LAYOUT_DECIMATE) {
        /* Streams start at index 0 (after the front padding), all zeros: the H - 1 zeros
         * before time zero are the first virtual positions. */
        memset(s->hist, 0, (size_t)d->down * d->hist_cap * sizeof(float));
        s->hist_start = 0;
        s->hist_len = 0;
    } else {
        s->hist_len = (size_t)d->half - 1u;
        memset(s->hist, 0, s->hist_len * sizeof(float));
        s->hist_start = 0;
    }
    s->filled = (uint64_t)d->half - 1u;
}

/* Lay out one stage in `base` (d->mem_bytes bytes) and fill its table. */
static void stage_init(stage *s, const design *d, unsigned char *base)
{
    memset(s, 0, sizeof(*s));
    s->d = *d;
    s->table = (float *)base;
    s->hist = (float *)(base + align_up(d->table_bytes));
    fill_table(d, s->table);
    if (d->kind == LAYOUT_DECIMATE) {
        uint32_t W = DECIM_LANES, M = d->down, n_pairs = d->half - 1u, i0, T = d->taps;
        s->cls = (uint32_t *)(base + align_up(d->table_bytes) +
                              align_up((size_t)M * d->hist_cap * sizeof(float)));
        s->n_classes = W * M;
        for (i0 = 0; i0 < W * M; ++i0) {
            uint32_t *k = s->cls + 5u * i0;
            uint32_t mirror = T - 2u - i0; /* >= 0: i0 < W*M <= T - 2 for every design here */
            k[0] = i0 % M;
            k[1] = i0 / M;
            k[2] = mirror % M;
            k[3] = mirror / M;
            k[4] = i0 < n_pairs ? (n_pairs - i0 + W * M - 1u) / (W * M) : 0u;
        }
    }
    stage_clear(s);
}

/* Outputs computable once `filled` virtual positions exist: those with q_j + T <= filled. */
static edgeser_status stage_ready(const design *d, uint64_t filled, uint64_t *total)
{
    int overflow = 0;
    uint64_t limit;
    if (filled < d->taps) {
        *total = 0;
        return EDGESER_OK;
    }
    /* q_j <= filled - T  <=>  j * M < (filled - T + 1) * L */
    limit = mul_u64(filled - d->taps + 1u, d->up, &overflow);
    if (overflow) return EDGESER_ERR_OVERFLOW;
    *total = outputs_below(limit, d->down);
    return EDGESER_OK;
}

/* Room for new input samples in the stage's history. */
static size_t stage_room(const stage *s)
{
    const design *d = &s->d;
    if (d->kind == LAYOUT_DECIMATE) {
        /* Entries of the fullest stream after n more: ceil((filled + n) / M) - hist_start. */
        uint64_t cap = (uint64_t)(d->hist_cap - STREAM_FRONT - STREAM_BACK) + s->hist_start;
        uint64_t limit = cap * d->down;
        return limit > s->filled ? (size_t)(limit - s->filled) : 0u;
    }
    return d->hist_cap - s->hist_len;
}

/* Deal `frames` frames of M interleaved samples to M streams `stride` floats apart (stream c
 * gets samples c, c + M, ...): vector shuffles for M = 2 and 3, the common decimations.
 * Returns 0 when it did nothing (other M, or no vector support). Copies are exact, so the
 * scalar and vector versions store the same values. */
#if defined(EDGESER_VECTORS)
#if defined(__clang__)
#define SHUFFLE2(a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
#define SHUFFLE2(a, b, ...) __builtin_shuffle((a), (b), (v8i){__VA_ARGS__})
#endif
FMA_CLONES static int deal_frames(const float *in, size_t frames, uint32_t M, float *out,
                                  size_t stride)
{
    size_t f = 0;
    v8f a, b, c;
    if (M == 2u) {
        for (; f + 8u <= frames; f += 8u) {
            v8f lo, hi;
            LOAD8(a, in + 2u * f);
            LOAD8(b, in + 2u * f + 8u);
            lo = SHUFFLE2(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
            hi = SHUFFLE2(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
            memcpy(out + f, &lo, sizeof lo);
            memcpy(out + stride + f, &hi, sizeof hi);
        }
    } else if (M == 3u) {
        for (; f + 8u <= frames; f += 8u) {
            v8f s;
            LOAD8(a, in + 3u * f);
            LOAD8(b, in + 3u * f + 8u);
            LOAD8(c, in + 3u * f + 16u);
            /* Sample k of 24 is element k of a:b:c; stream r takes k = 3 i + r. */
            s = SHUFFLE2(a, b, 0, 3, 6, 9, 12, 15, 0, 0);
            s = SHUFFLE2(s, c, 0, 1, 2, 3, 4, 5, 10, 13);
            memcpy(out + f, &s, sizeof s);
            s = SHUFFLE2(a, b, 1, 4, 7, 10, 13, 0, 0, 0);
            s = SHUFFLE2(s, c, 0, 1, 2, 3, 4, 8, 11, 14);
            memcpy(out + stride + f, &s, sizeof s);
            s = SHUFFLE2(a, b, 2, 5, 8, 11, 14, 0, 0, 0);
            s = SHUFFLE2(s, c, 0, 1, 2, 3, 4, 9, 12, 15);
            memcpy(out + 2u * stride + f, &s, sizeof s);
        }
    } else {
        return 0;
    }
    for (; f < frames; ++f) {
        uint32_t r;
        for (r = 0; r < M; ++r) out[(size_t)r * stride + f] = in[(size_t)M * f + r];
    }
    return 1;
}
#else
static int deal_frames(const float *in, size_t frames, uint32_t M, float *out, size_t stride)
{
    (void)in;
    (void)frames;
    (void)M;
    (void)out;
    (void)stride;
    return 0;
}
#endif

/* Append n samples (zeros when in == NULL); n <= stage_room. */
static void stage_append(stage *s, const float *in, size_t n)
{
    const design *d = &s->d;
    size_t i;
    if (d->kind == LAYOUT_DECIMATE) {
        /* Deal the samples out to the M streams: the partial frame first, then whole frames
         * one stream at a time (a strided copy), then the partial frame at the end. */
        uint32_t M = d->down, r = (uint32_t)(s->filled % M), c;
        size_t u = (size_t)(s->filled / M - s->hist_start), frames, f;
        float *base = s->hist + STREAM_FRONT;
        i = 0;
        while (r != 0u && i < n) {
            base[(size_t)r * d->hist_cap + u] = in != NULL ? in[i] : 0.0f;
            ++i;
            if (++r == M) {
                r = 0;
                ++u;
            }
        }
        frames = (n - i) / M;
        if (in != NULL && deal_frames(in + i, frames, M, base + u, d->hist_cap)) {
            /* done by the vector version */
        } else {
            for (c = 0; c < M; ++c) {
                float *dst = base + (size_t)c * d->hist_cap + u;
                if (in != NULL) {
                    const float *src = in + i + c;
                    for (f = 0; f < frames; ++f) dst[f] = src[f * M];
                } else {
                    memset(dst, 0, frames * sizeof(float));
                }
            }
        }
        i += frames * M;
        u += frames;
        for (r = 0; i < n; ++i, ++r) {
            base[(size_t)r * d->hist_cap + u] = in != NULL ? in[i] : 0.0f;
        }
    } else {
        if (in != NULL) {
            memcpy(s->hist + s->hist_len, in, n * sizeof(float));
        } else {
            memset(s->hist + s->hist_len, 0, n * sizeof(float));
        }
        s->hist_len += n;
    }
    s->filled += n;
    s->consumed += n;
}

static float half_sample(const design *d, const float *table, const float *x, uint32_t p)
{
    uint64_t pos;
    uint32_t row, rem;
    float a, b, frac;
    if (d->phases == d->up) {
        return p < d->rows ? dot_forward(x, table + (size_t)p * d->taps, d->taps)
                           : dot_reverse(x, table + (size_t)(d->phases - p) * d->taps, d->taps);
    }
    pos = (uint64_t)p * d->phases; /* < L * P <= 32000 * 2^17: no overflow */
    row = (uint32_t)(pos / d->up);
    rem = (uint32_t)(pos % d->up);
    a = row < d->rows ? dot_forward(x, table + (size_t)row * d->taps, d->taps)
                      : dot_reverse(x, table + (size_t)(d->phases - row) * d->taps, d->taps);
    if (rem == 0u) return a;
    row += 1u;
    b = row < d->rows ? dot_forward(x, table + (size_t)row * d->taps, d->taps)
                      : dot_reverse(x, table + (size_t)(d->phases - row) * d->taps, d->taps);
    frac = (float)((double)rem / (double)d->up);
    return a + frac * (b - a);
}

/* NaN outputs of the decimation kernel become one quiet NaN: the kernel's two block widths
 * compute the same sums, but may pick different NaN operands (payload, sign) when several
 * inputs are NaN, and streamed output must equal one-shot output bit for bit. */
static void canonical_nans(float *x, size_t n)
{
    size_t i;
    const float nan = (float)NAN;
    for (i = 0; i < n; ++i) {
        x[i] = x[i] == x[i] ? x[i] : nan;
    }
}

/* Emit every ready output, up to `limit` outputs in all since reset; returns the count. */
static size_t stage_emit(stage *s, int kernel, float *out, uint64_t limit)
{
    const design *d = &s->d;
    uint64_t ready = 0;
    size_t n;
    (void)stage_ready(d, s->filled, &ready); /* cannot overflow once the history holds it */
    if (ready > limit) ready = limit;
    if (ready <= s->emitted) return 0;
    n = (size_t)(ready - s->emitted);
    if (d->kind == LAYOUT_FULL) {
        poly_full(s->hist, s->hist_start, s->table, d->taps, d->up, d->down, &s->q, &s->p, n, out);
    } else if (d->kind == LAYOUT_HALF) {
        size_t i;
        for (i = 0; i < n; ++i) {
            out[i] = half_sample(d, s->table, s->hist + (size_t)(s->q - s->hist_start), s->p);
            s->p += d->down;
            if (s->p >= d->up) {
                s->q += s->p / d->up;
                s->p %= d->up;
            }
        }
    } else {
        decim_args a;
        size_t done = 0;
        float tmp[DECIM_GROUP];
        a.streams = s->hist + STREAM_FRONT; /* entry `base` of stream r at streams[r*stride] */
        a.stride = d->hist_cap;
        a.base = s->hist_start;
        a.coef = s->table;
        a.half = d->half;
        a.down = d->down;
        a.n_classes = s->n_classes;
        a.cls = s->cls;
        while (done < n) {
            size_t left = n - done;
            int nb = left >= DECIM_GROUP ? DECIM_BLOCKS : 1;
            size_t lanes = (size_t)nb * DECIM_LANES;
            if (left >= lanes) {
                decimate(kernel, &a, s->emitted + done, nb, out + done);
                done += lanes;
            } else {
                decimate(kernel, &a, s->emitted + done, nb, tmp);
                memcpy(out + done, tmp, left * sizeof(float));
                done = n;
            }
        }
        canonical_nans(out, n);
        s->q += n * (uint64_t)d->down;
    }
    s->emitted += n;
    return n;
}

/* Drop history no future output reads. */
static void stage_discard(stage *s)
{
    const design *d = &s->d;
    if (d->kind == LAYOUT_DECIMATE) {
        /* Output `emitted` reads stream entries from index `emitted` on. */
        uint64_t drop = s->emitted > s->hist_start ? s->emitted - s->hist_start : 0u;
        uint64_t held = (s->filled + d->down - 1u) / d->down - s->hist_start;
        uint32_t r;
        if (drop == 0u) return;
        if (drop > held) drop = held;
        for (r = 0; r < d->down; ++r) {
            float *row = s->hist + (size_t)r * d->hist_cap + STREAM_FRONT;
            memmove(row, row + (size_t)drop, (size_t)(held - drop) * sizeof(float));
        }
        s->hist_start += drop;
    } else {
        uint64_t drop = s->q > s->hist_start ? s->q - s->hist_start : 0u;
        if (drop > s->hist_len) drop = s->hist_len;
        if (drop == 0u) return;
        memmove(s->hist, s->hist + (size_t)drop, (s->hist_len - (size_t)drop) * sizeof(float));
        s->hist_len -= (size_t)drop;
        s->hist_start += drop;
    }
}

/* ---------------------------------------------------------------- the resampler -------- */

edgeser_status edgeser_resampler_size(uint32_t rate_in_hz, size_t *bytes)
{
    plan pl;
    edgeser_status st;
    if (bytes == NULL) return EDGESER_ERR_NULL;
    st = make_plan(rate_in_hz, &pl);
    if (st != EDGESER_OK) return st;
    *bytes = pl.state_bytes;
    return EDGESER_OK;
}

static void clear_stream(edgeser_resampler *r)
{
    uint32_t i;
    for (i = 0; i < r->n_stages; ++i) stage_clear(&r->st[i]);
    r->finished = 0;
}

edgeser_status edgeser_resampler_init(void *mem, size_t bytes, uint32_t rate_in_hz,
                                      edgeser_resampler **out)
{
    plan pl;
    edgeser_status st;
    edgeser_resampler *r;
    unsigned char *base = (unsigned char *)mem, *at;
    uint32_t g, i;

    if (mem == NULL || out == NULL) return EDGESER_ERR_NULL;
    if (((uintptr_t)mem & 15u) != 0u) return EDGESER_ERR_ARGUMENT;
    st = make_plan(rate_in_hz, &pl);
    if (st != EDGESER_OK) return st;
    if (bytes < pl.state_bytes) return EDGESER_ERR_BUFFER_TOO_SMALL;

    r = (edgeser_resampler *)base;
    memset(r, 0, sizeof(*r));
    g = gcd_u32(EDGESER_TARGET_RATE_HZ, rate_in_hz);
    r->rate_in_hz = rate_in_hz;
    r->up = EDGESER_TARGET_RATE_HZ / g;
    r->down = rate_in_hz / g;
    r->n_stages = pl.n_stages;
    r->state_bytes = pl.state_bytes;
    r->kernel = decim_kernel_for_cpu();
    r->passband_hz = pl.st[pl.n_stages - 1u].passband_hz;
    r->stopband_hz = pl.st[pl.n_stages - 1u].stopband_hz;
    at = base + align_up(sizeof(struct edgeser_resampler));
    for (i = 0; i < pl.n_stages; ++i) {
        stage_init(&r->st[i], &pl.st[i], at);
        at += pl.st[i].mem_bytes;
    }
    r->mid = (float *)at;
    r->mid_cap = pl.mid_cap;
    clear_stream(r);
    r->magic = RESAMPLER_MAGIC;
    *out = r;
    return EDGESER_OK;
}

edgeser_status edgeser_resampler_create(uint32_t rate_in_hz, edgeser_resampler **out)
{
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

void edgeser_resampler_destroy(edgeser_resampler *r)
{
    if (r == NULL || r->magic != RESAMPLER_MAGIC) return;
    r->magic = 0;
    if (r->owns_memory) free(r);
}

static int valid(const edgeser_resampler *r) { return r != NULL && r->magic == RESAMPLER_MAGIC; }

/* Input samples one output depends on: the filter's span, or the two filters composed. */
static uint32_t span_taps(const edgeser_resampler *r)
{
    const design *a = &r->st[0].d, *b = &r->st[1].d;
    double span;
    if (r->n_stages == 1u) return a->taps;
    span = (double)(b->taps - 1u) * (double)a->down / (double)a->up + (double)a->taps;
    return 2u * (uint32_t)ceil(0.5 * span);
}

edgeser_status edgeser_resampler_info_get(const edgeser_resampler *r, edgeser_resampler_info *info)
{
    uint32_t i;
    if (r == NULL || info == NULL) return EDGESER_ERR_NULL;
    if (!valid(r)) return EDGESER_ERR_STATE;
    memset(info, 0, sizeof(*info));
    info->rate_in_hz = r->rate_in_hz;
    info->rate_out_hz = EDGESER_TARGET_RATE_HZ;
    info->up = r->up;
    info->down = r->down;
    info->taps_per_phase = span_taps(r);
    info->phases = r->st[0].d.phases;
    info->exact = 1;
    for (i = 0; i < r->n_stages; ++i) {
        info->exact &= r->st[i].d.phases == r->st[i].d.up;
        info->table_bytes += r->st[i].d.table_bytes;
    }
    info->passband_hz = r->passband_hz;
    info->stopband_hz = r->stopband_hz;
    info->stopband_db = STOPBAND_DB;
    info->state_bytes = r->state_bytes;
    return EDGESER_OK;
}

edgeser_status edgeser_resampler_stage_count(const edgeser_resampler *r, uint32_t *count)
{
    if (r == NULL || count == NULL) return EDGESER_ERR_NULL;
    if (!valid(r)) return EDGESER_ERR_STATE;
    *count = r->n_stages;
    return EDGESER_OK;
}

edgeser_status edgeser_resampler_stage_info(const edgeser_resampler *r, uint32_t index,
                                            edgeser_resampler_info *info)
{
    const design *d;
    if (r == NULL || info == NULL) return EDGESER_ERR_NULL;
    if (!valid(r)) return EDGESER_ERR_STATE;
    if (index >= r->n_stages) return EDGESER_ERR_ARGUMENT;
    d = &r->st[index].d;
    memset(info, 0, sizeof(*info));
    info->rate_in_hz = d->rate_in;
    info->rate_out_hz = d->rate_out;
    info->up = d->up;
    info->down = d->down;
    info->taps_per_phase = d->taps;
    info->phases = d->phases;
    info->exact = d->phases == d->up;
    info->passband_hz = d->identity ? 0.5 * (double)d->rate_in : d->passband_hz;
    info->stopband_hz = d->stopband_hz;
    info->stopband_db = STOPBAND_DB;
    info->table_bytes = d->table_bytes;
    info->state_bytes = r->state_bytes;
    return EDGESER_OK;
}

edgeser_status edgeser_resampler_reset(edgeser_resampler *r)
{
    if (r == NULL) return EDGESER_ERR_NULL;
    if (!valid(r)) return EDGESER_ERR_STATE;
    clear_stream(r);
    return EDGESER_OK;
}

/* Outputs of the whole resampler once `consumed` input samples are in (no flush). */
static edgeser_status total_ready(const edgeser_resampler *r, uint64_t consumed, uint64_t *total)
{
    const design *a = &r->st[0].d;
    edgeser_status st;
    uint64_t mid;
    if (consumed > UINT64_MAX - a->half) return EDGESER_ERR_OVERFLOW;
    st = stage_ready(a, consumed + a->half - 1u, &mid);
    if (st != EDGESER_OK || r->n_stages == 1u) {
        *total = mid;
        return st;
    }
    return stage_ready(&r->st[1].d, mid + r->st[1].d.half - 1u, total);
}

static edgeser_status flush_total(const edgeser_resampler *r, uint64_t *total)
{
    int overflow = 0;
    uint64_t limit = mul_u64(r->st[0].consumed, r->up, &overflow);
    if (overflow) return EDGESER_ERR_OVERFLOW;
    *total = outputs_below(limit, r->down);
    return EDGESER_OK;
}

static const stage *last_stage(const edgeser_resampler *r) { return &r->st[r->n_stages - 1u]; }

edgeser_status edgeser_resampler_max_output(const edgeser_resampler *r, size_t n_in, size_t *n_out)
{
    uint64_t total, emitted;
    edgeser_status st;
    if (r == NULL || n_out == NULL) return EDGESER_ERR_NULL;
    if (!valid(r) || r->finished) return EDGESER_ERR_STATE;
    if ((uint64_t)n_in > UINT64_MAX - r->st[0].consumed) return EDGESER_ERR_OVERFLOW;
    st = total_ready(r, r->st[0].consumed + (uint64_t)n_in, &total);
    if (st != EDGESER_OK) return st;
    emitted = last_stage(r)->emitted;
    total = total > emitted ? total - emitted : 0u;
    if (total > (uint64_t)SIZE_MAX) return EDGESER_ERR_OVERFLOW;
    *n_out = (size_t)total;
    return EDGESER_OK;
}

edgeser_status edgeser_resampler_flush_output(const edgeser_resampler *r, size_t *n_out)
{
    uint64_t total, emitted;
    edgeser_status st;
    if (r == NULL || n_out == NULL) return EDGESER_ERR_NULL;
    if (!valid(r) || r->finished) return EDGESER_ERR_STATE;
    st = flush_total(r, &total);
    if (st != EDGESER_OK) return st;
    emitted = last_stage(r)->emitted;
    total = total > emitted ? total - emitted : 0u;
    if (total > (uint64_t)SIZE_MAX) return EDGESER_ERR_OVERFLOW;
    *n_out = (size_t)total;
    return EDGESER_OK;
}

/* Take up to n samples (zeros when in == NULL) into the first stage and run the stages as far
 * as the input allows, stopping the last one at `limit` outputs (and the first one at
 * `mid_limit`); returns the samples taken. *written counts outputs. */
static size_t pass(edgeser_resampler *r, const float *in, size_t n, float *out, uint64_t mid_limit,
                   uint64_t limit, size_t *written)
{
    stage *a = &r->st[0];
    size_t take = stage_room(a), made;
    if (take > n) take = n;
    if (r->n_stages == 2u) {
        stage *b = &r->st[1];
        /* Stage 1's output for this pass must fit stage 2 and the staging buffer. */
        size_t room_b = stage_room(b);
        if (room_b > r->mid_cap) room_b = r->mid_cap;
        while (take > 0u) {
            uint64_t ready = 0;
            (void)stage_ready(&a->d, a->filled + take, &ready);
            if (ready > mid_limit) ready = mid_limit;
            if (ready <= a->emitted || ready - a->emitted <= room_b) break;
            take /= 2u;
        }
        stage_append(a, in, take);
        made = stage_emit(a, r->kernel, r->mid, mid_limit);
        stage_discard(a);
        stage_append(b, r->mid, made);
        *written += stage_emit(b, r->kernel, out + *written, limit);
        stage_discard(b);
    } else {
        stage_append(a, in, take);
        *written += stage_emit(a, r->kernel, out + *written, limit);
        stage_discard(a);
    }
    return take;
}

edgeser_status edgeser_resampler_process(edgeser_resampler *r, const float *in, size_t n_in,
                                         float *out, size_t out_capacity, size_t *n_out)
{
    size_t expected, written = 0;
    edgeser_status st;
    if (r == NULL || n_out == NULL) return EDGESER_ERR_NULL;
    if (n_in > 0u && in == NULL) return EDGESER_ERR_NULL;
    st = edgeser_resampler_max_output(r, n_in, &expected);
    if (st != EDGESER_OK) return st;
    if (expected > 0u && out == NULL) return EDGESER_ERR_NULL;
    if (out_capacity < expected) return EDGESER_ERR_BUFFER_TOO_SMALL;
    while (n_in > 0u) {
        size_t take = pass(r, in, n_in, out, UINT64_MAX, UINT64_MAX, &written);
        in += take;
        n_in -= take;
    }
    *n_out = written;
    return EDGESER_OK;
}

edgeser_status edgeser_resampler_flush(edgeser_resampler *r, float *out, size_t out_capacity,
                                       size_t *n_out)
{
    size_t expected, written = 0;
    uint64_t total, mid_total = UINT64_MAX;
    edgeser_status st;
    stage *z;
    if (r == NULL || n_out == NULL) return EDGESER_ERR_NULL;
    st = edgeser_resampler_flush_output(r, &expected);
    if (st != EDGESER_OK) return st;
    if (expected > 0u && out == NULL) return EDGESER_ERR_NULL;
    if (out_capacity < expected) return EDGESER_ERR_BUFFER_TOO_SMALL;
    st = flush_total(r, &total);
    if (st != EDGESER_OK) return st;
    if (r->n_stages == 2u) {
        /* Stage 2's last output j = total - 1 reads stage-1 outputs up to 2 j + H2. */
        mid_total = total == 0u ? 0u : 2u * (total - 1u) + r->st[1].d.half + 1u;
    }
    z = &r->st[r->n_stages - 1u];
    /* Zeros past the end complete the support of the last outputs. */
    while (z->emitted < total) {
        (void)pass(r, NULL, SIZE_MAX, out, mid_total, total, &written);
    }
    r->finished = 1;
    *n_out = written;
    return EDGESER_OK;
}

edgeser_status edgeser_resampler_bounds_(uint32_t rate_in_hz, size_t n_in, size_t *process_bound,
                                         size_t *flush_bound)
{
    plan pl;
    int overflow = 0;
    uint64_t num, total, look;
    edgeser_status st = make_plan(rate_in_hz, &pl);
    if (st != EDGESER_OK) return st;
    /* process: the outputs of n more input samples, <= ceil(n * 16000 / rate) + 1 per stage. */
    num = mul_u64((uint64_t)n_in, EDGESER_TARGET_RATE_HZ, &overflow);
    if (overflow) return EDGESER_ERR_OVERFLOW;
    total = outputs_below(num, rate_in_hz) + 2u;
    if (total > (uint64_t)SIZE_MAX) return EDGESER_ERR_OVERFLOW;
    *process_bound = (size_t)total;
    /* flush: the outputs the look-ahead held back, <= H1 input samples plus H2 of stage 2's. */
    look = outputs_below((uint64_t)pl.st[0].half * EDGESER_TARGET_RATE_HZ, rate_in_hz) + 2u;
    if (pl.n_stages == 2u) look += (pl.st[1].half + 1u) / 2u + 2u;
    *flush_bound = (size_t)look;
    return EDGESER_OK;
}
