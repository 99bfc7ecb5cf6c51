/* detect_wav: laughter detection in a WAV file on the edgeser native library alone.
 *
 * The path a device runs, in C: a minimal RIFF/WAVE reader (PCM 8/16/24/32-bit, IEEE float 32/64,
 * WAVE_FORMAT_EXTENSIBLE) reads the file in blocks, as a driver would deliver them; the streaming
 * windower (edgeser_windower) converts, mixes down, resamples to 16 kHz and cuts windows, each with
 * its level and silence flag, normalised as the model wants; a model callback turns each voiced
 * window into outputs (here class probabilities, the positive class "laughter" at index 1); the
 * event tracker (edgeser_event_tracker) turns the probabilities into laughter events, printed as
 * soon as they close; the summary (edgeser_summary) keeps the per-file means and counts.
 * Everything lives in one static arena sized with the *_size functions: no heap.
 *
 * The model. Without ONNX Runtime the callback is a stand-in that maps a window's level to a
 * probability (a logistic curve centred at -30 dBFS), so that the example and its test need
 * nothing but libc and libm. With ONNX Runtime's C API the callback runs a bundle's model.onnx:
 *
 *   make -C native example-ort ORT_DIR=/path/to/onnxruntime-linux-x64-VERSION
 *   build/examples/detect_wav_ort --model BUNDLE/model.onnx clip.wav
 *
 * ORT_DIR is an unpacked ONNX Runtime release (include/onnxruntime_c_api.h, lib/libonnxruntime.so);
 * the target compiles this file with -DEDGESER_EXAMPLE_ORT. The model's contract (DESIGN.md):
 * input "input_values" float32 [1, samples] (the prepared window), output "logits" float32
 * [1, n_outputs]; class logits get a softmax here, as the Python runtime does. Use the bundle's
 * window, hop, normalisation and operating point (manifest.json) on the command line.
 *
 * Usage: detect_wav [--window S] [--hop S] [--threshold P] [--release P] [--merge-gap S]
 *                   [--min-duration S] [--silence DBFS] [--raw] [--block FRAMES] [--windows]
 *                   [--expect-events N] [--model FILE.onnx] FILE.wav
 * Exit status: 0 success; 1 unreadable file, an edgeser error or --expect-events not met;
 * 2 usage errors.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <edgeser/frontend.h>

#ifdef EDGESER_EXAMPLE_ORT
#include <onnxruntime_c_api.h>
#endif

#define N_OUTPUTS 2u          /* [other, laughter] */
#define POSITIVE 1u           /* index of the laughter probability */
#define MAX_WINDOW 160000u    /* 10 s at 16 kHz */
#define MAX_CHANNELS 64u
#define MAX_BLOCK_FRAMES 4096u
#define ARENA_BYTES (2u * 1024u * 1024u)

/* One arena for the windower, tracker and summary; aligned for any type. */
static union {
    long double align_ld;
    uint64_t align_u64;
    unsigned char bytes[ARENA_BYTES];
} g_arena;
static float g_window[MAX_WINDOW];
static unsigned char g_block[MAX_BLOCK_FRAMES * MAX_CHANNELS * 8u];

/* ---------------------------------------------------------------- WAV reader ---------- */

typedef struct wav {
    FILE *f;
    uint32_t rate_hz;
    uint32_t channels;
    edgeser_pcm_format format;
    size_t frame_bytes;
    uint64_t data_left;   /* bytes of sample data still to read; UINT64_MAX: to end of file */
} wav;

