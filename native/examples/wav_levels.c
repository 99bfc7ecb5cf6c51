/* wav_levels: a firmware-style level meter on the edgeser native frontend.
 *
 * Audio arrives as it would from an I2S or USB audio DMA callback: 10 ms blocks of interleaved
 * signed 16-bit little-endian stereo PCM at 48 kHz. Here the blocks are synthesised so that the
 * program needs no files: a 1 kHz tone at -6 dB peak for 1 s, 1 s of digital silence, then 1 s
 * of a tone that is louder on the left than on the right. Each block is converted to float,
 * mixed down to mono and streamed through a 48 kHz -> 16 kHz resampler whose state lives in a
 * static arena (no heap; edgeser_resampler_create/destroy is the heap alternative). The 16 kHz
 * signal is then cut into 0.5 s windows with a 0.25 s hop and each window's RMS level printed in
 * dBFS. Finally the levels of the windows well inside each part are checked against the levels
 * the synthesis implies.
 *
 * The program itself calls nothing from libm (the tone comes from a rotation oscillator), so a
 * static link gets -lm only from the pkg-config file's Libs.private.
 *
 * Build against an installed copy:
 *   cc -std=c99 -O2 wav_levels.c -o wav_levels $(pkg-config --cflags --libs edgeser-frontend)
 *   cc -std=c99 -O2 -static wav_levels.c -o wav_levels \
 *       $(pkg-config --static --cflags --libs edgeser-frontend)
 * or against the build tree: make -C native example.
 *
 * Exit status 0 on success, 1 when the loaded library's major version differs from the
 * header's, when any edgeser call fails (the reason from edgeser_strerror goes to stderr) or
 * when a level check fails.
 */
#include <stdint.h>
#include <stdio.h>

#include <edgeser/frontend.h>

#define IN_RATE_HZ 48000u
#define CHANNELS 2u
#define BLOCK_FRAMES 480u                      /* 10 ms at 48 kHz */
#define PART_BLOCKS 100u                       /* 1 s */
#define N_PARTS 3u
#define TOTAL_BLOCKS (N_PARTS * PART_BLOCKS)
#define OUT_PART ((size_t)EDGESER_TARGET_RATE_HZ) /* 16 kHz samples per 1 s part */
#define OUT_MAX (N_PARTS * OUT_PART)            /* ceil(3 s * 16000) */

#define WINDOW (EDGESER_TARGET_RATE_HZ / 2u)   /* 0.5 s */
#define HOP (EDGESER_TARGET_RATE_HZ / 4u)      /* 0.25 s */
#define MIN_LEN 400u                           /* one model frame */
#define GATE_DBFS (-60.0f)                     /* below this a window counts as silent */
#define EDGE 320u                              /* 20 ms: resampler filter settles within this */

/* Peak amplitude of left and right in each 1 s part. The mixdown averages them. */
static const float kLeft[N_PARTS] = {0.5f, 0.0f, 0.15f};
static const float kRight[N_PARTS] = {0.5f, 0.0f, 0.05f};
/* RMS of a sine of peak a is 20*log10(a / sqrt(2)) dBFS: mono peaks 0.5, 0 and 0.1. */
static const float kExpectedDbfs[N_PARTS] = {-9.0309f, EDGESER_DBFS_FLOOR, -23.0103f};
#define TOLERANCE_DB 0.1f

/* Resampler state in caller memory, aligned by hand to the 16 bytes the library requires. */
#define ARENA_BYTES 32768u
static unsigned char arena[ARENA_BYTES + 15u];

static float signal16k[OUT_MAX];

static int failed(edgeser_status status, const char *what)
{
    if (status == EDGESER_OK) {
        return 0;
    }
    fprintf(stderr, "wav_levels: %s failed: %s\n", what, edgeser_strerror(status));
    return 1;
}

/* 1 kHz at 48 kHz is exactly 48 samples a period: rotate by 2*pi/48 per sample and restart
 * the phase each period, so no error accumulates. */
typedef struct oscillator {
    double c, s;
    unsigned step;
} oscillator;

static double oscillator_next(oscillator *o)
{
    static const double kCos = 0.9914448613738104; /* cos(2*pi/48) */
    static const double kSin = 0.13052619222005157; /* sin(2*pi/48) */
    double value = o->s;
    double c = o->c * kCos - o->s * kSin;
    double s = o->c * kSin + o->s * kCos;
    if (++o->step == 48u) {
        o->step = 0;
        c = 1.0;
        s = 0.0;
    }
    o->c = c;
    o->s = s;
    return value;
}

static void put_s16le(unsigned char *p, double x)
{
    long v = (long)(x * 32767.0 + (x >= 0.0 ? 0.5 : -0.5));
    uint16_t u = (uint16_t)(v < -32768 ? -32768 : v > 32767 ? 32767 : v);
    p[0] = (unsigned char)(u & 0xffu);
    p[1] = (unsigned char)(u >> 8);
}

/* What the DMA callback would hand over: block `b` of interleaved s16le stereo. */
static void synthesise_block(oscillator *osc, unsigned b, unsigned char *pcm)
{
    unsigned part = b / PART_BLOCKS;
    unsigned i;
    for (i = 0; i < BLOCK_FRAMES; ++i) {
        double tone = oscillator_next(osc);
        put_s16le(pcm + 4u * i, tone * kLeft[part]);
        put_s16le(pcm + 4u * i + 2u, tone * kRight[part]);
    }
}

