/*
 * A small real FFT for power-of-two sizes, for the noise suppressor's short-time spectra.
 *
 * A real sequence of n samples is transformed as a complex sequence of m = n/2 values
 * z[j] = x[2j] + i x[2j+1] (iterative radix-2 decimation in time, bit-reversed input order),
 * then split into the spectra of the even and odd samples and recombined:
 *
 *     X[k] = E[k] + w^k O[k],   E[k] = (Z[k] + conj Z[m-k]) / 2,   O[k] = (Z[k] - conj Z[m-k]) / 2i
 *
 * with w = exp(-2 pi i / n). The inverse runs the same steps backwards. Tables are computed in
 * double and stored as float: w^k for k < n/2 (interleaved cos, -sin) and the bit-reversal
 * permutation of m entries.
 */
#include "fft.h"

#include <math.h>

#define PI_D 3.14159265358979323846

size_t edgeser_rfft_table_floats_(size_t n)
{
    return n; /* n/2 complex twiddles */
}

void edgeser_rfft_init_(size_t n, float *twiddles, uint32_t *bitrev)
{
    size_t m = n / 2u, k, bits = 0u;

    for (k = 0; k < m; ++k) {
        double angle = -2.0 * PI_D * (double)k / (double)n;
        twiddles[2u * k] = (float)cos(angle);
        twiddles[2u * k + 1u] = (float)sin(angle);
    }
    while (((size_t)1u << bits) < m) {
        ++bits;
    }
    for (k = 0; k < m; ++k) {
        size_t r = 0u, b;
        for (b = 0; b < bits; ++b) {
            r |= ((k >> b) & 1u) << (bits - 1u - b);
        }
        bitrev[k] = (uint32_t)r;
    }
}

/* In-place forward complex FFT of m = n/2 interleaved values; twiddles of size n, so the
 * m-point twiddle j is entry 2j. */
static void cfft(float *z, size_t m, const float *tw, const uint32_t *bitrev)
{
    size_t k, len;

    for (k = 0; k < m; ++k) {
        size_t r = bitrev[k];
        if (r > k) {
            float tr = z[2u * k], ti = z[2u * k + 1u];
            z[2u * k] = z[2u * r];
            z[2u * k + 1u] = z[2u * r + 1u];
            z[2u * r] = tr;
            z[2u * r + 1u] = ti;
        }
    }
    for (len = 2u; len <= m; len <<= 1) {
        size_t half = len / 2u, stride = 2u * (m / len), start, j;
        for (start = 0; start < m; start += len) {
            for (j = 0; j < half; ++j) {
                float wr = tw[2u * (j * stride)], wi = tw[2u * (j * stride) + 1u];
                float *a = z + 2u * (start + j), *b = z + 2u * (start + j + half);
                float br = b[0] * wr - b[1] * wi, bi = b[0] * wi + b[1] * wr;
                b[0] = a[0] - br;
                b[1] = a[1] - bi;
                a[0] += br;
                a[1] += bi;
            }
        }
    }
}

void edgeser_rfft_forward_(float *buf, size_t n, const float *tw, const uint32_t *bitrev)
{
    size_t m = n / 2u, k;
    float r0, i0;

    cfft(buf, m, tw, bitrev);
    r0 = buf[0];
    i0 = buf[1];
    buf[0] = r0 + i0; /* X[0] */
    buf[1] = r0 - i0; /* X[m], packed in the imaginary slot of X[0] */
    for (k = 1; k <= m / 2u; ++k) {
        size_t j = m - k;
        float ar = buf[2u * k], ai = buf[2u * k + 1u];
        float br = buf[2u * j], bi = -buf[2u * j + 1u]; /* conj Z[m-k] */
        float er = 0.5f * (ar + br), ei = 0.5f * (ai + bi);
        /* O = (A - B) / 2i = (-i/2)(A - B) */
        float or_ = 0.5f * (ai - bi), oi = -0.5f * (ar - br);
        float wr = tw[2u * k], wi = tw[2u * k + 1u];
        float tr = wr * or_ - wi * oi, ti = wr * oi + wi * or_;
        buf[2u * k] = er + tr;
        buf[2u * k + 1u] = ei + ti;
        if (j != k) {
            /* X[m-k] = conj(E - w^k O) */
            buf[2u * j] = er - tr;
            buf[2u * j + 1u] = -(ei - ti);
        }
    }
}

void edgeser_rfft_inverse_(float *buf, size_t n, const float *tw, const uint32_t *bitrev)
{
    size_t m = n / 2u, k;
    float x0 = buf[0], xm = buf[1], scale = 1.0f / (float)m;

    /* Z[0] = E[0] + i O[0], E[0] = (X[0] + X[m]) / 2, O[0] = (X[0] - X[m]) / 2 */
    buf[0] = 0.5f * (x0 + xm);
    buf[1] = 0.5f * (x0 - xm);
    for (k = 1; k <= m / 2u; ++k) {
        size_t j = m - k;
        float ar = buf[2u * k], ai = buf[2u * k + 1u];
        float br = buf[2u * j], bi = -buf[2u * j + 1u]; /* conj X[m-k] */
        float er = 0.5f * (ar + br), ei = 0.5f * (ai + bi);
        /* O = (A - B) conj(w^k) / 2 */
        float dr = 0.5f * (ar - br), di = 0.5f * (ai - bi);
        float wr = tw[2u * k], wi = -tw[2u * k + 1u];
        float or_ = dr * wr - di * wi, oi = dr * wi + di * wr;
        /* Z[k] = E + i O; Z[m-k] = conj(E) + i conj(O) */
        buf[2u * k] = er - oi;
        buf[2u * k + 1u] = ei + or_;
        if (j != k) {
            buf[2u * j] = er + oi;
            buf[2u * j + 1u] = -ei + or_;
        }
    }
    /* Inverse complex FFT as conj(FFT(conj Z)) / m. */
    for (k = 0; k < m; ++k) {
        buf[2u * k + 1u] = -buf[2u * k + 1u];
    }
    cfft(buf, m, tw, bitrev);
    for (k = 0; k < m; ++k) {
        buf[2u * k] *= scale;
        buf[2u * k + 1u] *= -scale;
    }
}