static uint32_t le16(const unsigned char *b) { return (uint32_t)b[0] | ((uint32_t)b[1] << 8); }
static uint32_t le32(const unsigned char *b)
{
    return le16(b) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

/* Open `path` and read up to the first sample; an error message to stderr and 0 on failure. */
static int wav_open(wav *w, const char *path)
{
    unsigned char head[12], chunk[8], fmt[40];
    int have_fmt = 0;
    uint32_t tag = 0, bits = 0;

    memset(w, 0, sizeof(*w));
    w->f = fopen(path, "rb");
    if (w->f == NULL) {
        fprintf(stderr, "detect_wav: %s: cannot open the file.\n", path);
        return 0;
    }
    if (fread(head, 1, 12, w->f) != 12 || memcmp(head, "RIFF", 4) != 0 ||
        memcmp(head + 8, "WAVE", 4) != 0) {
        fprintf(stderr, "detect_wav: %s: not a RIFF/WAVE file.\n", path);
        return 0;
    }
    for (;;) {
        uint32_t size;
        if (fread(chunk, 1, 8, w->f) != 8) {
            fprintf(stderr, "detect_wav: %s: no data chunk.\n", path);
            return 0;
        }
        size = le32(chunk + 4);
        if (memcmp(chunk, "fmt ", 4) == 0) {
            uint32_t keep = size < sizeof(fmt) ? size : (uint32_t)sizeof(fmt);
            if (size < 16u || fread(fmt, 1, keep, w->f) != keep ||
                fseek(w->f, (long)(size - keep + (size & 1u)), SEEK_CUR) != 0) {
                fprintf(stderr, "detect_wav: %s: broken fmt chunk.\n", path);
                return 0;
            }
            tag = le16(fmt);
            w->channels = le16(fmt + 2);
            w->rate_hz = le32(fmt + 4);
            bits = le16(fmt + 14);
            if (tag == 0xFFFEu && size >= 40u) {
                tag = le16(fmt + 24); /* WAVE_FORMAT_EXTENSIBLE: the subformat GUID's tag */
            }
            have_fmt = 1;
        } else if (memcmp(chunk, "data", 4) == 0) {
            /* 0 and 0xFFFFFFFF are what streaming writers leave: read to the end. */
            w->data_left = (size == 0u || size == 0xFFFFFFFFu) ? UINT64_MAX : size;
            break;
        } else if (fseek(w->f, (long)size + (long)(size & 1u), SEEK_CUR) != 0) {
            fprintf(stderr, "detect_wav: %s: truncated chunk.\n", path);
            return 0;
        }
    }
    if (!have_fmt) {
        fprintf(stderr, "detect_wav: %s: data before the fmt chunk.\n", path);
        return 0;
    }
    if (tag == 1u && bits == 8u) {
        w->format = EDGESER_PCM_U8;
    } else if (tag == 1u && bits == 16u) {
        w->format = EDGESER_PCM_S16;
    } else if (tag == 1u && bits == 24u) {
        w->format = EDGESER_PCM_S24;
    } else if (tag == 1u && bits == 32u) {
        w->format = EDGESER_PCM_S32;
    } else if (tag == 3u && bits == 32u) {
        w->format = EDGESER_PCM_F32;
    } else if (tag == 3u && bits == 64u) {
        w->format = EDGESER_PCM_F64;
    } else {
        fprintf(stderr, "detect_wav: %s: unsupported encoding (format tag %u, %u bits).\n", path,
                (unsigned)tag, (unsigned)bits);
        return 0;
    }
    if (w->channels == 0u || w->channels > MAX_CHANNELS) {
        fprintf(stderr, "detect_wav: %s: %u channels (1 to %u supported).\n", path,
                (unsigned)w->channels, MAX_CHANNELS);
        return 0;
    }
    w->frame_bytes = edgeser_pcm_bytes_per_sample(w->format) * w->channels;
    return 1;
}

/* Read up to `max_frames` whole frames into `buf`; returns the count (0 at the end). */
static size_t wav_read(wav *w, unsigned char *buf, size_t max_frames)
{
    size_t want = max_frames * w->frame_bytes, got;
    if (w->data_left != UINT64_MAX && want > w->data_left) {
        want = (size_t)(w->data_left - w->data_left % w->frame_bytes);
    }
    got = fread(buf, 1, want, w->f);
    got -= got % w->frame_bytes; /* a partial last frame (truncated file) is dropped */
    if (w->data_left != UINT64_MAX) {
        w->data_left -= got;
    }
    return got / w->frame_bytes;
}

static const char *format_name(edgeser_pcm_format f)
{
    switch (f) {
    case EDGESER_PCM_U8: return "u8";
    case EDGESER_PCM_S16: return "s16";
    case EDGESER_PCM_S24: return "s24";
    case EDGESER_PCM_S32: return "s32";
    case EDGESER_PCM_F32: return "f32";
    case EDGESER_PCM_F64: return "f64";
    }
    return "?";
}

/* ---------------------------------------------------------------- models -------------- */

/* A model: outputs[N_OUTPUTS] for one prepared window; 0 on success. */
typedef int (*model_fn)(void *user, const float *samples, const edgeser_window *window,
                        double *outputs);

/* Stand-in: the laughter probability is a logistic function of the window's level. */
static int level_model(void *user, const float *samples, const edgeser_window *window,
                       double *outputs)
{
    double p = 1.0 / (1.0 + exp(-((double)window->level_dbfs + 30.0) / 3.0));
    (void)user;
    (void)samples;
    outputs[0] = 1.0 - p;
    outputs[POSITIVE] = p;
    return 0;
}

#ifdef EDGESER_EXAMPLE_ORT
typedef struct ort_model {
    const OrtApi *api;
    OrtEnv *env;
    OrtSession *session;
    OrtMemoryInfo *memory;
} ort_model;

static int ort_failed(const OrtApi *api, OrtStatus *status, const char *what)
{
    if (status == NULL) {
        return 0;
    }
    fprintf(stderr, "detect_wav: ONNX Runtime %s failed: %s\n", what, api->GetErrorMessage(status));
    api->ReleaseStatus(status);
    return 1;
}

static int ort_open(ort_model *m, const char *path)
{
    OrtSessionOptions *options = NULL;
    int bad;
    memset(m, 0, sizeof(*m));
    m->api = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    if (m->api == NULL) {
        fprintf(stderr, "detect_wav: this ONNX Runtime does not offer API version %d.\n",
                ORT_API_VERSION);
        return 0;
    }
    bad = ort_failed(m->api, m->api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "detect_wav", &m->env),
                     "CreateEnv") ||
          ort_failed(m->api, m->api->CreateSessionOptions(&options), "CreateSessionOptions") ||
          ort_failed(m->api, m->api->SetIntraOpNumThreads(options, 1), "SetIntraOpNumThreads") ||
          ort_failed(m->api, m->api->CreateSession(m->env, path, options, &m->session),
                     "CreateSession") ||
          ort_failed(m->api, m->api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault,
                                                         &m->memory), "CreateCpuMemoryInfo");
    if (options != NULL) {
        m->api->ReleaseSessionOptions(options);
    }
    return !bad;
}

