/*
 * The streaming windower: PCM in, prepared 16 kHz windows out (see the header).
 *
 * Per push, input is taken in blocks of at most STAGE_SAMPLES decoded samples: converted to
 * float (edgeser_pcm_to_float), averaged to mono in place (edgeser_mixdown) and resampled
 * straight into a linear buffer of 16 kHz samples. The buffer holds the samples from the next
 * window's start to the newest one: [buf_pos, buf_pos + buf_len) at buf + buf_off. A window
 * is pulled as soon as the buffer holds all of it; pulling it moves the start on by one hop.
 * Samples before the start are never needed again and are dropped by moving the rest to the
 * front of the buffer, only when the free space behind it is too small for the next block.
 *
 * Capacity: window + the most one block (or the flush) can produce. While no window is ready
 * the buffer holds fewer than `window` samples, so one block always fits; a push stops early
 * only when ready windows fill the buffer.
 *
 * Every window is copied out and then measured and normalised with edgeser_rms_dbfs and
 * edgeser_normalize on the copy, so its values are those of the same functions applied to the
 * same span of the one-shot signal, and the resampler gives that signal for every chunking.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edgeser/frontend.h"
#include "internal.h"

#define WINDOWER_MAGIC 0x6564776eu /* "edwn" */
/* Decoded input samples (all channels) per internal block. */
#define STAGE_SAMPLES 4096u

struct edgeser_windower {
    uint32_t magic;
    int owns_memory;
    edgeser_windower_config config;
    size_t frame_bytes;     /* bytes per input frame */
    size_t stage_frames;    /* input frames per block */
    size_t block_bound;     /* the most 16 kHz samples one block (or the flush) produces */
    size_t state_bytes;
    edgeser_resampler *resampler;
    float *scratch;         /* stage_frames * channels floats */
    float *buf;             /* buf_cap floats */
    size_t buf_cap;
    size_t buf_off;
    size_t buf_len;
    uint64_t buf_pos;       /* 16 kHz position of buf[buf_off] */
    uint64_t total;         /* 16 kHz samples produced since init/reset */
    uint64_t full;          /* full windows pulled */
    int ending;             /* edgeser_windower_finish was called */
    int flushed;            /* the resampler has been flushed */
    int tail_done;          /* the final short window was pulled, or is not wanted */
};

typedef struct layout {
    size_t frame_bytes, stage_frames, scratch_floats, block_bound, buf_cap;
    size_t off_resampler, off_scratch, off_buf, total;
} layout;

static edgeser_status check_config(const edgeser_windower_config *c)
{
    if (c->channels == 0u) {
        return EDGESER_ERR_CHANNELS;
    }
    if (edgeser_pcm_bytes_per_sample(c->format) == 0u) {
        return EDGESER_ERR_FORMAT;
    }
    if (c->window == 0u || c->hop == 0u || c->hop > c->window) {
        return EDGESER_ERR_ARGUMENT;
    }
    if (c->normalization != EDGESER_NORMALIZE_NONE &&
        c->normalization != EDGESER_NORMALIZE_PER_WINDOW) {
        return EDGESER_ERR_ARGUMENT;
    }
    if (isnan(c->silence_dbfs)) {
        return EDGESER_ERR_ARGUMENT;
    }
    return EDGESER_OK;
}

