/*
 * Laughter events from per-window probabilities, and running per-stream summaries.
 *
 * The event tracker keeps one open event (the union of active windows so far, not yet closed)
 * and the hysteresis state (whether the previous window was active). For each window, in order:
 *   1. an open event ends when the window starts more than merge_gap after the event's end;
 *      it is reported unless shorter than min_duration;
 *   2. the window is active when voiced and p >= threshold, or, when the previous window was
 *      active (and step 1 closed nothing), p >= release;
 *   3. an active window opens an event, or extends the open one (its end becomes the larger
 *      of the two ends; a strictly higher probability becomes the peak).
 * With release == threshold this is edgeser.events.EventTracker's rule, which the Python
 * runtime now calls through this code; its NumPy reference is the test oracle.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edgeser/frontend.h"
#include "internal.h"

#define TRACKER_MAGIC 0x65646576u /* "edev" */
#define SUMMARY_MAGIC 0x65647375u /* "edsu" */

struct edgeser_event_tracker {
    uint32_t magic;
    int owns_memory;
    edgeser_event_config config;
    edgeser_event open_event;
    int open;          /* open_event holds an event not yet closed */
    int on;            /* the previous window was active */
    int seen;          /* a window was added since init/reset */
    int finished;
    uint64_t last_start;
};

static edgeser_status check_event_config(const edgeser_event_config *c)
{
    if (c == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!isfinite(c->threshold) || !isfinite(c->release) || c->release > c->threshold) {
        return EDGESER_ERR_ARGUMENT;
    }
    return EDGESER_OK;
}

static int tracker_valid(const edgeser_event_tracker *t)
{
    return t != NULL && t->magic == TRACKER_MAGIC;
}

static void tracker_clear(edgeser_event_tracker *t)
{
    memset(&t->open_event, 0, sizeof(t->open_event));
    t->open = 0;
    t->on = 0;
    t->seen = 0;
    t->finished = 0;
    t->last_start = 0u;
}

