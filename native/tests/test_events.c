/* Tests for the laughter event tracker and the stream summary: the cases of
 * tests/test_detect.py (unions of windows above the threshold, merge gap, minimum duration,
 * silent windows), hysteresis, peaks, when each event is reported, random sequences against an
 * offline reference of the rule, argument and state errors, caller memory; the summary's
 * counts, means, top index and event totals. Plain C99 + libm. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgeser/frontend.h"
#include "check.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
#define SILENT (-1.0) /* a probability slot meaning "silent window" in the tables below */
#define MAX_EVENTS 256

typedef struct result {
    size_t count;
    edgeser_event ev[MAX_EVENTS];
    size_t closed_at[MAX_EVENTS]; /* index of the window whose add reported it; n for finish */
} result;

static edgeser_event_config config(double threshold, double release, uint64_t min_duration,
                                   uint64_t merge_gap)
{
    edgeser_event_config c;
    c.threshold = threshold;
    c.release = release;
    c.min_duration = min_duration;
    c.merge_gap = merge_gap;
    return c;
}

/* Window k spans [k*hop, k*hop + length). */
static result track(const edgeser_event_config *c, const double *p, size_t n, uint64_t hop,
                    uint64_t length)
{
    result r;
    edgeser_event_tracker *t = NULL;
    size_t k;
    memset(&r, 0, sizeof(r));
    CHECK_STATUS(edgeser_event_tracker_create(c, &t), EDGESER_OK);
    for (k = 0; k <= n; ++k) {
        edgeser_event e;
        int closed = -1;
        if (k < n) {
            CHECK_STATUS(edgeser_event_tracker_add(t, k * hop, k * hop + length,
                                                   p[k] < 0.0 ? 0.0 : p[k], p[k] < 0.0, &e,
                                                   &closed),
                         EDGESER_OK);
        } else {
            CHECK_STATUS(edgeser_event_tracker_finish(t, &e, &closed), EDGESER_OK);
        }
        CHECK(closed == 0 || closed == 1);
        if (closed == 1 && r.count < MAX_EVENTS) {
            r.closed_at[r.count] = k;
            r.ev[r.count++] = e;
        }
    }
    edgeser_event_tracker_destroy(t);
    return r;
}

/* tests/test_detect.py: hop 4000, windows of 16000. */
static void test_python_cases(void)
{
    static const double p1[] = {0.1, 0.7, 0.9, 0.6, 0.2, 0.1, 0.1, 0.1, 0.1, 0.8, 0.3};
    static const double p2[] = {0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9};
    static const double p3[] = {0.1, 0.9, 0.1, 0.1, 0.1, 0.1};
    static const double p4[] = {0.9, SILENT, SILENT, SILENT, SILENT, 0.9};
    edgeser_event_config c = config(0.5, 0.5, 0, 0);
    result r = track(&c, p1, COUNT_OF(p1), 4000, 16000);

    CHECK(r.count == 2u);
    CHECK(r.ev[0].start == 4000u && r.ev[0].stop == 28000u && r.ev[0].windows == 3u);
    CHECK(r.ev[0].peak == 0.9 && r.ev[0].peak_start == 8000u && r.ev[0].peak_stop == 24000u);
    CHECK(r.ev[1].start == 36000u && r.ev[1].stop == 52000u && r.ev[1].windows == 1u);
    /* Reported by the first window starting more than merge_gap after its end (28000: k=8),
     * the last one at finish. */
    CHECK(r.closed_at[0] == 8u && r.closed_at[1] == COUNT_OF(p1));

    c = config(0.5, 0.5, 0, 7999);
    CHECK(track(&c, p2, COUNT_OF(p2), 4000, 16000).count == 2u);
    c = config(0.5, 0.5, 0, 8000);
    r = track(&c, p2, COUNT_OF(p2), 4000, 16000);
    CHECK(r.count == 1u && r.ev[0].start == 0u && r.ev[0].stop == 40000u && r.ev[0].windows == 2u);
    c = config(0.5, 0.5, 16001, 0);
    CHECK(track(&c, p3, COUNT_OF(p3), 4000, 16000).count == 0u);
    c = config(0.5, 0.5, 16000, 0);
    CHECK(track(&c, p3, COUNT_OF(p3), 4000, 16000).count == 1u);
    c = config(0.5, 0.5, 0, 0);
    CHECK(track(&c, p4, COUNT_OF(p4), 4000, 16000).count == 2u);
    /* At the threshold counts (>=). */
    {
        static const double edge[] = {0.5, 0.4999999};
        r = track(&c, edge, 2, 16000, 16000);
        CHECK(r.count == 1u && r.ev[0].windows == 1u && r.ev[0].stop == 16000u);
    }
}

