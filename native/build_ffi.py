"""cffi out-of-line API-mode build of ``edgeser._native`` from the C sources in this folder.

Used by setup.py (``cffi_modules``). The declarations below mirror
``include/edgeser/frontend.h``; a test checks that every exported function of the header is
declared here, so the two cannot drift apart silently.
"""

import os
import sys
import sysconfig

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

CDEF = """
#define EDGESER_VERSION_MAJOR ...
#define EDGESER_VERSION_MINOR ...
#define EDGESER_VERSION_PATCH ...
#define EDGESER_TARGET_RATE_HZ ...
#define EDGESER_MIN_RATE_HZ ...
#define EDGESER_MAX_RATE_HZ ...
#define EDGESER_TABLE_BUDGET_BYTES ...

typedef enum edgeser_status {
    EDGESER_OK = 0,
    EDGESER_ERR_NULL = 1,
    EDGESER_ERR_RATE = 2,
    EDGESER_ERR_CHANNELS = 3,
    EDGESER_ERR_FORMAT = 4,
    EDGESER_ERR_BUFFER_TOO_SMALL = 5,
    EDGESER_ERR_OVERFLOW = 6,
    EDGESER_ERR_STATE = 7,
    EDGESER_ERR_ARGUMENT = 8,
    EDGESER_ERR_NOMEM = 9
} edgeser_status;

const char *edgeser_strerror(edgeser_status status);
const char *edgeser_version(void);
unsigned edgeser_version_number(void);

typedef enum edgeser_pcm_format {
    EDGESER_PCM_U8 = 1,
    EDGESER_PCM_S16 = 2,
    EDGESER_PCM_S24 = 3,
    EDGESER_PCM_S32 = 4,
    EDGESER_PCM_F32 = 5,
    EDGESER_PCM_F64 = 6
} edgeser_pcm_format;

size_t edgeser_pcm_bytes_per_sample(edgeser_pcm_format format);
edgeser_status edgeser_pcm_to_float(const void *in, size_t n_frames, uint32_t channels,
                                    edgeser_pcm_format format, float *out);
edgeser_status edgeser_mixdown(const float *in, size_t n_frames, uint32_t channels, float *out);

typedef struct edgeser_resampler edgeser_resampler;
typedef struct edgeser_resampler_info {
    uint32_t rate_in_hz;
    uint32_t rate_out_hz;
    uint32_t up;
    uint32_t down;
    uint32_t taps_per_phase;
    uint32_t phases;
    int exact;
    double passband_hz;
    double stopband_hz;
    double stopband_db;
    size_t table_bytes;
    size_t state_bytes;
} edgeser_resampler_info;

edgeser_status edgeser_resampler_size(uint32_t rate_in_hz, size_t *bytes);
edgeser_status edgeser_resampler_init(void *mem, size_t bytes, uint32_t rate_in_hz,
                                      edgeser_resampler **out);
edgeser_status edgeser_resampler_create(uint32_t rate_in_hz, edgeser_resampler **out);
void edgeser_resampler_destroy(edgeser_resampler *resampler);
edgeser_status edgeser_resampler_info_get(const edgeser_resampler *resampler,
                                          edgeser_resampler_info *info);
edgeser_status edgeser_resampler_reset(edgeser_resampler *resampler);
edgeser_status edgeser_resampler_max_output(const edgeser_resampler *resampler, size_t n_in,
                                            size_t *n_out);
edgeser_status edgeser_resampler_flush_output(const edgeser_resampler *resampler, size_t *n_out);
edgeser_status edgeser_resampler_process(edgeser_resampler *resampler, const float *in,
                                         size_t n_in, float *out, size_t out_capacity,
                                         size_t *n_out);
edgeser_status edgeser_resampler_flush(edgeser_resampler *resampler, float *out,
                                       size_t out_capacity, size_t *n_out);

edgeser_status edgeser_normalize(const float *in, size_t n, float *out);
edgeser_status edgeser_rms_dbfs(const float *in, size_t n, float *dbfs);
edgeser_status edgeser_window_count(size_t n, size_t window, size_t hop, size_t min_len,
                                    size_t *count);
edgeser_status edgeser_window_bounds(size_t n, size_t window, size_t hop, size_t min_len,
                                     size_t k, size_t *start, size_t *len);
"""


def _sources() -> list[str]:
    src = os.path.join(HERE, "src")
    # setuptools wants paths relative to the project root it runs in.
    return sorted(
        os.path.relpath(os.path.join(src, name))
        for name in os.listdir(src)
        if name.endswith(".c")
    )


# The stable ABI (Py_LIMITED_API, an .abi3.so): one build serves CPython 3.10+, and setup.py tags
# the wheel cp310-abi3. Debug and free-threaded CPython have no stable ABI (cffi's own default
# makes the same choice); setup.py applies the same test to the wheel tag.
PY_LIMITED_API = not hasattr(sys, "gettotalrefcount") and not sysconfig.get_config_var(
    "Py_GIL_DISABLED")

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "edgeser._native",
    '#include "edgeser/frontend.h"',
    sources=_sources(),
    include_dirs=[os.path.relpath(os.path.join(HERE, "include"))],
    extra_compile_args=["-std=c99", "-O3", "-fvisibility=hidden"],
    libraries=["m"],
    py_limited_api=PY_LIMITED_API,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