static void ort_close(ort_model *m)
{
    if (m->api == NULL) {
        return;
    }
    if (m->memory != NULL) m->api->ReleaseMemoryInfo(m->memory);
    if (m->session != NULL) m->api->ReleaseSession(m->session);
    if (m->env != NULL) m->api->ReleaseEnv(m->env);
}

/* logits = model(input_values), then a softmax: class probabilities. */
static int ort_model_run(void *user, const float *samples, const edgeser_window *window,
                         double *outputs)
{
    ort_model *m = (ort_model *)user;
    const OrtApi *api = m->api;
    const char *in_names[1] = {"input_values"};
    const char *out_names[1] = {"logits"};
    int64_t shape[2];
    OrtValue *input = NULL, *output = NULL;
    OrtTensorTypeAndShapeInfo *info = NULL;
    float *logits = NULL;
    size_t count = 0, i;
    double top, sum = 0.0;
    int bad;

    shape[0] = 1;
    shape[1] = (int64_t)window->length;
    bad = ort_failed(api, api->CreateTensorWithDataAsOrtValue(
                              m->memory, (void *)samples, window->length * sizeof(float), shape, 2,
                              ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &input), "creating the input") ||
          ort_failed(api, api->Run(m->session, NULL, in_names, (const OrtValue *const *)&input, 1,
                                   out_names, 1, &output), "Run") ||
          ort_failed(api, api->GetTensorTypeAndShape(output, &info), "reading the output shape") ||
          ort_failed(api, api->GetTensorShapeElementCount(info, &count), "counting outputs") ||
          ort_failed(api, api->GetTensorMutableData(output, (void **)&logits), "reading logits");
    if (!bad && count != N_OUTPUTS) {
        fprintf(stderr, "detect_wav: the model gives %zu outputs, this example expects %u.\n",
                count, N_OUTPUTS);
        bad = 1;
    }
    if (!bad) {
        top = logits[0];
        for (i = 1; i < count; ++i) top = logits[i] > top ? logits[i] : top;
        for (i = 0; i < count; ++i) sum += (outputs[i] = exp((double)logits[i] - top));
        for (i = 0; i < count; ++i) outputs[i] /= sum;
    }
    if (info != NULL) api->ReleaseTensorTypeAndShapeInfo(info);
    if (output != NULL) api->ReleaseValue(output);
    if (input != NULL) api->ReleaseValue(input);
    return bad;
}
#endif