static void test_hysteresis(void)
{
    /* Non-overlapping 1 s windows. */
    static const double p[] = {0.2, 0.8, 0.6, 0.55, 0.3, 0.6, 0.9, 0.45, 0.7};
    edgeser_event_config c = config(0.7, 0.7, 0, 0);
    result r = track(&c, p, COUNT_OF(p), 16000, 16000);
    /* Without hysteresis: windows 1, 6, 8 (8 is separated by window 7). */
    CHECK(r.count == 3u);
    c = config(0.7, 0.5, 0, 0);
    r = track(&c, p, COUNT_OF(p), 16000, 16000);
    /* With release 0.5: 1..3 (0.6, 0.55 hold it), 4 ends it; 5 (0.6) cannot start one; 6..7?
     * 7 is 0.45 < 0.5: ends; 8 starts anew. */
    CHECK(r.count == 3u);
    CHECK(r.ev[0].start == 16000u && r.ev[0].stop == 64000u && r.ev[0].windows == 3u);
    CHECK(r.ev[0].peak == 0.8 && r.ev[0].peak_start == 16000u);
    CHECK(r.ev[1].start == 96000u && r.ev[1].stop == 112000u && r.ev[1].windows == 1u);
    CHECK(r.ev[2].start == 128000u && r.ev[2].windows == 1u);
    /* A silent window ends the hysteresis run: the next 0.6 cannot continue it. */
    {
        static const double q[] = {0.8, SILENT, 0.6, 0.8};
        c = config(0.7, 0.5, 0, 32000);
        r = track(&c, q, COUNT_OF(q), 16000, 16000);
        /* The gap bridges window 0 and window 3; window 2 is not active. */
        CHECK(r.count == 1u && r.ev[0].start == 0u && r.ev[0].stop == 64000u &&
              r.ev[0].windows == 2u);
    }
    /* Release above threshold, NaN or infinite settings are refused. */
    {
        edgeser_event_tracker *t = NULL;
        c = config(0.5, 0.6, 0, 0);
        CHECK_STATUS(edgeser_event_tracker_create(&c, &t), EDGESER_ERR_ARGUMENT);
        c = config(NAN, 0.5, 0, 0);
        CHECK_STATUS(edgeser_event_tracker_create(&c, &t), EDGESER_ERR_ARGUMENT);
        c = config(0.5, -INFINITY, 0, 0);
        CHECK_STATUS(edgeser_event_tracker_create(&c, &t), EDGESER_ERR_ARGUMENT);
        CHECK(t == NULL);
    }
}

/* The rule stated offline: activity by hysteresis over the whole sequence, then the union of
 * active windows, joined across gaps <= merge_gap, short ones dropped. Windows are regular
 * (start k*hop, length >= hop), so a run is never split by a gap. */
static size_t offline(const edgeser_event_config *c, const double *p, size_t n, uint64_t hop,
                      uint64_t length, edgeser_event *out)
{
    size_t k, count = 0;
    int on = 0, open = 0;
    edgeser_event cur;
    memset(&cur, 0, sizeof(cur));
    for (k = 0; k < n; ++k) {
        int active = p[k] >= 0.0 && p[k] >= (on ? c->release : c->threshold);
        uint64_t start = k * hop, stop = start + length;
        on = active;
        if (!active) {
            continue;
        }
        if (open && start > cur.stop && start - cur.stop > c->merge_gap) {
            if (cur.stop - cur.start >= c->min_duration) {
                out[count++] = cur;
            }
            open = 0;
        }
        if (!open) {
            cur.start = start;
            cur.stop = stop;
            cur.peak = p[k];
            cur.peak_start = start;
            cur.peak_stop = stop;
            cur.windows = 1u;
            open = 1;
        } else {
            cur.stop = stop > cur.stop ? stop : cur.stop;
            cur.windows += 1u;
            if (p[k] > cur.peak) {
                cur.peak = p[k];
                cur.peak_start = start;
                cur.peak_stop = stop;
            }
        }
    }
    if (open && cur.stop - cur.start >= c->min_duration) {
        out[count++] = cur;
    }
    return count;
}

