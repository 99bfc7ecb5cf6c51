"""The version's one source, the header's EDGESER_VERSION_MAJOR/MINOR/PATCH: the parser setup.py
and the runtime fallback share (edgeser/_version.py), and edgeser.__version__."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import edgeser
from edgeser import _version

REPO = Path(__file__).resolve().parent.parent
GOOD = """\
#define EDGESER_API
#define EDGESER_VERSION_MAJOR 2
  #  define EDGESER_VERSION_MINOR 10
#define EDGESER_VERSION_PATCH 0
#if EDGESER_VERSION_MINOR > 99 || EDGESER_VERSION_PATCH > 99
#error "EDGESER_VERSION_NUMBER needs minor and patch below 100"
#endif
#define EDGESER_VERSION_NUMBER \\
    (EDGESER_VERSION_MAJOR * 10000 + EDGESER_VERSION_MINOR * 100 + EDGESER_VERSION_PATCH)
"""


def header(tmp_path: Path, text: str, newline: str = "\n") -> Path:
    path = tmp_path / "frontend.h"
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def test_the_real_header_is_the_package_version():
    assert _version.HEADER == REPO / "native" / "include" / "edgeser" / "frontend.h"
    version = _version.header_version()
    assert version.count(".") == 2 and all(p.isdigit() for p in version.split("."))
    # An editable install records the header's version when it is installed.
    assert edgeser.__version__ == version


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_reads_the_three_lines(tmp_path, newline):
    assert _version.header_version(header(tmp_path, GOOD, newline)) == "2.10.0"


@pytest.mark.parametrize("text, words", [
    ('#define EDGESER_VERSION_STRING "0.1.0"\n', "EDGESER_VERSION_MAJOR, EDGESER_VERSION_MINOR, "
                                                 "EDGESER_VERSION_PATCH"),
    (GOOD.replace("PATCH 0", "PATCH 0u"), "EDGESER_VERSION_PATCH"),
    (GOOD.replace("MINOR 10", "MINOR 010"), "EDGESER_VERSION_MINOR"),  # octal in C
    (GOOD.replace("MAJOR 2", "MAJOR (1 + 1)"), "EDGESER_VERSION_MAJOR"),
    (GOOD.replace("PATCH 0", "PATCH 0 /* patch */"), "EDGESER_VERSION_PATCH"),
    (GOOD + "#define EDGESER_VERSION_MAJOR 3\n", "EDGESER_VERSION_MAJOR is defined more than once"),
])
def test_anything_else_is_a_clear_error(tmp_path, text, words):
    path = header(tmp_path, text)
    with pytest.raises(ValueError) as err:
        _version.header_version(path)
    assert str(path) in str(err.value) and words in str(err.value)


def test_setup_py_runs_the_parser_by_path(tmp_path):
    # What setup.py does: no edgeser import, the header next to the file.
    namespace = runpy.run_path(str(REPO / "edgeser" / "_version.py"))
    assert namespace["header_version"]() == _version.header_version()
    assert namespace["header_version"](header(tmp_path, GOOD)) == "2.10.0"


def test_import_stays_light_and_the_version_is_lazy():
    code = ("import sys, edgeser; light = 'importlib.metadata' not in sys.modules; "
            "v = edgeser.__version__; print(light, v, 'importlib.metadata' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split()
    assert out == ["True", edgeser.__version__, "True"]


def test_not_installed_falls_back_to_the_header(monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert edgeser._read_version() == _version.header_version()
    monkeypatch.setattr(_version.header_version, "__defaults__", (REPO / "no-such-header.h",))
    assert edgeser._read_version() == "0+unknown"
