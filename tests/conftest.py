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


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory):
    """Bundles exported from tiny generated checkpoints, by kind, made on first use:
    ``dimensional`` (audeering layout, head fitted so outputs vary with the audio),
    ``dimensional-int8`` (the same, blockwise INT8: a fixed recipe, as the default choice
    depends on this machine's timing), ``categorical`` (4 emotions),
    ``laughter`` (two classes, operating points ``default`` 0.5 and ``high-precision`` 0.9) and
    ``prototypes`` (embedding model with prototypes of tones and noise)."""
    pytest.importorskip("torch", reason="the export toolchain is not installed "
                        "(pip install 'edgeser[export]')")
    import checkpoints
    from edgeser.export import ExportOptions, export_model

    root = tmp_path_factory.mktemp("tiny-bundles")
    made: dict[str, Path] = {}

    def clips() -> Path:
        import numpy as np
        import soundfile as sf

        folder = root / "clips"
        folder.mkdir(exist_ok=True)
        rng = np.random.default_rng(3)
        rows = []
        for k in range(2):
            t = np.arange(32000) / 16000
            sf.write(folder / f"tone{k}.wav", 0.3 * np.sin(2 * np.pi * (220 + 110 * k) * t),
                     16000)
            sf.write(folder / f"noise{k}.wav", 0.1 * rng.standard_normal(32000), 16000)
            rows += [f"tone{k}.wav,tone", f"noise{k}.wav,noise"]
        (folder / "clips.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
        return folder / "clips.csv"

    def get(kind: str) -> Path:
        if kind in made:
            return made[kind]
        ckpt = root / f"ckpt-{kind}"
        options: dict = {"quantize": "none", "eval_windows": 8}
        if kind in ("dimensional", "dimensional-int8"):
            checkpoints.audeering_trained_like(ckpt)
            if kind == "dimensional-int8":
                options["quantize"] = "int8"
                options["recipe"] = "blockwise-int8"
                options["eval_windows"] = 24
        elif kind == "categorical":
            checkpoints.sequence_classifier(ckpt, ["angry", "happy", "neutral", "sad"])
        elif kind == "laughter":
            checkpoints.sequence_classifier(ckpt, ["other", "laughter"], seed=5)
            options["operating_points"] = (("high-precision", 0.9),)
        elif kind == "prototypes":
            checkpoints.embedding_model(ckpt)
            options["prototypes"] = clips()
        else:  # pragma: no cover - a typo in a test
            raise KeyError(kind)
        out = root / kind
        export_model(ExportOptions(model=str(ckpt), out=out, **options))
        made[kind] = out
        return out

    return get


@pytest.fixture(autouse=True, scope="session")
def _edgeser_home(tmp_path_factory):
    """Stamps and default bundles never touch the user's cache."""
    home = tmp_path_factory.mktemp("edgeser-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGESER_HOME", str(home))
        yield home