static void test_random_against_offline(void)
{
    uint32_t s = 12345u;
    unsigned trial;
    double p[400];
    edgeser_event want[MAX_EVENTS];
    for (trial = 0; trial < 2000u; ++trial) {
        size_t n, k, count, e;
        uint64_t hop, length, max_start = 0;
        edgeser_event_config c;
        result r;
        int ok;
        s = s * 1664525u + 1013904223u;
        n = 1u + (s >> 8) % 400u;
        hop = 320u * (1u + (s >> 20) % 10u);
        length = hop * (1u + (s >> 24) % 4u);
        c.threshold = 0.3 + 0.5 * (double)((s >> 4) % 100u) / 100.0;
        c.release = (trial % 3u == 0u) ? c.threshold
                                       : c.threshold - 0.25 * (double)((s >> 12) % 5u) / 4.0;
        c.min_duration = (trial % 4u) * length;
        c.merge_gap = (trial % 5u) * hop;
        for (k = 0; k < n; ++k) {
            s = s * 1664525u + 1013904223u;
            /* Runs: the level wanders, with silent windows now and then. */
            p[k] = ((s >> 28) == 0u) ? SILENT : (double)((s >> 8) % 1000u) / 1000.0;
            if (k > 0u && p[k - 1] >= 0.0 && p[k] >= 0.0 && ((s >> 3) & 1u)) {
                p[k] = 0.5 * (p[k] + p[k - 1]);
            }
        }
        r = track(&c, p, n, hop, length);
        count = offline(&c, p, n, hop, length, want);
        ok = r.count == count;
        for (e = 0; ok && e < count; ++e) {
            ok = r.ev[e].start == want[e].start && r.ev[e].stop == want[e].stop &&
                 r.ev[e].windows == want[e].windows && r.ev[e].peak == want[e].peak &&
                 r.ev[e].peak_start == want[e].peak_start && r.ev[e].peak_stop == want[e].peak_stop;
            /* Reported exactly when it could no longer grow: by the first window starting more
             * than merge_gap after its end, else at finish. */
            max_start = want[e].stop + c.merge_gap;
            ok = ok && (r.closed_at[e] == n ? (n - 1u) * hop <= max_start
                                            : r.closed_at[e] * hop > max_start &&
                                                  (r.closed_at[e] - 1u) * hop <= max_start);
        }
        if (!CHECK(ok)) {
            fprintf(stderr, "  trial %u: %zu events, expected %zu\n", trial, r.count, count);
            break;
        }
    }
}