int main(void)
{
    static unsigned char pcm[BLOCK_FRAMES * CHANNELS * 2u];
    static float stereo[BLOCK_FRAMES * CHANNELS];
    static float mono[BLOCK_FRAMES];
    oscillator osc = {1.0, 0.0, 0};
    edgeser_resampler *rs = NULL;
    edgeser_resampler_info info;
    void *mem = (void *)(((uintptr_t)arena + 15u) & ~(uintptr_t)15u);
    size_t need = 0, n_out = 0, produced = 0, count = 0, k;
    unsigned b, bad = 0;

    /* The library that was loaded must have the major version this was compiled against. */
    printf("edgeser %s (compiled against %s)\n", edgeser_version(), EDGESER_VERSION_STRING);
    if (edgeser_version_number() / 10000u != (unsigned)EDGESER_VERSION_MAJOR) {
        fprintf(stderr, "wav_levels: loaded libedgeser_frontend %s but was compiled against %s; "
                "the major versions differ\n", edgeser_version(), EDGESER_VERSION_STRING);
        return 1;
    }

    if (failed(edgeser_resampler_size(IN_RATE_HZ, &need), "edgeser_resampler_size")) {
        return 1;
    }
    if (need > ARENA_BYTES) {
        fprintf(stderr, "wav_levels: the resampler needs %lu bytes, the arena has %u\n",
                (unsigned long)need, ARENA_BYTES);
        return 1;
    }
    if (failed(edgeser_resampler_init(mem, ARENA_BYTES, IN_RATE_HZ, &rs),
               "edgeser_resampler_init") ||
        failed(edgeser_resampler_info_get(rs, &info), "edgeser_resampler_info_get")) {
        return 1;
    }
    printf("resampler %u -> %u Hz: %lu bytes of state, %u taps per phase, flat to %.0f Hz\n",
           (unsigned)info.rate_in_hz, (unsigned)info.rate_out_hz, (unsigned long)need,
           (unsigned)info.taps_per_phase, info.passband_hz);

    /* Stream: convert, mix down and resample each block as it arrives. */
    for (b = 0; b < TOTAL_BLOCKS; ++b) {
        synthesise_block(&osc, b, pcm);
        if (failed(edgeser_pcm_to_float(pcm, BLOCK_FRAMES, CHANNELS, EDGESER_PCM_S16, stereo),
                   "edgeser_pcm_to_float") ||
            failed(edgeser_mixdown(stereo, BLOCK_FRAMES, CHANNELS, mono), "edgeser_mixdown") ||
            failed(edgeser_resampler_process(rs, mono, BLOCK_FRAMES, signal16k + produced,
                                             OUT_MAX - produced, &n_out),
                   "edgeser_resampler_process")) {
            return 1;
        }
        produced += n_out;
    }
    if (failed(edgeser_resampler_flush(rs, signal16k + produced, OUT_MAX - produced, &n_out),
               "edgeser_resampler_flush")) {
        return 1;
    }
    produced += n_out;
    printf("%u blocks of %u frames in, %lu samples at 16 kHz out\n", TOTAL_BLOCKS, BLOCK_FRAMES,
           (unsigned long)produced);
    if (produced != OUT_MAX) {
        fprintf(stderr, "wav_levels: expected %lu samples at 16 kHz\n", (unsigned long)OUT_MAX);
        return 1;
    }

    /* Windows and their levels. */
    if (failed(edgeser_window_count(produced, WINDOW, HOP, MIN_LEN, &count),
               "edgeser_window_count")) {
        return 1;
    }
    for (k = 0; k < count; ++k) {
        size_t start = 0, len = 0, part;
        float dbfs = 0.0f;
        const char *note = "";
        if (failed(edgeser_window_bounds(produced, WINDOW, HOP, MIN_LEN, k, &start, &len),
                   "edgeser_window_bounds") ||
            failed(edgeser_rms_dbfs(signal16k + start, len, &dbfs), "edgeser_rms_dbfs")) {
            return 1;
        }
        /* A window well inside one part must read that part's level. */
        part = start / OUT_PART;
        if (start >= part * OUT_PART + EDGE && start + len + EDGE <= (part + 1u) * OUT_PART) {
            float diff = dbfs - kExpectedDbfs[part];
            if (diff < -TOLERANCE_DB || diff > TOLERANCE_DB) {
                note = "  <- not the expected level";
                ++bad;
            } else {
                note = "  (checked)";
            }
        }
        printf("window %2lu  %5.2f-%5.2f s  %8.2f dBFS  %s%s\n", (unsigned long)k,
               (double)start / EDGESER_TARGET_RATE_HZ,
               (double)(start + len) / EDGESER_TARGET_RATE_HZ, (double)dbfs,
               dbfs < GATE_DBFS ? "silent" : "sound", note);
    }
    if (bad != 0) {
        fprintf(stderr, "wav_levels: %u window(s) off their expected level by more than %.1f dB\n",
                bad, (double)TOLERANCE_DB);
        return 1;
    }
    return 0;
}
