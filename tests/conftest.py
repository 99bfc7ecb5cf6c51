"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    """The real recordings (``$EDGESER_TEST_DATA``, default ``../shared/data`` beside the checkout).

    Skips when absent, except under ``CI=true``, where the data is always provisioned and its
    absence fails the test. Use the files in place; never copy them.
    """
    configured = os.environ.get("EDGESER_TEST_DATA")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        reason = (
            f"real test recordings not found at {path} "
            "(set EDGESER_TEST_DATA to the shared data directory)"
        )
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(reason + "; CI=true requires them")
        pytest.skip(reason)
    return path
