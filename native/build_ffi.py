"""cffi out-of-line API-mode build of ``edgeser._native`` from the C sources in this folder.

Used by setup.py (``cffi_modules``). The declarations below (``CDEF``) are written by hand and
must equal ``include/edgeser/frontend.h``: every ``EDGESER_API`` function with its full
signature (types and parameter names), every enum with its constants and values in order, every
struct with its fields in order, every typedef, and each ``#define`` the cdef names (which the
header must define as an integer constant). :func:`cdef_drift` compares the two after removing
comments, preprocessor lines and whitespace differences; the build stops here, before compiling,
when they differ, with one line per declaration that differs (tests/test_frontend.py runs the
same check and mutates the header to show it fails).

The cdef is not generated from the header on purpose: the header holds what cffi cannot read
(``EDGESER_API`` attributes, ``#if``/``#error``, string and float macros, ``extern "C"``), so a
generator would be a C preprocessor of its own, and the declarations Python binds stay a short
reviewed list here, as in pynacl and python-soxr.
"""

import os
import re
import sys
import sysconfig

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "include", "edgeser", "frontend.h")

CDEF = """
#define EDGESER_VERSION_MAJOR ...
#define EDGESER_VERSION_MINOR ...
#define EDGESER_VERSION_PATCH ...
#define EDGESER_TARGET_RATE_HZ ...
#define EDGESER_MIN_RATE_HZ ...
#define EDGESER_MAX_RATE_HZ ...
#define EDGESER_TABLE_BUDGET_BYTES ...
#define EDGESER_FRAME_SAMPLES ...
#define EDGESER_MIN_WINDOW_SAMPLES ...

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
edgeser_status edgeser_resampler_stage_count(const edgeser_resampler *resampler, uint32_t *count);
edgeser_status edgeser_resampler_stage_info(const edgeser_resampler *resampler, uint32_t index,
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

typedef struct edgeser_windower edgeser_windower;
typedef enum edgeser_normalization {
    EDGESER_NORMALIZE_NONE = 0,
    EDGESER_NORMALIZE_PER_WINDOW = 1
} edgeser_normalization;
typedef struct edgeser_windower_config {
    uint32_t rate_in_hz;
    uint32_t channels;
    edgeser_pcm_format format;
    size_t window;
    size_t hop;
    size_t min_len;
    float silence_dbfs;
    edgeser_normalization normalization;
} edgeser_windower_config;
typedef struct edgeser_window {
    uint64_t index;
    uint64_t start;
    uint64_t stop;
    size_t length;
    float level_dbfs;
    int silent;
    int is_final;
} edgeser_window;

edgeser_status edgeser_windower_size(const edgeser_windower_config *config, size_t *bytes);
edgeser_status edgeser_windower_init(void *mem, size_t bytes,
                                     const edgeser_windower_config *config,
                                     edgeser_windower **out);
edgeser_status edgeser_windower_create(const edgeser_windower_config *config,
                                       edgeser_windower **out);
void edgeser_windower_destroy(edgeser_windower *windower);
edgeser_status edgeser_windower_reset(edgeser_windower *windower);
edgeser_status edgeser_windower_push(edgeser_windower *windower, const void *pcm,
                                     size_t n_frames, size_t *n_taken);
edgeser_status edgeser_windower_finish(edgeser_windower *windower);
edgeser_status edgeser_windower_next(edgeser_windower *windower, float *out,
                                     size_t out_capacity, edgeser_window *window,
                                     int *has_window);
edgeser_status edgeser_windower_samples(const edgeser_windower *windower, uint64_t *samples);

typedef struct edgeser_event_tracker edgeser_event_tracker;
typedef struct edgeser_event_config {
    double threshold;
    double release;
    uint64_t min_duration;
    uint64_t merge_gap;
} edgeser_event_config;
typedef struct edgeser_event {
    uint64_t start;
    uint64_t stop;
    double peak;
    uint64_t peak_start;
    uint64_t peak_stop;
    uint64_t windows;
} edgeser_event;

edgeser_status edgeser_event_tracker_size(size_t *bytes);
edgeser_status edgeser_event_tracker_init(void *mem, size_t bytes,
                                          const edgeser_event_config *config,
                                          edgeser_event_tracker **out);
edgeser_status edgeser_event_tracker_create(const edgeser_event_config *config,
                                            edgeser_event_tracker **out);
void edgeser_event_tracker_destroy(edgeser_event_tracker *tracker);
edgeser_status edgeser_event_tracker_reset(edgeser_event_tracker *tracker);
edgeser_status edgeser_event_tracker_add(edgeser_event_tracker *tracker, uint64_t start,
                                         uint64_t stop, double probability, int silent,
                                         edgeser_event *event, int *closed);
edgeser_status edgeser_event_tracker_finish(edgeser_event_tracker *tracker,
                                            edgeser_event *event, int *closed);

typedef struct edgeser_summary edgeser_summary;
typedef struct edgeser_summary_totals {
    uint64_t windows;
    uint64_t voiced;
    uint64_t silent;
    uint64_t events;
    uint64_t event_samples;
    double event_seconds;
    int32_t top;
} edgeser_summary_totals;

edgeser_status edgeser_summary_size(uint32_t n_outputs, size_t *bytes);
edgeser_status edgeser_summary_init(void *mem, size_t bytes, uint32_t n_outputs,
                                    edgeser_summary **out);
edgeser_status edgeser_summary_create(uint32_t n_outputs, edgeser_summary **out);
void edgeser_summary_destroy(edgeser_summary *summary);
edgeser_status edgeser_summary_reset(edgeser_summary *summary);
edgeser_status edgeser_summary_add_window(edgeser_summary *summary, const double *outputs);
edgeser_status edgeser_summary_add_event(edgeser_summary *summary, uint64_t start,
                                         uint64_t stop);
edgeser_status edgeser_summary_get(const edgeser_summary *summary,
                                   edgeser_summary_totals *totals, double *means);

typedef struct edgeser_denoiser edgeser_denoiser;
#define EDGESER_DENOISE_MIN_RATE_HZ ...
#define EDGESER_DENOISE_MAX_RATE_HZ ...
#define EDGESER_DENOISE_FRAME_MAX_MS ...
#define EDGESER_DENOISE_FLOOR_DB ...
typedef struct edgeser_denoiser_info {
    uint32_t rate_hz;
    size_t frame;
    size_t hop;
    size_t latency;
    size_t memory_bytes;
} edgeser_denoiser_info;

edgeser_status edgeser_denoiser_size(uint32_t rate_hz, size_t *bytes);
edgeser_status edgeser_denoiser_latency(uint32_t rate_hz, size_t *samples);
edgeser_status edgeser_denoiser_init(void *mem, size_t bytes, uint32_t rate_hz,
                                     edgeser_denoiser **out);
edgeser_status edgeser_denoiser_create(uint32_t rate_hz, edgeser_denoiser **out);
void edgeser_denoiser_destroy(edgeser_denoiser *denoiser);
edgeser_status edgeser_denoiser_info_get(const edgeser_denoiser *denoiser,
                                         edgeser_denoiser_info *info);
edgeser_status edgeser_denoiser_reset(edgeser_denoiser *denoiser);
edgeser_status edgeser_denoiser_process(edgeser_denoiser *denoiser, const float *in, float *out,
                                        size_t n);
edgeser_status edgeser_denoiser_flush(edgeser_denoiser *denoiser, float *out,
                                      size_t out_capacity, size_t *n_out);
"""


