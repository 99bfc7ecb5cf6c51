"""The compiled frontend's version check: the real module agrees with the package and the header,
and a module from another build is refused at import with one sentence that says how to fix it.
Likewise its rate: the header's EDGESER_TARGET_RATE_HZ must be edgeser.contract.SAMPLE_RATE_HZ."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from edgeser.frontend import _binding

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "native/include/edgeser/frontend.h"


def _header_version() -> tuple[int, int, int]:
    text = HEADER.read_text()
    return tuple(
        int(re.search(rf"^#define EDGESER_VERSION_{part} (\d+)$", text, re.MULTILINE).group(1))
        for part in ("MAJOR", "MINOR", "PATCH")
    )


def _compiled(lib) -> tuple[int, int, int]:
    return (lib.EDGESER_VERSION_MAJOR, lib.EDGESER_VERSION_MINOR, lib.EDGESER_VERSION_PATCH)


def test_real_module_passes_and_agrees_with_the_header():
    if not _binding.NATIVE:
        pytest.skip("edgeser._native is not built")
    lib, ffi = _binding.lib, _binding.ffi
    compiled = _compiled(lib)
    assert compiled == _header_version()
    major, minor, patch = compiled
    assert lib.edgeser_version_number() == major * 10000 + minor * 100 + patch
    assert ffi.string(lib.edgeser_version()).decode() == f"{major}.{minor}.{patch}"
    expected = _binding.expected_version()
    assert expected[0] == f"{major}.{minor}.{patch}"  # the package is the build it ships
    _binding.check_version(compiled, expected)  # what the import did; must not raise


def test_a_mismatch_is_one_sentence_naming_both_versions_and_the_fix():
    with pytest.raises(ImportError) as info:
        _binding.check_version((0, 1, 0), ("0.2.0", "the installed edgeser package"))
    message = str(info.value)
    assert "0.1.0" in message and "0.2.0" in message
    assert "pip install --force-reinstall --no-deps edgeser" in message
    assert "rebuild" in message
    prose = re.sub(r"`[^`]*`", "", message)  # commands may hold dots
    assert "\n" not in message and not re.search(r"[.;!?]\s", prose)  # one sentence


@pytest.mark.parametrize("compiled", [(1, 1, 0), (0, 2, 0), (0, 1, 1)])
def test_every_part_of_the_version_counts(compiled):
    with pytest.raises(ImportError, match="different builds"):
        _binding.check_version(compiled, ("0.1.0", "the installed edgeser package"))


@pytest.mark.parametrize("expected", [None, ("0+unknown", "the installed edgeser package")])
def test_no_usable_expectation_is_not_checked(expected):
    _binding.check_version((0, 1, 0), expected)


def test_a_local_version_label_is_ignored():
    _binding.check_version((0, 1, 0), ("0.1.0+local", "the installed edgeser package"))


def test_expectation_is_the_installed_distribution_first(monkeypatch):
    monkeypatch.setattr(metadata, "version", lambda name: "7.8.9")
    assert _binding.expected_version() == ("7.8.9", "the installed edgeser package")


def test_expectation_falls_back_to_the_source_tree_header(monkeypatch, tmp_path):
    import edgeser._version

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    version, source = _binding.expected_version()
    assert version == ".".join(str(part) for part in _header_version())
    assert "frontend.h" in source

    # Neither installed nor a source tree (a copied package folder): nothing to check against.
    monkeypatch.setattr(edgeser._version, "HEADER", tmp_path / "missing.h")
    assert _binding.expected_version() is None


def test_import_refuses_a_module_from_another_build():
    if not _binding.NATIVE:
        pytest.skip("edgeser._native is not built")
    code = (
        "import importlib.metadata as m; m.version = lambda name: '99.0.0'\n"
        "import edgeser.frontend"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode != 0
    assert "ImportError: the compiled frontend edgeser._native is version" in run.stderr
    assert "99.0.0" in run.stderr


# ------------------------------------------------------------------ the rate against the contract


def test_real_module_rate_is_the_contracts():
    if not _binding.NATIVE:
        pytest.skip("edgeser._native is not built")
    from edgeser import contract

    assert _binding.lib.EDGESER_TARGET_RATE_HZ == contract.SAMPLE_RATE_HZ
    header_rate = re.search(r"^#define EDGESER_TARGET_RATE_HZ (\d+)u$", HEADER.read_text(),
                            re.MULTILINE)
    assert int(header_rate.group(1)) == contract.SAMPLE_RATE_HZ
    _binding.check_target_rate(_binding.lib.EDGESER_TARGET_RATE_HZ, contract.SAMPLE_RATE_HZ)


def test_a_rate_mismatch_is_one_sentence_naming_both_rates():
    with pytest.raises(ImportError) as info:
        _binding.check_target_rate(16000, 22050)
    message = str(info.value)
    assert "16000 Hz" in message and "22050 Hz" in message
    assert "EDGESER_TARGET_RATE_HZ" in message and "SAMPLE_RATE_HZ" in message
    prose = re.sub(r"`[^`]*`", "", message)
    assert "\n" not in message and not re.search(r"[.;!?]\s", prose)  # one sentence


def test_import_refuses_a_header_rate_other_than_the_contracts():
    if not _binding.NATIVE:
        pytest.skip("edgeser._native is not built")
    code = "import edgeser.contract as c; c.SAMPLE_RATE_HZ = 22050\nimport edgeser.frontend"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode != 0
    assert "ImportError: the compiled frontend edgeser._native resamples to 16000 Hz" in run.stderr
    assert "22050 Hz" in run.stderr