/* Where each piece lives in the caller's memory. */
static edgeser_status plan(const edgeser_windower_config *c, layout *lay, size_t *resampler_bytes)
{
    size_t block_out, flush_out, bytes;
    edgeser_status st;

    if (c == NULL) {
        return EDGESER_ERR_NULL;
    }
    st = check_config(c);
    if (st == EDGESER_OK) {
        st = edgeser_resampler_size(c->rate_in_hz, resampler_bytes);
    }
    if (st != EDGESER_OK) {
        return st;
    }
    lay->frame_bytes = edgeser_pcm_bytes_per_sample(c->format);
    if (!edgeser_mul_size_(lay->frame_bytes, c->channels, &lay->frame_bytes)) {
        return EDGESER_ERR_OVERFLOW;
    }
    lay->stage_frames = c->channels >= STAGE_SAMPLES ? 1u : STAGE_SAMPLES / c->channels;
    if (!edgeser_mul_size_(lay->stage_frames, c->channels, &lay->scratch_floats)) {
        return EDGESER_ERR_OVERFLOW;
    }
    st = edgeser_resampler_bounds_(c->rate_in_hz, lay->stage_frames, &block_out, &flush_out);
    if (st != EDGESER_OK) {
        return st;
    }
    lay->block_bound = block_out > flush_out ? block_out : flush_out;
    if (!edgeser_add_size_(c->window, lay->block_bound, &lay->buf_cap)) {
        return EDGESER_ERR_OVERFLOW;
    }

    lay->off_resampler = edgeser_align_up_(sizeof(struct edgeser_windower));
    if (!edgeser_add_size_(lay->off_resampler, *resampler_bytes, &lay->off_scratch)) {
        return EDGESER_ERR_OVERFLOW;
    }
    lay->off_scratch = edgeser_align_up_(lay->off_scratch);
    if (!edgeser_mul_size_(lay->scratch_floats, sizeof(float), &bytes) ||
        !edgeser_add_size_(lay->off_scratch, bytes, &lay->off_buf)) {
        return EDGESER_ERR_OVERFLOW;
    }
    lay->off_buf = edgeser_align_up_(lay->off_buf);
    if (!edgeser_mul_size_(lay->buf_cap, sizeof(float), &bytes) ||
        !edgeser_add_size_(lay->off_buf, bytes, &lay->total)) {
        return EDGESER_ERR_OVERFLOW;
    }
    lay->total = edgeser_align_up_(lay->total);
    return EDGESER_OK;
}

static void clear_stream(edgeser_windower *w)
{
    w->buf_off = 0u;
    w->buf_len = 0u;
    w->buf_pos = 0u;
    w->total = 0u;
    w->full = 0u;
    w->ending = 0;
    w->flushed = 0;
    w->tail_done = 0;
}

static int valid(const edgeser_windower *w)
{
    return w != NULL && w->magic == WINDOWER_MAGIC;
}