# ------------------------------------------------------------------ header <-> cdef check
# Standard library only: this runs in the isolated build environment.

# Identifiers, C preprocessing numbers (16000u, 1e-7, 0x1F), the cdef's "...", punctuation.
_TOKEN = re.compile(r"[A-Za-z_]\w*|\.?\d(?:[eEpP][+-]|[\w.])*|\.\.\.|\S")
_INTEGER = re.compile(r"(0[xX][0-9A-Fa-f]+|\d+)[uUlL]*\Z")
_INT_OPERATORS = set("()+-*/%<>|&^~") | {"<<", ">>"}
# Markers of the C++ guard and of symbol visibility: no part of a declaration.
_IGNORED_TOKENS = {"EDGESER_API"}


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text) if t not in _IGNORED_TOKENS]


def _show(tokens: list[str]) -> str:
    """Tokens as C text: one space between words, none inside ``f(a, *b)``."""
    text = " ".join(tokens)
    text = re.sub(r"(\w) \(", r"\1(", text)
    text = re.sub(r" ([,;)\]])", r"\1", text)
    text = re.sub(r"([(\[]) ", r"\1", text)
    return re.sub(r"\* (?=[\w*])", "*", text)


def _strip(text: str) -> tuple[str, dict[str, str]]:
    """Remove comments and preprocessor lines (and everything inside ``#ifdef __cplusplus``);
    return the remaining C text and the object-like ``#define``s (name -> value text)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", " ", text)
    text = text.replace("\\\n", " ")
    defines: dict[str, str] = {}
    kept, skip_depth, depth = [], 0, 0
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            if not skip_depth:
                kept.append(line)
            continue
        directive = stripped[1:].split(None, 1)
        word = directive[0] if directive else ""
        rest = directive[1] if len(directive) > 1 else ""
        if word in ("if", "ifdef", "ifndef"):
            depth += 1
            if not skip_depth and word == "ifdef" and rest.strip() == "__cplusplus":
                skip_depth = depth
        elif word == "endif":
            if skip_depth == depth:
                skip_depth = 0
            depth -= 1
        elif word == "define" and not skip_depth:
            match = re.match(r"(\w+)(?![\w(])\s*(.*)", rest)  # object-like macros only
            if match and match.group(1) not in defines:
                defines[match.group(1)] = " ".join(_tokens(match.group(2)))
    return "\n".join(kept), defines


def _statements(text: str) -> list[list[str]]:
    """Top-level declarations (split at ``;`` outside braces), as token lists."""
    statements, current, depth = [], [], 0
    for token in _tokens(text):
        if token == ";" and depth == 0:
            if current:
                statements.append(current)
            current = []
            continue
        depth += token == "{"
        depth -= token == "}"
        current.append(token)
    if current:
        statements.append(current)
    return statements


def _enum_constants(body: list[str]) -> list[tuple[str, str]]:
    """(name, value) of every enumerator in order; an implicit value is the previous plus one."""
    constants, entry, previous = [], [], -1
    for token in body + [","]:
        if token != ",":
            entry.append(token)
            continue
        if not entry:
            continue
        name, value = entry[0], entry[2:] if len(entry) > 2 and entry[1] == "=" else None
        if value is None:
            shown = str(previous + 1) if isinstance(previous, int) else f"{previous} + 1"
        else:
            shown = " ".join(value)
        literal = _INTEGER.match(shown) if " " not in shown else None
        previous = int(re.sub(r"[uUlL]+\Z", "", shown), 0) if literal else shown
        constants.append((name, str(previous)))
        entry = []
    return constants


def _struct_fields(body: list[str]) -> list[tuple[str, str]]:
    """(name, declaration) of every field in order."""
    fields, entry = [], []
    for token in body:
        if token == ";":
            names = [t for t in entry if re.match(r"[A-Za-z_]\w*\Z", t)]
            fields.append((names[-1] if names else _show(entry), _show(entry)))
            entry = []
        else:
            entry.append(token)
    return fields


def declarations(text: str) -> tuple[dict[str, object], dict[str, str]]:
    """The declarations of a header or a cdef, keyed like ``function edgeser_mixdown``,
    ``enum edgeser_status``, ``struct edgeser_resampler_info`` or ``typedef edgeser_resampler``,
    each as comparable data; and the object-like ``#define``s."""
    code, defines = _strip(text)
    found: dict[str, object] = {}

    def add(key: str, value: object) -> None:
        found[f"{key} (declared again)" if key in found else key] = value

    for tokens in _statements(code):
        if "{" in tokens:  # an enum or struct definition, perhaps in a typedef
            kind_at = next((i for i, t in enumerate(tokens) if t in ("enum", "struct", "union")),
                           None)
            kind = tokens[kind_at] if kind_at is not None else "block"
            open_at, close_at = tokens.index("{"), len(tokens) - 1 - tokens[::-1].index("}")
            names = [t for t in tokens[:open_at] + tokens[close_at + 1:]
                     if re.match(r"[A-Za-z_]\w*\Z", t) and t not in ("typedef", kind)]
            key = f"{kind} {names[-1] if names else _show(tokens[:open_at])}"
            body = tokens[open_at + 1:close_at]
            shape = _show(tokens[:open_at] + ["{", "}"] + tokens[close_at + 1:])
            members = _enum_constants(body) if kind == "enum" else _struct_fields(body)
            add(key, (shape, members))
        elif "(" in tokens and tokens[0] != "typedef":  # a function prototype
            name = tokens[tokens.index("(") - 1]
            add(f"function {name}", _show(tokens))
        else:  # a typedef or a variable
            if "(" in tokens and "*" in tokens:  # a function pointer typedef: (*name)
                name = tokens[tokens.index("*", tokens.index("(")) + 1]
            else:
                name = [t for t in tokens if re.match(r"[A-Za-z_]\w*\Z", t)][-1]
            add(f"{'typedef' if tokens[0] == 'typedef' else 'variable'} {name}", _show(tokens))
    return found, defines