/* ---------------------------------------------------------------- the run ------------- */

typedef struct options {
    double window_s, hop_s, threshold, release, merge_gap_s, min_duration_s;
    float silence_dbfs;
    int raw, print_windows;
    size_t block_frames;
    long expect_events;
    const char *model_path;
    const char *path;
} options;

static int failed(edgeser_status st, const char *what)
{
    if (st == EDGESER_OK) {
        return 0;
    }
    fprintf(stderr, "detect_wav: %s failed: %s\n", what, edgeser_strerror(st));
    return 1;
}

static size_t samples_16k(double seconds)
{
    return (size_t)floor(seconds * (double)EDGESER_TARGET_RATE_HZ + 0.5);
}

typedef struct pipeline {
    edgeser_windower *windower;
    edgeser_event_tracker *tracker;
    edgeser_summary *summary;
    model_fn model;
    void *model_user;
    int print_windows;
    unsigned long events;
} pipeline;

static void print_event(const edgeser_event *e, unsigned long number)
{
    printf("event %lu: %.3f-%.3f s (%.3f s), peak %.3f in %.3f-%.3f s, %llu windows\n", number,
           (double)e->start / 16000.0, (double)e->stop / 16000.0,
           (double)(e->stop - e->start) / 16000.0, e->peak, (double)e->peak_start / 16000.0,
           (double)e->peak_stop / 16000.0, (unsigned long long)e->windows);
}

/* Score every ready window, feed the tracker and the summary, print closed events. */
static int drain(pipeline *p)
{
    for (;;) {
        edgeser_window w;
        edgeser_event e;
        double outputs[N_OUTPUTS];
        int has = 0, closed = 0;
        if (failed(edgeser_windower_next(p->windower, g_window, MAX_WINDOW, &w, &has),
                   "pulling a window")) {
            return 1;
        }
        if (!has) {
            return 0;
        }
        if (!w.silent && p->model(p->model_user, g_window, &w, outputs) != 0) {
            return 1;
        }
        if (p->print_windows) {
            printf("window %llu: %.3f-%.3f s, %.1f dBFS, %s", (unsigned long long)w.index,
                   (double)w.start / 16000.0, (double)w.stop / 16000.0, (double)w.level_dbfs,
                   w.silent ? "silent\n" : "p=");
            if (!w.silent) {
                printf("%.4f\n", outputs[POSITIVE]);
            }
        }
        if (failed(edgeser_summary_add_window(p->summary, w.silent ? NULL : outputs),
                   "summarising") ||
            failed(edgeser_event_tracker_add(p->tracker, w.start, w.stop,
                                             w.silent ? 0.0 : outputs[POSITIVE], w.silent, &e,
                                             &closed), "tracking events")) {
            return 1;
        }
        if (closed) {
            print_event(&e, ++p->events);
            if (failed(edgeser_summary_add_event(p->summary, e.start, e.stop), "summarising")) {
                return 1;
            }
        }
    }
}

