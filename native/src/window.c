/* Normalisation, RMS level and windowing for the edgeser native frontend. */
#include <math.h>

#include "edgeser/frontend.h"

EDGESER_API edgeser_status edgeser_normalize(const float *in, size_t n, float *out)
{
    double mean = 0.0;
    double var = 0.0;
    double denom;
    size_t i;

    if (n == 0u) {
        return EDGESER_OK;
    }
    if (in == NULL || out == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (n > SIZE_MAX / sizeof(float)) {
        return EDGESER_ERR_OVERFLOW;
    }

    for (i = 0; i < n; ++i) {
        mean += (double)in[i];
    }
    mean /= (double)n;
    for (i = 0; i < n; ++i) {
        double d = (double)in[i] - mean;
        var += d * d;
    }
    var /= (double)n;
    denom = sqrt(var + EDGESER_NORM_EPSILON);

    /* Both statistics are complete before the first write, so `out` may alias `in`. */
    for (i = 0; i < n; ++i) {
        out[i] = (float)(((double)in[i] - mean) / denom);
    }
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_rms_dbfs(const float *in, size_t n, float *dbfs)
{
    double sum_sq = 0.0;
    double mean_sq;
    double level;
    size_t i;

    if (dbfs == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (n == 0u) {
        *dbfs = EDGESER_DBFS_FLOOR;
        return EDGESER_OK;
    }
    if (in == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (n > SIZE_MAX / sizeof(float)) {
        return EDGESER_ERR_OVERFLOW;
    }

    for (i = 0; i < n; ++i) {
        double x = (double)in[i];
        sum_sq += x * x;
    }
    mean_sq = sum_sq / (double)n;
    if (mean_sq == 0.0) {
        *dbfs = EDGESER_DBFS_FLOOR;
        return EDGESER_OK;
    }
    level = 20.0 * log10(sqrt(mean_sq));
    /* NaN compares false here and passes through unchanged. */
    if (level < (double)EDGESER_DBFS_FLOOR) {
        level = (double)EDGESER_DBFS_FLOOR;
    }
    *dbfs = (float)level;
    return EDGESER_OK;
}

/* The window layout of a signal: `n_full` full windows [k*hop, k*hop + window), and when
 * `has_tail`, one more window [tail_start, n); when `n_full` is 0 and `has_tail`, the single
 * window is [0, n). */
typedef struct window_layout {
    size_t n_full;
    int has_tail;
    size_t tail_start;
} window_layout;

static edgeser_status layout_windows(size_t n, size_t window, size_t hop, size_t min_len,
                                     window_layout *lay)
{
    size_t k_full;

    if (window == 0u || hop == 0u || hop > window) {
        return EDGESER_ERR_ARGUMENT;
    }
    lay->n_full = 0u;
    lay->has_tail = 0;
    lay->tail_start = 0u;

    k_full = (n >= window) ? (n - window) / hop + 1u : 0u;
    if (k_full == 0u) {
        /* Shorter than one window: the whole signal is one short window. */
        if (n > 0u && n >= min_len) {
            lay->has_tail = 1;
            lay->tail_start = 0u;
        }
        return EDGESER_OK;
    }

    lay->n_full = k_full;
    {
        size_t last_start;
        size_t last_end;
        size_t tail_start;

        if ((k_full - 1u) > SIZE_MAX / hop) {
            return EDGESER_ERR_OVERFLOW;
        }
        last_start = (k_full - 1u) * hop;
        if (last_start > SIZE_MAX - window) {
            return EDGESER_ERR_OVERFLOW;
        }
        last_end = last_start + window;
        if (last_end < n) {
            if (last_start > SIZE_MAX - hop) {
                return EDGESER_ERR_OVERFLOW;
            }
            tail_start = last_start + hop; /* k_full * hop <= last_end < n since hop <= window */
            if (tail_start < n && n - tail_start >= min_len) {
                lay->has_tail = 1;
                lay->tail_start = tail_start;
            }
        }
    }
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_window_count(size_t n, size_t window, size_t hop,
                                                size_t min_len, size_t *count)
{
    window_layout lay;
    edgeser_status st;

    if (count == NULL) {
        return EDGESER_ERR_NULL;
    }
    st = layout_windows(n, window, hop, min_len, &lay);
    if (st != EDGESER_OK) {
        return st;
    }
    /* n_full <= n, so adding one cannot wrap. */
    *count = lay.n_full + (lay.has_tail ? 1u : 0u);
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_window_bounds(size_t n, size_t window, size_t hop,
                                                 size_t min_len, size_t k, size_t *start,
                                                 size_t *len)
{
    window_layout lay;
    edgeser_status st;
    size_t count;

    if (start == NULL || len == NULL) {
        return EDGESER_ERR_NULL;
    }
    st = layout_windows(n, window, hop, min_len, &lay);
    if (st != EDGESER_OK) {
        return st;
    }
    count = lay.n_full + (lay.has_tail ? 1u : 0u);
    if (k >= count) {
        return EDGESER_ERR_ARGUMENT;
    }
    if (k < lay.n_full) {
        /* k*hop <= (n_full-1)*hop, already checked by layout_windows. */
        *start = k * hop;
        *len = window;
    } else {
        *start = lay.tail_start;
        *len = n - lay.tail_start;
    }
    return EDGESER_OK;
}