def _is_integer_constant(value: str, defines: dict[str, str],
                         seen: frozenset = frozenset()) -> bool:
    """Whether a macro's value is an integer constant expression (literals, operators and
    macros that are themselves integer constants)."""
    tokens = value.split()
    if not tokens:
        return False
    for token in tokens:
        if _INTEGER.match(token) or token in _INT_OPERATORS:
            continue
        if token in defines and token not in seen:
            if _is_integer_constant(defines[token], defines, seen | {token}):
                continue
        return False
    return True


def _member_drift(key: str, header: list, cdef: list, what: str) -> list[str]:
    """Differences between two ordered member lists of (name, text)."""
    problems = []
    header_map, cdef_map = dict(header), dict(cdef)
    for name, text in header:
        if name not in cdef_map:
            problems.append(f"{key}: {what} {name} ({text}) is in the header but not the cdef")
        elif cdef_map[name] != text:
            problems.append(f"{key}: {what} {name} is `{text}` in the header but "
                            f"`{cdef_map[name]}` in the cdef")
    problems += [f"{key}: {what} {name} ({text}) is in the cdef but not the header"
                 for name, text in cdef if name not in header_map]
    if not problems and [n for n, _ in header] != [n for n, _ in cdef]:
        problems.append(f"{key}: the {what}s are in another order in the header "
                        f"({', '.join(n for n, _ in header)}) than in the cdef "
                        f"({', '.join(n for n, _ in cdef)})")
    return problems


