"""What ``detect`` writes beside its results: ``--embeddings FILE`` (every scored window's pooled
embedding, for users' own classifiers) and ``--plot FILE.png`` (one input's waveform, scores over
time and laughter events). Both are checked before any audio is read and written atomically
after the run."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import typer

from edgeser.cli._inputs import Input
from edgeser.errors import EdgeserError


@dataclass
class DetectExtras:
    embeddings: Path | None = None
    plot: Path | None = None
    _table: object = None
    _plotted: list = field(default_factory=list)

    @classmethod
    def check(cls, embeddings: Path | None, plot: Path | None, found: list[Input], *,
              stream: bool, engine: str) -> "DetectExtras":
        given = [name for name, value in (("--embeddings", embeddings), ("--plot", plot))
                 if value is not None]
        if not given:
            return cls()
        if stream or engine != "local":
            raise typer.BadParameter(f"{' and '.join(given)} work on files in this process, not "
                                     "with --stream or --engine ray.")
        if plot is not None:
            if len(found) != 1 or found[0].path is None:
                raise typer.BadParameter("--plot draws one input: give one audio file.",
                                         param_hint="--plot")
            if plot.suffix.lower() != ".png":
                raise typer.BadParameter(f"{plot} must be a .png file.", param_hint="--plot")
        try:
            if plot is not None:
                from edgeser.evaluation.plots import require

                require()
            table = None
            if embeddings is not None:
                from edgeser.evaluation.embeddings import EmbeddingTable, check_destination

                check_destination(embeddings)
                table = EmbeddingTable()
        except EdgeserError as err:
            print(f"edgeser: {err}", file=sys.stderr)
            raise typer.Exit(1)
        return cls(embeddings, plot, table)

    @property
    def wants_embeddings(self) -> bool:
        return self.embeddings is not None

    def add(self, item: Input, result) -> None:
        """Called with each input's DetectionResult."""
        if self._table is not None:
            self._table.add(result)
        if self.plot is not None:
            self._plotted.append((item, result))

    def finish(self) -> list[str]:
        """Write what was asked; the names of what could not be written."""
        failures = []
        if self._table is not None:
            try:
                self._table.write(self.embeddings)
            except (EdgeserError, OSError) as err:
                print(f"edgeser: cannot write {self.embeddings}: {err}", file=sys.stderr)
                failures.append(str(self.embeddings))
        for item, result in self._plotted:
            try:
                from edgeser import audio
                from edgeser.evaluation.plots import detection_figure

                samples, info = audio.read_mono(item.path)
                detection_figure(result, samples, info.rate_hz, self.plot)
            except (EdgeserError, OSError) as err:
                print(f"edgeser: cannot draw {self.plot}: {err}", file=sys.stderr)
                failures.append(str(self.plot))
        return failures
