/* make_wav: writes the test clip of detect_wav in one encoding (no files are committed).
 *
 *   make_wav OUT.wav RATE CHANNELS FORMAT [extensible]
 *
 * FORMAT is u8, s16, s24, s32, f32 or f64; "extensible" writes WAVE_FORMAT_EXTENSIBLE. The clip
 * is 5 s: quiet noise at about -40 dBFS, two loud noise bursts ("laughs", about -10 dBFS) at
 * 0.5-1.0 s and 3.5-4.0 s, and digital silence from 1.5 to 2.75 s. With detect_wav's defaults
 * (1 s windows every 0.25 s, its level-driven stand-in model, merge gap 0.5 s) that is two
 * events, [0, 1.75) s and [2.75, 4.75) s, and two silent windows. Channel c carries the signal
 * scaled by (c + 1) / channels. The noise comes from a fixed-seed generator, so every run and
 * machine writes the same samples.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put16(FILE *f, uint32_t v)
{
    fputc((int)(v & 0xffu), f);
    fputc((int)((v >> 8) & 0xffu), f);
}

static void put32(FILE *f, uint32_t v)
{
    put16(f, v & 0xffffu);
    put16(f, v >> 16);
}

static double signal_at(double t, uint32_t *seed)
{
    double noise;
    *seed = *seed * 1664525u + 1013904223u;
    noise = (double)(*seed >> 8) / 16777216.0 - 0.5; /* RMS 0.289 */
    if ((t >= 0.5 && t < 1.0) || (t >= 3.5 && t < 4.0)) {
        return 1.09 * noise; /* about -10 dBFS */
    }
    if (t >= 1.5 && t < 2.75) {
        return 0.0;
    }
    return 0.035 * noise; /* about -40 dBFS */
}

int main(int argc, char **argv)
{
    const char *path, *fmt;
    uint32_t rate, channels, bits, tag, frames, i, c, seed = 2024u;
    int extensible;
    FILE *f;

    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: make_wav OUT.wav RATE CHANNELS FORMAT [extensible]\n");
        return 2;
    }
    path = argv[1];
    rate = (uint32_t)strtoul(argv[2], NULL, 10);
    channels = (uint32_t)strtoul(argv[3], NULL, 10);
    fmt = argv[4];
    extensible = argc == 6 && strcmp(argv[5], "extensible") == 0;
    if (rate < 1000u || rate > 384000u || channels < 1u || channels > 8u) {
        fprintf(stderr, "make_wav: rate 1000..384000, channels 1..8\n");
        return 2;
    }
    if (strcmp(fmt, "u8") == 0) {
        bits = 8u, tag = 1u;
    } else if (strcmp(fmt, "s16") == 0) {
        bits = 16u, tag = 1u;
    } else if (strcmp(fmt, "s24") == 0) {
        bits = 24u, tag = 1u;
    } else if (strcmp(fmt, "s32") == 0) {
        bits = 32u, tag = 1u;
    } else if (strcmp(fmt, "f32") == 0) {
        bits = 32u, tag = 3u;
    } else if (strcmp(fmt, "f64") == 0) {
        bits = 64u, tag = 3u;
    } else {
        fprintf(stderr, "make_wav: unknown format %s\n", fmt);
        return 2;
    }
    frames = 5u * rate;
    f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "make_wav: cannot write %s\n", path);
        return 1;
    }
    {
        uint32_t block = channels * bits / 8u, data = frames * block;
        uint32_t fmt_size = extensible ? 40u : 16u;
        fputs("RIFF", f);
        put32(f, 4u + 8u + fmt_size + 12u + 8u + data); /* WAVE, fmt, LIST (4 bytes), data */
        fputs("WAVE", f);
        fputs("fmt ", f);
        put32(f, fmt_size);
        put16(f, extensible ? 0xFFFEu : tag);
        put16(f, channels);
        put32(f, rate);
        put32(f, rate * block);
        put16(f, block);
        put16(f, bits);
        if (extensible) {
            static const unsigned char guid_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                                        0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
            put16(f, 22u);
            put16(f, bits);
            put32(f, 0u);
            put16(f, tag);
            fwrite(guid_tail, 1, sizeof(guid_tail), f);
        }
        /* A chunk the reader must skip. */
        fputs("LIST", f);
        put32(f, 4u);
        fputs("INFO", f);
        fputs("data", f);
        put32(f, data);
    }
    for (i = 0; i < frames; ++i) {
        double v = signal_at((double)i / (double)rate, &seed);
        for (c = 0; c < channels; ++c) {
            double x = v * (double)(c + 1u) / (double)channels;
            if (x > 0.999) x = 0.999;
            if (x < -0.999) x = -0.999;
            if (tag == 3u && bits == 32u) {
                float s = (float)x;
                unsigned char b[4];
                memcpy(b, &s, 4);
                fwrite(b, 1, 4, f);
            } else if (tag == 3u) {
                unsigned char b[8];
                memcpy(b, &x, 8);
                fwrite(b, 1, 8, f);
            } else if (bits == 8u) {
                fputc((int)(lround(x * 127.0) + 128), f);
            } else {
                long long q = llround(x * (double)((1ull << (bits - 1u)) - 1u));
                uint32_t u = (uint32_t)q, k;
                for (k = 0; k < bits / 8u; ++k) {
                    fputc((int)((u >> (8u * k)) & 0xffu), f);
                }
            }
        }
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "make_wav: error writing %s\n", path);
        return 1;
    }
    return 0;
}