static int run(const options *o, model_fn model, void *model_user)
{
    wav in;
    pipeline p;
    edgeser_windower_config wc;
    edgeser_event_config ec;
    edgeser_summary_totals totals;
    edgeser_event e;
    double means[N_OUTPUTS];
    size_t windower_bytes = 0, tracker_bytes = 0, summary_bytes = 0, used = 0, frames;
    int closed = 0, status = 1;

    if (!wav_open(&in, o->path)) {
        if (in.f != NULL) fclose(in.f);
        return 1;
    }
    memset(&p, 0, sizeof(p));
    p.model = model;
    p.model_user = model_user;
    p.print_windows = o->print_windows;
    memset(&wc, 0, sizeof(wc));
    wc.rate_in_hz = in.rate_hz;
    wc.channels = in.channels;
    wc.format = in.format;
    wc.window = samples_16k(o->window_s);
    wc.hop = samples_16k(o->hop_s);
    wc.min_len = EDGESER_MIN_WINDOW_SAMPLES;
    wc.silence_dbfs = o->silence_dbfs;
    wc.normalization = o->raw ? EDGESER_NORMALIZE_NONE : EDGESER_NORMALIZE_PER_WINDOW;
    ec.threshold = o->threshold;
    ec.release = o->release;
    ec.min_duration = samples_16k(o->min_duration_s);
    ec.merge_gap = samples_16k(o->merge_gap_s);
    if (wc.window > MAX_WINDOW) {
        fprintf(stderr, "detect_wav: windows up to %u samples (%.0f s).\n", MAX_WINDOW,
                MAX_WINDOW / 16000.0);
        fclose(in.f);
        return 1;
    }

    /* Carve the three objects out of the arena, each at an aligned offset. */
    if (failed(edgeser_windower_size(&wc, &windower_bytes), "sizing the windower") ||
        failed(edgeser_event_tracker_size(&tracker_bytes), "sizing the event tracker") ||
        failed(edgeser_summary_size(N_OUTPUTS, &summary_bytes), "sizing the summary")) {
        fclose(in.f);
        return 1;
    }
    if (windower_bytes + tracker_bytes + summary_bytes + 128u > ARENA_BYTES) {
        fprintf(stderr, "detect_wav: %zu bytes needed, the arena has %u.\n",
                windower_bytes + tracker_bytes + summary_bytes, ARENA_BYTES);
        fclose(in.f);
        return 1;
    }
    if (failed(edgeser_windower_init(g_arena.bytes, windower_bytes, &wc, &p.windower),
               "starting the windower")) {
        fclose(in.f);
        return 1;
    }
    used = (windower_bytes + 63u) & ~(size_t)63u;
    if (failed(edgeser_event_tracker_init(g_arena.bytes + used, tracker_bytes, &ec, &p.tracker),
               "starting the event tracker")) {
        fclose(in.f);
        return 1;
    }
    used += (tracker_bytes + 63u) & ~(size_t)63u;
    if (failed(edgeser_summary_init(g_arena.bytes + used, summary_bytes, N_OUTPUTS, &p.summary),
               "starting the summary")) {
        fclose(in.f);
        return 1;
    }

    printf("%s: %u Hz, %u channel%s, %s; windows %.3f s every %.3f s; memory %zu bytes\n",
           o->path, (unsigned)in.rate_hz, (unsigned)in.channels, in.channels == 1u ? "" : "s",
           format_name(in.format), (double)wc.window / 16000.0, (double)wc.hop / 16000.0,
           windower_bytes + tracker_bytes + summary_bytes);

    /* Blocks in, windows out: a push takes less than a block only when ready windows fill the
     * windower, so drain and push the rest. */
    while ((frames = wav_read(&in, g_block, o->block_frames)) > 0u) {
        size_t done = 0;
        while (done < frames) {
            size_t taken = 0;
            if (failed(edgeser_windower_push(p.windower, g_block + done * in.frame_bytes,
                                             frames - done, &taken), "pushing audio") ||
                drain(&p) != 0) {
                goto out;
            }
            done += taken;
        }
    }
    if (failed(edgeser_windower_finish(p.windower), "ending the stream") || drain(&p) != 0 ||
        failed(edgeser_event_tracker_finish(p.tracker, &e, &closed), "ending the events")) {
        goto out;
    }
    if (closed) {
        print_event(&e, ++p.events);
        if (failed(edgeser_summary_add_event(p.summary, e.start, e.stop), "summarising")) {
            goto out;
        }
    }
    if (failed(edgeser_summary_get(p.summary, &totals, means), "summarising")) {
        goto out;
    }
    printf("summary: %llu windows (%llu voiced, %llu silent)", (unsigned long long)totals.windows,
           (unsigned long long)totals.voiced, (unsigned long long)totals.silent);
    if (totals.voiced > 0u) {
        printf(", mean laughter probability %.4f", means[POSITIVE]);
    }
    printf(", %llu events, %.3f s of laughter\n", (unsigned long long)totals.events,
           totals.event_seconds);
    if (totals.windows == 0u) {
        printf("%s: shorter than one model frame (%u samples at 16 kHz): nothing to detect\n",
               o->path, EDGESER_MIN_WINDOW_SAMPLES);
    }
    status = 0;
    if (o->expect_events >= 0 && (unsigned long)o->expect_events != totals.events) {
        fprintf(stderr, "detect_wav: %llu events, expected %ld.\n",
                (unsigned long long)totals.events, o->expect_events);
        status = 1;
    }
out:
    edgeser_summary_destroy(p.summary);
    edgeser_event_tracker_destroy(p.tracker);
    edgeser_windower_destroy(p.windower);
    fclose(in.f);
    return status;
}

