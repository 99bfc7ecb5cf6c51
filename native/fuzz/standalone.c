/*
 * Runs the fuzz harness without libFuzzer (any C compiler, e.g. gcc with ASan + UBSan): first
 * every file of the given corpus directories, then RUNS inputs made from them by a fixed-seed
 * PRNG with structured mutations (parameter bytes set to interesting values, special float
 * patterns written into the PCM, truncation, growth, silence and DC). The same seed gives the
 * same inputs on every machine, so a failure here reproduces anywhere.
 *
 *   fuzz_smoke [-n RUNS] [-s SEED] [-o FAILING_INPUT] DIR...
 *
 * When an input fails (the harness or a sanitizer aborts), it is written to FAILING_INPUT
 * (when given) for replay with the libFuzzer binary or with this one (-r FILE).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER_BYTES 24u
#define MAX_INPUT (HEADER_BYTES + 4096u)

typedef struct blob {
    uint8_t *data;
    size_t size;
} blob;

static uint64_t g_rng;

/* splitmix64: small, fixed, identical everywhere. */
static uint64_t next_u64(void)
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t below(uint32_t n)
{
    return n == 0u ? 0u : (uint32_t)(next_u64() % n);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n > 0u ? n : 1u);
    if (p == NULL) {
        fprintf(stderr, "fuzz_smoke: out of memory\n");
        exit(2);
    }
    return p;
}

static int read_file(const char *path, blob *out)
{
    FILE *f = fopen(path, "rb");
    long len;
    if (f == NULL) {
        return 0;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return 0;
    }
    out->size = (size_t)len;
    out->data = (uint8_t *)xmalloc(out->size);
    if (out->size > 0u && fread(out->data, 1, out->size, f) != out->size) {
        fclose(f);
        free(out->data);
        return 0;
    }
    fclose(f);
    return 1;
}

/* The input being run, for the abort handler. */
static const char *g_failing_path;
static const uint8_t *volatile g_current;
static volatile size_t g_current_size;

