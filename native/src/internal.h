/* Declarations shared between the library's source files; not part of the public API. The
 * functions are not exported from the shared library (it is built with hidden visibility and
 * they carry no EDGESER_API), and their names keep the edgeser_ prefix so that a static link
 * adds no unprefixed symbol. */
#ifndef EDGESER_INTERNAL_H
#define EDGESER_INTERNAL_H

#include "edgeser/frontend.h"

/* For a resampler from `rate_in_hz`, whatever its state: the most samples
 * edgeser_resampler_process can return for `n_in` input samples (*process_bound) and the most
 * edgeser_resampler_flush can return (*flush_bound). EDGESER_ERR_RATE or _OVERFLOW. */
edgeser_status edgeser_resampler_bounds_(uint32_t rate_in_hz, size_t n_in, size_t *process_bound,
                                         size_t *flush_bound);

/* Alignment of every object's pieces inside caller memory. */
#define EDGESER_ALIGN_BYTES 64u

static inline size_t edgeser_align_up_(size_t n)
{
    return (n + (EDGESER_ALIGN_BYTES - 1u)) & ~(size_t)(EDGESER_ALIGN_BYTES - 1u);
}

/* *sum = a + b, or 0 (returning 0) when that would overflow size_t (or exceed the alignment
 * headroom). */
static inline int edgeser_add_size_(size_t a, size_t b, size_t *sum)
{
    if (a > SIZE_MAX - EDGESER_ALIGN_BYTES || b > SIZE_MAX - EDGESER_ALIGN_BYTES - a) {
        return 0;
    }
    *sum = a + b;
    return 1;
}

static inline int edgeser_mul_size_(size_t a, size_t b, size_t *product)
{
    if (a != 0u && b > (SIZE_MAX - EDGESER_ALIGN_BYTES) / a) {
        return 0;
    }
    *product = a * b;
    return 1;
}

#endif /* EDGESER_INTERNAL_H */
