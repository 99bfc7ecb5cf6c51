/* The real FFT of fft.c, private to the library (hidden symbols, edgeser_ prefix). */
#ifndef EDGESER_FFT_H
#define EDGESER_FFT_H

#include <stddef.h>
#include <stdint.h>

/* Floats of twiddle table for a transform of n real samples (n a power of two, >= 4); the
 * bit-reversal table has n/2 entries. */
size_t edgeser_rfft_table_floats_(size_t n);
void edgeser_rfft_init_(size_t n, float *twiddles, uint32_t *bitrev);

/* In place: n real samples in; out, X[0] in buf[0], X[n/2] in buf[1] (both real), and
 * Re/Im of X[k] in buf[2k], buf[2k+1] for 0 < k < n/2. X[k] = sum_t x[t] exp(-2 pi i k t / n). */
void edgeser_rfft_forward_(float *buf, size_t n, const float *twiddles, const uint32_t *bitrev);

/* In place, the exact inverse of edgeser_rfft_forward_ (includes the 1/n). */
void edgeser_rfft_inverse_(float *buf, size_t n, const float *twiddles, const uint32_t *bitrev);

#endif /* EDGESER_FFT_H */