/* Saves the running input, then dies of the same signal. Only async-signal-safe calls. */
static void on_abort(int sig)
{
    if (g_failing_path != NULL && g_current != NULL) {
        int fd = open(g_failing_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            size_t done = 0;
            while (done < g_current_size) {
                ssize_t w = write(fd, g_current + done, g_current_size - done);
                if (w <= 0) {
                    break;
                }
                done += (size_t)w;
            }
            close(fd);
            (void)!write(2, "fuzz_smoke: failing input saved\n", 32);
        }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void run_one(const uint8_t *data, size_t size)
{
    g_current = data;
    g_current_size = size;
    LLVMFuzzerTestOneInput(data, size);
    g_current = NULL;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends every regular-looking file of `dir` (sorted by name, for a fixed order). */
static size_t load_dir(const char *dir, blob **seeds, size_t *n_seeds)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n_names = 0, i, loaded = 0;
    if (d == NULL) {
        fprintf(stderr, "fuzz_smoke: cannot open %s\n", dir);
        exit(2);
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        names = (char **)realloc(names, (n_names + 1u) * sizeof(*names));
        if (names == NULL) {
            exit(2);
        }
        names[n_names] = (char *)xmalloc(strlen(dir) + strlen(e->d_name) + 2u);
        sprintf(names[n_names], "%s/%s", dir, e->d_name);
        ++n_names;
    }
    closedir(d);
    if (n_names > 0u) {
        qsort(names, n_names, sizeof(*names), compare_names);
    }
    for (i = 0; i < n_names; ++i) {
        blob b;
        if (read_file(names[i], &b)) {
            *seeds = (blob *)realloc(*seeds, (*n_seeds + 1u) * sizeof(**seeds));
            if (*seeds == NULL) {
                exit(2);
            }
            (*seeds)[(*n_seeds)++] = b;
            ++loaded;
        }
        free(names[i]);
    }
    free(names);
    return loaded;
}

/* ---------------------------------------------------------------- mutations ------------ */

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* A rate field: mostly a mode the harness maps to a common rate, sometimes a handful of
 * fixed odd rates (so their resamplers are reused, keeping the run short), rarely anything. */
static void mutate_rate(uint8_t *h)
{
    static const uint32_t kOdd[] = {1001u, 7999u, 12345u, 16001u, 44101u, 47999u, 383999u};
    uint32_t pick = below(64);
    if (pick < 44u) {
        h[0] = (uint8_t)(below(4) + 8u * below(32)); /* modes 0..3: common rates */
        put_u32(h + 1, (uint32_t)next_u64());
    } else if (pick < 54u) {
        h[0] = 6; /* raw value */
        put_u32(h + 1, kOdd[below(sizeof kOdd / sizeof kOdd[0])]);
    } else if (pick < 55u) {
        h[0] = 4; /* any valid rate */
        put_u32(h + 1, (uint32_t)next_u64());
    } else if (pick < 60u) {
        h[0] = 6; /* raw, mostly invalid */
        put_u32(h + 1, (uint32_t)next_u64());
    } else {
        h[0] = 7; /* edge values */
        put_u32(h + 1, (uint32_t)next_u64());
    }
}

static void mutate_header(uint8_t *h)
{
    switch (below(9)) {
    case 0: mutate_rate(h); break;
    case 1: h[5] = (uint8_t)(below(8) < 7u ? below(8) : 240u + below(16)); break; /* channels */
    case 2: h[6] = (uint8_t)(below(8) < 7u ? below(6) : 240u + below(16)); break; /* format */
    case 3: h[7] = (uint8_t)next_u64(); break;                                    /* flags A */
    case 4: put_u32(h + 8, (uint32_t)next_u64()); break;                          /* chunking */
    case 5: put_u32(h + 12, (uint32_t)next_u64()); break;                         /* window, hop */
    case 6: h[16] = (uint8_t)next_u64(); h[17] = (uint8_t)(below(4) == 0u ? 0xffu : below(2)); break;
    case 7: h[18] = (uint8_t)next_u64(); break;                                   /* window mode */
    default: h[19] = (uint8_t)next_u64(); put_u32(h + 20, (uint32_t)next_u64()); break;
    }
}

/* Special sample values, as float32 and float64 bit patterns. */
static void put_special(uint8_t *p, size_t room)
{
    static const float kF[] = {0.0f, -0.0f, 1.0f, -1.0f, 1e-45f, 3.4028235e38f, -3.4028235e38f};
    uint32_t pick = below(10);
    if (room >= 8u && below(2) == 0u) {
        double d;
        uint64_t bits;
        if (pick < 7u) {
            d = (double)kF[pick];
            memcpy(&bits, &d, sizeof bits);
        } else {
            static const uint64_t kBits[] = {0x7ff8000000000000ull, 0x7ff0000000000000ull,
                                             0xfff0000000000000ull};
            bits = kBits[pick - 7u]; /* NaN, +Inf, -Inf */
        }
        memcpy(p, &bits, 8);
    } else if (room >= 4u) {
        uint32_t bits;
        if (pick < 7u) {
            memcpy(&bits, &kF[pick], sizeof bits);
        } else {
            static const uint32_t kBits[] = {0x7fc00000u, 0x7f800000u, 0xff800000u};
            bits = kBits[pick - 7u];
        }
        memcpy(p, &bits, 4);
    }
}

static void mutate_body(uint8_t *buf, size_t *size)
{
    size_t body = *size - HEADER_BYTES, at, len, i;
    switch (below(7)) {
    case 0: /* bit flips */
        if (body > 0u) {
            for (i = below(8) + 1u; i > 0u; --i) {
                buf[HEADER_BYTES + below((uint32_t)body)] ^= (uint8_t)(1u << below(8));
            }
        }
        break;
    case 1: /* special floats at an aligned and an unaligned offset */
        if (body >= 8u) {
            at = below((uint32_t)(body - 7u));
            put_special(buf + HEADER_BYTES + (at & ~(size_t)3), body - (at & ~(size_t)3));
            put_special(buf + HEADER_BYTES + at, body - at);
        }
        break;
    case 2: /* truncate */
        *size = HEADER_BYTES + below((uint32_t)body + 1u);
        break;
    case 3: /* grow with noise */
        len = below(MAX_INPUT - *size + 1u);
        for (i = 0; i < len; ++i) {
            buf[*size + i] = (uint8_t)next_u64();
        }
        *size += len;
        break;
    case 4: /* a run of one byte value: silence, DC or full scale */
        if (body > 0u) {
            static const uint8_t kFill[] = {0x00u, 0x80u, 0x7fu, 0xffu};
            at = below((uint32_t)body);
            len = below((uint32_t)(body - at) + 1u);
            memset(buf + HEADER_BYTES + at, kFill[below(4)], len);
        }
        break;
    case 5: /* repeat a block (periodic signals) */
        if (body >= 2u) {
            len = 1u + below((uint32_t)(body / 2u));
            for (i = len; i < body; ++i) {
                buf[HEADER_BYTES + i] = buf[HEADER_BYTES + i - len];
            }
        }
        break;
    default: /* random bytes */
        for (i = 0; i < body; i += 1u + below(16)) {
            buf[HEADER_BYTES + i] = (uint8_t)next_u64();
        }
        break;
    }
}

/* A new input: a mutated corpus file, or random parameters over a random-length body. */
static size_t generate(const blob *seeds, size_t n_seeds, uint8_t *buf)
{
    size_t size, i, steps;
    if (n_seeds > 0u && below(4) != 0u) {
        const blob *b = &seeds[below((uint32_t)n_seeds)];
        size = b->size < MAX_INPUT ? b->size : MAX_INPUT;
        memcpy(buf, b->data, size);
    } else {
        size = HEADER_BYTES + below(2048);
        for (i = 0; i < size; ++i) {
            buf[i] = (uint8_t)next_u64();
        }
        mutate_rate(buf);
    }
    if (size < HEADER_BYTES) {
        memset(buf + size, 0, HEADER_BYTES - size);
        size = HEADER_BYTES;
    }
    for (steps = 1u + below(4); steps > 0u; --steps) {
        if (below(2) == 0u) {
            mutate_header(buf);
        } else {
            mutate_body(buf, &size);
        }
    }
    /* Building a resampler costs the most (milliseconds); keep new ones to a few inputs. */
    if ((buf[19] & 7u) == 7u && below(8) != 0u) {
        buf[19] &= (uint8_t)~1u;
    }
    return size;
}

/* ---------------------------------------------------------------- main ----------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(void)
{
    fprintf(stderr, "usage: fuzz_smoke [-n RUNS] [-s SEED] [-o FAILING_INPUT] DIR...\n"
                    "       fuzz_smoke -r FILE   (run one input)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned long runs = 20000ul, i;
    uint64_t seed = 0x5eedf00dull;
    const char *failing = NULL;
    blob *seeds = NULL;
    size_t n_seeds = 0, k;
    uint8_t *buf = (uint8_t *)xmalloc(MAX_INPUT);
    double t0;
    int a;

    for (a = 1; a < argc; ++a) {
        if (strcmp(argv[a], "-n") == 0 && a + 1 < argc) {
            runs = strtoul(argv[++a], NULL, 10);
        } else if (strcmp(argv[a], "-s") == 0 && a + 1 < argc) {
            seed = (uint64_t)strtoull(argv[++a], NULL, 0);
        } else if (strcmp(argv[a], "-o") == 0 && a + 1 < argc) {
            failing = argv[++a];
        } else if (strcmp(argv[a], "-r") == 0 && a + 1 < argc) {
            blob b;
            if (!read_file(argv[++a], &b)) {
                usage();
            }
            run_one(b.data, b.size);
            printf("fuzz_smoke: %s ran without a failure\n", argv[a]);
            free(b.data);
            return 0;
        } else if (argv[a][0] == '-') {
            usage();
        } else {
            load_dir(argv[a], &seeds, &n_seeds);
        }
    }
    g_rng = seed;
    g_failing_path = failing;
    signal(SIGABRT, on_abort);
    t0 = now_s();
    for (k = 0; k < n_seeds; ++k) {
        run_one(seeds[k].data, seeds[k].size);
    }
    for (i = 0; i < runs; ++i) {
        run_one(buf, generate(seeds, n_seeds, buf));
    }
    {
        double dt = now_s() - t0;
        unsigned long total = (unsigned long)n_seeds + runs;
        printf("fuzz_smoke: %lu executions (%lu corpus files + %lu generated, seed 0x%llx) in "
               "%.1f s (%.0f exec/s), no invariant violated\n",
               total, (unsigned long)n_seeds, runs, (unsigned long long)seed, dt,
               dt > 0.0 ? (double)total / dt : 0.0);
    }
    for (k = 0; k < n_seeds; ++k) {
        free(seeds[k].data);
    }
    free(seeds);
    free(buf);
    return 0;
}