EDGESER_API edgeser_status edgeser_windower_size(const edgeser_windower_config *config,
                                                 size_t *bytes)
{
    layout lay;
    size_t resampler_bytes;
    edgeser_status st;

    if (bytes == NULL) {
        return EDGESER_ERR_NULL;
    }
    st = plan(config, &lay, &resampler_bytes);
    if (st != EDGESER_OK) {
        return st;
    }
    *bytes = lay.total;
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_windower_init(void *mem, size_t bytes,
                                                 const edgeser_windower_config *config,
                                                 edgeser_windower **out)
{
    layout lay;
    size_t resampler_bytes;
    edgeser_status st;
    edgeser_windower *w;
    unsigned char *base = (unsigned char *)mem;

    if (mem == NULL || out == NULL || config == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (((uintptr_t)mem & 15u) != 0u) {
        return EDGESER_ERR_ARGUMENT;
    }
    st = plan(config, &lay, &resampler_bytes);
    if (st != EDGESER_OK) {
        return st;
    }
    if (bytes < lay.total) {
        return EDGESER_ERR_BUFFER_TOO_SMALL;
    }
    w = (edgeser_windower *)base;
    memset(w, 0, sizeof(*w));
    st = edgeser_resampler_init(base + lay.off_resampler, resampler_bytes, config->rate_in_hz,
                                &w->resampler);
    if (st != EDGESER_OK) {
        return st;
    }
    w->config = *config;
    w->frame_bytes = lay.frame_bytes;
    w->stage_frames = lay.stage_frames;
    w->block_bound = lay.block_bound;
    w->state_bytes = lay.total;
    w->scratch = (float *)(base + lay.off_scratch);
    w->buf = (float *)(base + lay.off_buf);
    w->buf_cap = lay.buf_cap;
    clear_stream(w);
    w->magic = WINDOWER_MAGIC;
    *out = w;
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_windower_create(const edgeser_windower_config *config,
                                                   edgeser_windower **out)
{
    size_t bytes;
    void *mem;
    edgeser_status st;

    if (out == NULL) {
        return EDGESER_ERR_NULL;
    }
    st = edgeser_windower_size(config, &bytes);
    if (st != EDGESER_OK) {
        return st;
    }
    mem = malloc(bytes);
    if (mem == NULL) {
        return EDGESER_ERR_NOMEM;
    }
    st = edgeser_windower_init(mem, bytes, config, out);
    if (st != EDGESER_OK) {
        free(mem);
        return st;
    }
    (*out)->owns_memory = 1;
    return EDGESER_OK;
}

EDGESER_API void edgeser_windower_destroy(edgeser_windower *w)
{
    if (!valid(w)) {
        return;
    }
    w->magic = 0u;
    edgeser_resampler_destroy(w->resampler);
    if (w->owns_memory) {
        free(w);
    }
}

EDGESER_API edgeser_status edgeser_windower_reset(edgeser_windower *w)
{
    edgeser_status st;
    if (w == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!valid(w)) {
        return EDGESER_ERR_STATE;
    }
    st = edgeser_resampler_reset(w->resampler);
    if (st != EDGESER_OK) {
        return st;
    }
    clear_stream(w);
    return EDGESER_OK;
}

/* Make room for `need` samples behind the buffered ones; 0 when even a compacted buffer has
 * too little. */
static int make_room(edgeser_windower *w, size_t need)
{
    if (w->buf_cap - w->buf_off - w->buf_len >= need) {
        return 1;
    }
    if (w->buf_cap - w->buf_len < need) {
        return 0;
    }
    memmove(w->buf, w->buf + w->buf_off, w->buf_len * sizeof(float));
    w->buf_off = 0u;
    return 1;
}

static void appended(edgeser_windower *w, size_t n)
{
    w->buf_len += n;
    w->total += n;
}

EDGESER_API edgeser_status edgeser_windower_push(edgeser_windower *w, const void *pcm,
                                                 size_t n_frames, size_t *n_taken)
{
    const unsigned char *in = (const unsigned char *)pcm;
    size_t taken = 0u;
    edgeser_status st = EDGESER_OK;

    if (w == NULL || n_taken == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!valid(w) || w->ending) {
        return EDGESER_ERR_STATE;
    }
    if (n_frames > 0u && pcm == NULL) {
        return EDGESER_ERR_NULL;
    }
    while (taken < n_frames) {
        size_t block = n_frames - taken, n_out = 0u;
        if (block > w->stage_frames) {
            block = w->stage_frames;
        }
        if (!make_room(w, w->block_bound)) {
            break; /* ready windows fill the buffer: the caller pulls them first */
        }
        st = edgeser_pcm_to_float(in + taken * w->frame_bytes, block, w->config.channels,
                                  w->config.format, w->scratch);
        if (st == EDGESER_OK && w->config.channels > 1u) {
            st = edgeser_mixdown(w->scratch, block, w->config.channels, w->scratch);
        }
        if (st == EDGESER_OK) {
            st = edgeser_resampler_process(w->resampler, w->scratch, block,
                                           w->buf + w->buf_off + w->buf_len,
                                           w->buf_cap - w->buf_off - w->buf_len, &n_out);
        }
        if (st != EDGESER_OK) {
            break; /* cannot happen for a valid windower; the frames taken so far stand */
        }
        appended(w, n_out);
        taken += block;
    }
    *n_taken = taken;
    return st;
}

/* Flush the resampler into the buffer when there is room (there always is once no full
 * window is ready). */
static edgeser_status try_flush(edgeser_windower *w)
{
    size_t need, n_out = 0u;
    edgeser_status st;

    if (w->flushed) {
        return EDGESER_OK;
    }
    st = edgeser_resampler_flush_output(w->resampler, &need);
    if (st != EDGESER_OK) {
        return st;
    }
    if (!make_room(w, need)) {
        return EDGESER_OK; /* later, from edgeser_windower_next */
    }
    st = edgeser_resampler_flush(w->resampler, w->buf + w->buf_off + w->buf_len,
                                 w->buf_cap - w->buf_off - w->buf_len, &n_out);
    if (st != EDGESER_OK) {
        return st;
    }
    appended(w, n_out);
    w->flushed = 1;
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_windower_finish(edgeser_windower *w)
{
    if (w == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!valid(w) || w->ending) {
        return EDGESER_ERR_STATE;
    }
    w->ending = 1;
    return try_flush(w);
}

/* Copy [buf_pos + offset, + len) out, measure and prepare it, describe it. */
static edgeser_status emit(edgeser_windower *w, size_t offset, size_t len, uint64_t index,
                           int is_final, float *out, edgeser_window *window)
{
    float level = 0.0f;
    edgeser_status st;

    memcpy(out, w->buf + w->buf_off + offset, len * sizeof(float));
    st = edgeser_rms_dbfs(out, len, &level);
    if (st == EDGESER_OK && w->config.normalization == EDGESER_NORMALIZE_PER_WINDOW) {
        st = edgeser_normalize(out, len, out);
    }
    if (st != EDGESER_OK) {
        return st;
    }
    window->index = index;
    window->start = w->buf_pos + offset;
    window->stop = window->start + len;
    window->length = len;
    window->level_dbfs = level;
    window->silent = !(level >= w->config.silence_dbfs);
    window->is_final = is_final;
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_windower_next(edgeser_windower *w, float *out,
                                                 size_t out_capacity, edgeser_window *window,
                                                 int *has_window)
{
    const edgeser_windower_config *c;
    edgeser_status st;

    if (w == NULL || window == NULL || has_window == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!valid(w)) {
        return EDGESER_ERR_STATE;
    }
    c = &w->config;
    if (out == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (out_capacity < c->window) {
        return EDGESER_ERR_BUFFER_TOO_SMALL;
    }
    *has_window = 0;
    /* The buffer starts at the next full window's start (full * hop). */
    if (w->buf_len >= c->window) {
        st = emit(w, 0u, c->window, w->full, 0, out, window);
        if (st != EDGESER_OK) {
            return st;
        }
        w->full += 1u;
        w->buf_off += c->hop;
        w->buf_len -= c->hop;
        w->buf_pos += c->hop;
        *has_window = 1;
        return EDGESER_OK;
    }
    if (!w->ending || w->tail_done) {
        return EDGESER_OK;
    }
    if (!w->flushed) {
        st = try_flush(w);
        if (st != EDGESER_OK) {
            return st;
        }
        if (w->buf_len >= c->window) {
            return edgeser_windower_next(w, out, out_capacity, window, has_window);
        }
    }
    w->tail_done = 1;
    /* The tail rule of edgeser_window_count: one short window from the next hop start to the
     * end when it adds samples no full window covered, or the whole (short) signal. */
    {
        uint64_t n = w->total;
        int wanted;
        if (w->full == 0u) {
            wanted = n > 0u && n >= (uint64_t)c->min_len;
        } else {
            uint64_t covered = (w->full - 1u) * (uint64_t)c->hop + (uint64_t)c->window;
            wanted = covered < n && n - w->buf_pos >= (uint64_t)c->min_len;
        }
        if (!wanted) {
            return EDGESER_OK;
        }
        st = emit(w, 0u, w->buf_len, w->full, 1, out, window);
        if (st != EDGESER_OK) {
            return st;
        }
        *has_window = 1;
    }
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_windower_samples(const edgeser_windower *w, uint64_t *samples)
{
    if (w == NULL || samples == NULL) {
        return EDGESER_ERR_NULL;
    }
    if (!valid(w)) {
        return EDGESER_ERR_STATE;
    }
    *samples = w->total;
    return EDGESER_OK;
}