def cdef_drift(header_text: str, cdef_text: str) -> list[str]:
    """Every difference between the header's declarations and the cdef's, one line each, naming
    the declaration; empty when they agree. ``#define NAME ...`` in the cdef requires an integer
    constant NAME in the header; a cdef define with a value requires the same value."""
    header, header_defines = declarations(header_text)
    cdef, cdef_defines = declarations(cdef_text)
    problems = []
    for key in header:
        if key not in cdef:
            problems.append(f"{key}: in the header but not declared in the cdef")
    for key, declared in cdef.items():
        if key not in header:
            problems.append(f"{key}: declared in the cdef but not in the header")
            continue
        expected = header[key]
        if isinstance(expected, tuple):  # enum or struct: (shape, members)
            if expected[0] != declared[0]:
                problems.append(f"{key}: `{expected[0]}` in the header but `{declared[0]}` "
                                f"in the cdef")
            what = "constant" if key.startswith("enum ") else "field"
            problems += _member_drift(key, expected[1], declared[1], what)
        elif expected != declared:
            problems.append(f"{key}: the header declares `{expected}` but the cdef `{declared}`")
    for name, value in cdef_defines.items():
        if name not in header_defines:
            problems.append(f"#define {name}: named in the cdef but not defined in the header")
        elif value == "...":
            if not _is_integer_constant(header_defines[name], header_defines):
                problems.append(f"#define {name}: the header's value `{header_defines[name]}` "
                                f"is not an integer constant, which `...` needs")
        elif value != header_defines[name]:
            problems.append(f"#define {name}: `{header_defines[name]}` in the header but "
                            f"`{value}` in the cdef")
    return problems


def check_cdef(header_path: str = HEADER, cdef_text: str = CDEF) -> None:
    """Stop the build (SystemExit) when ``cdef_text`` and the header differ."""
    with open(header_path, encoding="utf-8") as fh:
        problems = cdef_drift(fh.read(), cdef_text)
    if problems:
        raise SystemExit(
            f"native/build_ffi.py: the cffi declarations (CDEF) differ from {header_path}; "
            f"make them equal:\n  " + "\n  ".join(problems)
        )


check_cdef()


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