static void test_tracker_errors_and_memory(void)
{
    static union {
        long double ld;
        unsigned char bytes[512];
    } arena;
    edgeser_event_config c = config(0.5, 0.5, 0, 0);
    edgeser_event_tracker *t = NULL;
    edgeser_event e;
    int closed = 0;
    size_t bytes = 0;

    CHECK_STATUS(edgeser_event_tracker_size(NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_event_tracker_size(&bytes), EDGESER_OK);
    CHECK(bytes > 0u && bytes <= sizeof(arena.bytes));
    CHECK_STATUS(edgeser_event_tracker_init(arena.bytes + 1, bytes, &c, &t), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_event_tracker_init(arena.bytes, bytes - 1u, &c, &t),
                 EDGESER_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(edgeser_event_tracker_init(arena.bytes, bytes, NULL, &t), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_event_tracker_init(arena.bytes, bytes, &c, &t), EDGESER_OK);
    CHECK_STATUS(edgeser_event_tracker_add(t, 0, 100, 0.9, 0, NULL, &closed), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_event_tracker_add(t, 0, 100, 0.9, 0, &e, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_event_tracker_add(NULL, 0, 100, 0.9, 0, &e, &closed), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_event_tracker_add(t, 100, 100, 0.9, 0, &e, &closed), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_event_tracker_add(t, 0, 100, NAN, 0, &e, &closed), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_event_tracker_add(t, 0, 100, NAN, 1, &e, &closed), EDGESER_OK);
    CHECK(closed == 0);
    CHECK_STATUS(edgeser_event_tracker_add(t, 50, 150, 0.9, 0, &e, &closed), EDGESER_OK);
    CHECK_STATUS(edgeser_event_tracker_add(t, 49, 150, 0.9, 0, &e, &closed), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_event_tracker_finish(t, &e, &closed), EDGESER_OK);
    CHECK(closed == 1 && e.start == 50u && e.stop == 150u);
    CHECK_STATUS(edgeser_event_tracker_finish(t, &e, &closed), EDGESER_ERR_STATE);
    CHECK_STATUS(edgeser_event_tracker_add(t, 200, 300, 0.9, 0, &e, &closed), EDGESER_ERR_STATE);
    CHECK_STATUS(edgeser_event_tracker_reset(t), EDGESER_OK);
    CHECK_STATUS(edgeser_event_tracker_add(t, 0, 100, 0.9, 0, &e, &closed), EDGESER_OK);
    CHECK_STATUS(edgeser_event_tracker_finish(t, &e, &closed), EDGESER_OK);
    CHECK(closed == 1 && e.start == 0u);
    edgeser_event_tracker_destroy(t);
    CHECK_STATUS(edgeser_event_tracker_reset(t), EDGESER_ERR_STATE);
    edgeser_event_tracker_destroy(NULL);
}

static void test_summary(void)
{
    static union {
        long double ld;
        unsigned char bytes[1024];
    } arena;
    edgeser_summary *s = NULL;
    edgeser_summary_totals tot;
    double means[3] = {-7.0, -7.0, -7.0};
    static const double a[3] = {0.1, 0.7, 0.2}, b[3] = {0.3, 0.3, 0.4};
    size_t bytes = 0;

    CHECK_STATUS(edgeser_summary_size(0, &bytes), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_summary_size(0x80000000u, &bytes), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_summary_size(3, NULL), EDGESER_ERR_NULL);
    CHECK_STATUS(edgeser_summary_size(3, &bytes), EDGESER_OK);
    CHECK(bytes >= 3u * sizeof(double) && bytes <= sizeof(arena.bytes));
    CHECK_STATUS(edgeser_summary_init(arena.bytes, bytes - 1u, 3, &s),
                 EDGESER_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(edgeser_summary_init(arena.bytes + 8, bytes, 3, &s), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_summary_init(arena.bytes, bytes, 3, &s), EDGESER_OK);

    CHECK_STATUS(edgeser_summary_get(s, &tot, means), EDGESER_OK);
    CHECK(tot.windows == 0u && tot.voiced == 0u && tot.top == -1 && means[0] == -7.0);
    CHECK_STATUS(edgeser_summary_add_window(s, NULL), EDGESER_OK);
    CHECK_STATUS(edgeser_summary_get(s, &tot, means), EDGESER_OK);
    CHECK(tot.windows == 1u && tot.silent == 1u && tot.top == -1 && means[0] == -7.0);
    CHECK_STATUS(edgeser_summary_add_window(s, a), EDGESER_OK);
    CHECK_STATUS(edgeser_summary_add_window(s, b), EDGESER_OK);
    CHECK_STATUS(edgeser_summary_add_event(s, 100, 16100), EDGESER_OK);
    CHECK_STATUS(edgeser_summary_add_event(s, 20000, 28000), EDGESER_OK);
    CHECK_STATUS(edgeser_summary_add_event(s, 5, 4), EDGESER_ERR_ARGUMENT);
    CHECK_STATUS(edgeser_summary_get(s, &tot, means), EDGESER_OK);
    CHECK(tot.windows == 3u && tot.voiced == 2u && tot.silent == 1u);
    CHECK(means[0] == (0.1 + 0.3) / 2.0 && means[1] == (0.7 + 0.3) / 2.0 &&
          means[2] == (0.2 + 0.4) / 2.0);
    CHECK(tot.top == 1);
    CHECK(tot.events == 2u && tot.event_samples == 24000u && tot.event_seconds == 1.5);
    CHECK_STATUS(edgeser_summary_get(s, &tot, NULL), EDGESER_OK);
    CHECK(tot.top == 1);
    /* Ties: the first of equal maxima, as numpy.argmax. */
    {
        static const double tie[3] = {0.5, 0.2, 0.5};
        CHECK_STATUS(edgeser_summary_reset(s), EDGESER_OK);
        CHECK_STATUS(edgeser_summary_add_window(s, tie), EDGESER_OK);
        CHECK_STATUS(edgeser_summary_get(s, &tot, means), EDGESER_OK);
        CHECK(tot.top == 0 && tot.windows == 1u && tot.events == 0u);
    }
    edgeser_summary_destroy(s);
    CHECK_STATUS(edgeser_summary_add_window(s, a), EDGESER_ERR_STATE);
    CHECK_STATUS(edgeser_summary_create(2, &s), EDGESER_OK);
    CHECK_STATUS(edgeser_summary_add_window(s, a), EDGESER_OK);
    CHECK_STATUS(edgeser_summary_get(s, &tot, means), EDGESER_OK);
    CHECK(tot.top == 1 && means[1] == 0.7);
    edgeser_summary_destroy(s);
    edgeser_summary_destroy(NULL);
}

int main(void)
{
    test_python_cases();
    test_hysteresis();
    test_random_against_offline();
    test_tracker_errors_and_memory();
    test_summary();
    return check_report("test_events");
}