EDGESER_API edgeser_status edgeser_event_tracker_size(size_t *bytes)
{
    if (bytes == NULL) {
        return EDGESER_ERR_NULL;
    }
    *bytes = edgeser_align_up_(sizeof(struct edgeser_event_tracker));
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_event_tracker_init(void *mem, size_t bytes,
                                                      const edgeser_event_config *config,
                                                      edgeser_event_tracker **out)
{
    edgeser_event_tracker *t;
    edgeser_status st;

    if (mem == NULL || out == NULL || config == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (((uintptr_t)mem & 15u) != 0u) {
        return EDGESER_ERR_ARGUMENT;
    }
    st = check_event_config(config);
    if (st != EDGESER_OK) {
        return st;
    }
    if (bytes < edgeser_align_up_(sizeof(struct edgeser_event_tracker))) {
        return EDGESER_ERR_BUFFER_TOO_SMALL;
    }
    t = (edgeser_event_tracker *)mem;
    memset(t, 0, sizeof(*t));
    t->config = *config;
    tracker_clear(t);
    t->magic = TRACKER_MAGIC;
    *out = t;
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_event_tracker_create(const edgeser_event_config *config,
                                                        edgeser_event_tracker **out)
{
    size_t bytes;
    void *mem;
    edgeser_status st;

    if (out == NULL) {
        return EDGESER_ERR_NULL;
    }
    st = check_event_config(config);
    if (st != EDGESER_OK) {
        return st;
    }
    (void)edgeser_event_tracker_size(&bytes);
    mem = malloc(bytes);
    if (mem == NULL) {
        return EDGESER_ERR_NOMEM;
    }
    st = edgeser_event_tracker_init(mem, bytes, config, out);
    if (st != EDGESER_OK) {
        free(mem);
        return st;
    }
    (*out)->owns_memory = 1;
    return EDGESER_OK;
}

EDGESER_API void edgeser_event_tracker_destroy(edgeser_event_tracker *t)
{
    if (!tracker_valid(t)) {
        return;
    }
    t->magic = 0u;
    if (t->owns_memory) {
        free(t);
    }
}

EDGESER_API edgeser_status edgeser_event_tracker_reset(edgeser_event_tracker *t)
{
    if (t == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!tracker_valid(t)) {
        return EDGESER_ERR_STATE;
    }
    tracker_clear(t);
    return EDGESER_OK;
}

/* Close the open event: *closed = 1 and *event set when it is long enough to keep. */
static void close_event(edgeser_event_tracker *t, edgeser_event *event, int *closed)
{
    if (t->open_event.stop - t->open_event.start >= t->config.min_duration) {
        *event = t->open_event;
        *closed = 1;
    }
    t->open = 0;
}

EDGESER_API edgeser_status edgeser_event_tracker_add(edgeser_event_tracker *t, uint64_t start,
                                                     uint64_t stop, double probability,
                                                     int silent, edgeser_event *event,
                                                     int *closed)
{
    int active;

    if (t == NULL || event == NULL || closed == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!tracker_valid(t) || t->finished) {
        return EDGESER_ERR_STATE;
    }
    if (stop <= start || (t->seen && start < t->last_start) || (!silent && isnan(probability))) {
        return EDGESER_ERR_ARGUMENT;
    }
    *closed = 0;
    t->seen = 1;
    t->last_start = start;

    if (t->open && start > t->open_event.stop &&
        start - t->open_event.stop > t->config.merge_gap) {
        close_event(t, event, closed);
        t->on = 0; /* a run that ended in a gap this long starts afresh */
    }
    if (silent) {
        active = 0;
    } else {
        active = probability >= (t->on ? t->config.release : t->config.threshold);
    }
    t->on = active;
    if (!active) {
        return EDGESER_OK;
    }
    if (!t->open) {
        t->open_event.start = start;
        t->open_event.stop = stop;
        t->open_event.peak = probability;
        t->open_event.peak_start = start;
        t->open_event.peak_stop = stop;
        t->open_event.windows = 1u;
        t->open = 1;
    } else {
        edgeser_event *e = &t->open_event;
        if (stop > e->stop) {
            e->stop = stop;
        }
        e->windows += 1u;
        if (probability > e->peak) {
            e->peak = probability;
            e->peak_start = start;
            e->peak_stop = stop;
        }
    }
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_event_tracker_finish(edgeser_event_tracker *t,
                                                        edgeser_event *event, int *closed)
{
    if (t == NULL || event == NULL || closed == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!tracker_valid(t) || t->finished) {
        return EDGESER_ERR_STATE;
    }
    *closed = 0;
    if (t->open) {
        close_event(t, event, closed);
    }
    t->on = 0;
    t->finished = 1;
    return EDGESER_OK;
}

/* ---------------------------------------------------------------- summary -------------- */

struct edgeser_summary {
    uint32_t magic;
    int owns_memory;
    uint32_t n_outputs;
    uint64_t windows;
    uint64_t voiced;
    uint64_t events;
    uint64_t event_samples;
    double *sums;          /* n_outputs */
};

static int summary_valid(const edgeser_summary *s)
{
    return s != NULL && s->magic == SUMMARY_MAGIC;
}

static void summary_clear(edgeser_summary *s)
{
    s->windows = 0u;
    s->voiced = 0u;
    s->events = 0u;
    s->event_samples = 0u;
    memset(s->sums, 0, (size_t)s->n_outputs * sizeof(double));
}

EDGESER_API edgeser_status edgeser_summary_size(uint32_t n_outputs, size_t *bytes)
{
    size_t sums;
    if (bytes == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (n_outputs == 0u || n_outputs > (uint32_t)INT32_MAX) {
        return EDGESER_ERR_ARGUMENT; /* `top` is an int32_t index */
    }
    if (!edgeser_mul_size_((size_t)n_outputs, sizeof(double), &sums) ||
        !edgeser_add_size_(edgeser_align_up_(sizeof(struct edgeser_summary)), sums, bytes)) {
        return EDGESER_ERR_OVERFLOW;
    }
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_summary_init(void *mem, size_t bytes, uint32_t n_outputs,
                                                edgeser_summary **out)
{
    size_t need;
    edgeser_summary *s;
    edgeser_status st;

    if (mem == NULL || out == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (((uintptr_t)mem & 15u) != 0u) {
        return EDGESER_ERR_ARGUMENT;
    }
    st = edgeser_summary_size(n_outputs, &need);
    if (st != EDGESER_OK) {
        return st;
    }
    if (bytes < need) {
        return EDGESER_ERR_BUFFER_TOO_SMALL;
    }
    s = (edgeser_summary *)mem;
    memset(s, 0, sizeof(*s));
    s->n_outputs = n_outputs;
    s->sums = (double *)((unsigned char *)mem + edgeser_align_up_(sizeof(struct edgeser_summary)));
    summary_clear(s);
    s->magic = SUMMARY_MAGIC;
    *out = s;
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_summary_create(uint32_t n_outputs, edgeser_summary **out)
{
    size_t bytes;
    void *mem;
    edgeser_status st;

    if (out == NULL) {
        return EDGESER_ERR_NULL;
    }
    st = edgeser_summary_size(n_outputs, &bytes);
    if (st != EDGESER_OK) {
        return st;
    }
    mem = malloc(bytes);
    if (mem == NULL) {
        return EDGESER_ERR_NOMEM;
    }
    st = edgeser_summary_init(mem, bytes, n_outputs, out);
    if (st != EDGESER_OK) {
        free(mem);
        return st;
    }
    (*out)->owns_memory = 1;
    return EDGESER_OK;
}

EDGESER_API void edgeser_summary_destroy(edgeser_summary *s)
{
    if (!summary_valid(s)) {
        return;
    }
    s->magic = 0u;
    if (s->owns_memory) {
        free(s);
    }
}

EDGESER_API edgeser_status edgeser_summary_reset(edgeser_summary *s)
{
    if (s == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!summary_valid(s)) {
        return EDGESER_ERR_STATE;
    }
    summary_clear(s);
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_summary_add_window(edgeser_summary *s, const double *outputs)
{
    uint32_t i;
    if (s == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!summary_valid(s)) {
        return EDGESER_ERR_STATE;
    }
    if (s->windows == UINT64_MAX) {
        return EDGESER_ERR_OVERFLOW;
    }
    s->windows += 1u;
    if (outputs == NULL) {
        return EDGESER_OK;
    }
    s->voiced += 1u;
    for (i = 0; i < s->n_outputs; ++i) {
        s->sums[i] += outputs[i];
    }
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_summary_add_event(edgeser_summary *s, uint64_t start,
                                                     uint64_t stop)
{
    if (s == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!summary_valid(s)) {
        return EDGESER_ERR_STATE;
    }
    if (stop < start) {
        return EDGESER_ERR_ARGUMENT;
    }
    if (stop - start > UINT64_MAX - s->event_samples || s->events == UINT64_MAX) {
        return EDGESER_ERR_OVERFLOW;
    }
    s->events += 1u;
    s->event_samples += stop - start;
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_summary_get(const edgeser_summary *s,
                                               edgeser_summary_totals *totals, double *means)
{
    uint32_t i;
    if (s == NULL || totals == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!summary_valid(s)) {
        return EDGESER_ERR_STATE;
    }
    totals->windows = s->windows;
    totals->voiced = s->voiced;
    totals->silent = s->windows - s->voiced;
    totals->events = s->events;
    totals->event_samples = s->event_samples;
    totals->event_seconds = (double)s->event_samples / (double)EDGESER_TARGET_RATE_HZ;
    totals->top = -1;
    if (s->voiced == 0u) {
        return EDGESER_OK;
    }
    {
        /* argmax with NumPy's rule: the first of equal maxima, or the first NaN. */
        double best = 0.0;
        for (i = 0; i < s->n_outputs; ++i) {
            double mean = s->sums[i] / (double)s->voiced;
            if (means != NULL) {
                means[i] = mean;
            }
            if (totals->top >= 0 && isnan(best)) {
                continue;
            }
            if (totals->top < 0 || isnan(mean) || mean > best) {
                best = mean;
                totals->top = (int32_t)i;
            }
        }
    }
    return EDGESER_OK;
}