static int usage(const char *why)
{
    fprintf(stderr, "detect_wav: %s\nusage: detect_wav [--window S] [--hop S] [--threshold P] "
                    "[--release P] [--merge-gap S] [--min-duration S] [--silence DBFS] [--raw] "
                    "[--block FRAMES] [--windows] [--expect-events N] [--model FILE.onnx] "
                    "FILE.wav\n", why);
    return 2;
}

static int number(const char *text, double *out)
{
    char *end = NULL;
    *out = strtod(text, &end);
    return end != text && *end == '\0' && isfinite(*out);
}

int main(int argc, char **argv)
{
    options o;
    int i, release_given = 0;
    double v;

    /* The loaded library must have the major version this program was compiled against, and at
     * least its minor version (the windower and the event tracker arrived in 0.2). */
    if (edgeser_version_number() / 10000u != EDGESER_VERSION_MAJOR ||
        edgeser_version_number() < EDGESER_VERSION_NUMBER) {
        fprintf(stderr, "detect_wav: built for edgeser %s, loaded %s\n", EDGESER_VERSION_STRING,
                edgeser_version());
        return 1;
    }
    memset(&o, 0, sizeof(o));
    o.window_s = 1.0;
    o.hop_s = 0.25;
    o.threshold = 0.5;
    o.merge_gap_s = 0.5;
    o.min_duration_s = 0.0;
    o.silence_dbfs = -60.0f;
    o.block_frames = 480u;
    o.expect_events = -1;
    for (i = 1; i < argc; ++i) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--raw") == 0) {
            o.raw = 1;
        } else if (strcmp(a, "--windows") == 0) {
            o.print_windows = 1;
        } else if (a[0] == '-' && a[1] == '-' && !has_value) {
            return usage("an option without its value");
        } else if (strcmp(a, "--model") == 0) {
            o.model_path = argv[++i];
        } else if (a[0] == '-' && a[1] == '-') {
            if (!number(argv[++i], &v)) {
                return usage("option values are numbers");
            }
            if (strcmp(a, "--window") == 0 && v > 0 && v <= 10.0) {
                o.window_s = v;
            } else if (strcmp(a, "--hop") == 0 && v > 0 && v <= 10.0) {
                o.hop_s = v;
            } else if (strcmp(a, "--threshold") == 0) {
                o.threshold = v;
            } else if (strcmp(a, "--release") == 0) {
                o.release = v;
                release_given = 1;
            } else if (strcmp(a, "--merge-gap") == 0 && v >= 0 && v < 1e6) {
                o.merge_gap_s = v;
            } else if (strcmp(a, "--min-duration") == 0 && v >= 0 && v < 1e6) {
                o.min_duration_s = v;
            } else if (strcmp(a, "--silence") == 0) {
                o.silence_dbfs = (float)v;
            } else if (strcmp(a, "--block") == 0 && v >= 1 && v <= MAX_BLOCK_FRAMES) {
                o.block_frames = (size_t)v;
            } else if (strcmp(a, "--expect-events") == 0 && v >= 0 && v < 1e9) {
                o.expect_events = (long)v;
            } else {
                return usage("unknown option or value out of range");
            }
        } else if (o.path == NULL) {
            o.path = a;
        } else {
            return usage("one WAV file at a time");
        }
    }
    if (o.path == NULL) {
        return usage("no WAV file");
    }
    if (!release_given) {
        o.release = o.threshold;
    }
#ifdef EDGESER_EXAMPLE_ORT
    if (o.model_path != NULL) {
        ort_model m;
        int status = ort_open(&m, o.model_path) ? run(&o, ort_model_run, &m) : 1;
        ort_close(&m);
        return status;
    }
#else
    if (o.model_path != NULL) {
        return usage("--model needs the ONNX Runtime build (make example-ort ORT_DIR=...)");
    }
#endif
    return run(&o, level_model, NULL);
}
