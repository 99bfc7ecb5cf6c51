"""Which bundle ``detect`` runs: a bundle directory, a checkpoint directory or hub id exported on
first use, or the default model.

A checkpoint (hub id or local directory) without a bundle is exported once into the default bundle
location, asking first on a terminal (``--yes`` for scripts). A prompt never reads from an audio
pipe: when stdin carries audio or is not a terminal, the answer must come from ``--yes``. Without
the export toolchain, or when the export fails (hub unreachable), one sentence gives the exact
``edgeser export`` command to run.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import typer

from edgeser import bundle as bundles
from edgeser.detector import DEFAULT_MODEL_ID, DEFAULT_REVISION, export_command
from edgeser.errors import BundleError, EdgeserError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _locate(model: str | None) -> tuple[str, Path, str | None] | Path:
    """A bundle directory as given, or (model, its default bundle directory, local source)."""
    if model is None:
        return DEFAULT_MODEL_ID, bundles.default_bundle_dir(DEFAULT_MODEL_ID, DEFAULT_REVISION), None
    path = Path(model).expanduser()
    if (path / bundles.MANIFEST).is_file():
        return path
    if path.is_dir() and (path / "config.json").is_file():
        real = path.resolve()
        return str(real), bundles.default_bundle_dir(real.name, "local"), str(real)
    if path.exists():
        raise BundleError(f"{model}: is neither a model bundle (no {bundles.MANIFEST}) nor a "
                          "checkpoint directory (no config.json).")
    if _HUB_ID.match(model) and ".." not in model:
        return model, bundles.default_bundle_dir(model, DEFAULT_REVISION), None
    raise BundleError(f"{model}: no such bundle or checkpoint directory, and not a hub id "
                      "(org/name).")


def resolve(model: str | None, *, yes: bool, may_prompt: bool) -> Path:
    """The bundle directory to run, exporting it first where ``model`` is a checkpoint."""
    located = _locate(model)
    if isinstance(located, Path):
        return located
    name, dest, source = located
    return _bundle_for(name, dest, yes=yes, may_prompt=may_prompt, source=source)


def existing(model: str | None, command: str) -> Path:
    """The bundle ``model`` names (a bundle directory, or a checkpoint or hub id already exported
    to its default place) for commands that never export (``bench``, ``verify``); otherwise one
    sentence with the command that creates it. ``command`` is how the bundle is then passed,
    e.g. ``edgeser verify``."""
    located = _locate(model)
    if isinstance(located, Path):
        return located
    name, dest, source = located
    if (dest / bundles.MANIFEST).is_file() and (source is None or _source_of(dest) == source):
        return dest
    what = "the default model" if model is None else name
    raise BundleError(
        f"no model bundle for {what} at {dest}; create one with `{export_command(name)} --out "
        f"BUNDLE_DIR` (needs pip install 'edgeser[export]'), then run `{command} BUNDLE_DIR`."
    )


def _bundle_for(model: str, dest: Path, *, yes: bool, may_prompt: bool,
                source: str | None) -> Path:
    if (dest / bundles.MANIFEST).is_file():
        if source is not None and _source_of(dest) != source:
            raise BundleError(
                f"{dest} holds a bundle exported from {_source_of(dest)}, not {source}; export "
                f"this checkpoint with `edgeser export --model {source} --out DIR` and pass "
                "--model DIR."
            )
        return dest
    command = export_command(model)
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        raise BundleError(
            f"no model bundle for {model} at {dest}; install the export toolchain "
            f"(pip install 'edgeser[export]') and run `{command}`, or pass --model BUNDLE_DIR."
        )
    if not yes:
        if not may_prompt:
            raise BundleError(
                f"no model bundle for {model} at {dest}; run `{command}` first, or add --yes "
                "to export it now."
            )
        asked = typer.confirm(
            f"No model bundle for {model} yet. Export it to {dest} now (the hub download of a "
            "large model and the export take a few minutes)?", default=True, err=True,
        )
        if not asked:
            raise BundleError(f"no model bundle for {model}; run `{command}` when ready.")
    return _export(model, dest, command)


def _export(model: str, dest: Path, command: str) -> Path:
    from rich.console import Console

    from edgeser.cli._progress import RichProgress
    from edgeser.cli._summary import export_summary
    from edgeser.export import ExportOptions, export_model

    print(f"edgeser: exporting {model} to {dest} (first use)", file=sys.stderr)
    try:
        with RichProgress() as progress:
            result = export_model(ExportOptions(model=model, out=dest), progress)
    except EdgeserError as err:
        reason = str(err).rstrip(".")
        raise BundleError(
            f"exporting {model} failed ({reason}); run `{command}` where the hub is reachable, "
            "or pass --model BUNDLE_DIR."
        ) from None
    export_summary(result, Console(stderr=True))  # stdout carries detection results only
    return result.bundle


def _source_of(dest: Path) -> str | None:
    try:
        return json.loads((dest / bundles.MANIFEST).read_text())["source"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
