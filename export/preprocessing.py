"""What the checkpoint's own feature extractor does to audio before the model sees it, read from
its ``preprocessor_config.json`` (plain JSON; no feature-extractor class is instantiated).

Wav2Vec2FeatureExtractor either normalises each utterance (``do_normalize: true``, the default
and what the emotion checkpoints use) or passes raw samples. The bundle records which, the
runtime does the same per window, and the export feeds PyTorch exactly that in its parity check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeser import frontend as fe
from edgeser.errors import ExportError
from edgeser.export.checkpoint import read_json_object

CONFIG_FILE = "preprocessor_config.json"


@dataclass(frozen=True)
class Preprocessing:
    do_normalize: bool
    origin: str  # where the setting came from, for the manifest

    @property
    def normalization_mode(self) -> str:
        """The bundle's normalisation mode for this setting."""
        return "per-window" if self.do_normalize else "none"

    def window(self, samples_16k: np.ndarray) -> np.ndarray:
        """One window as the model is fed it: normalised, or the raw float32 samples."""
        if self.do_normalize:
            return fe.normalize(samples_16k)
        return np.ascontiguousarray(samples_16k, np.float32)


def read(directory: Path, label: str) -> Preprocessing:
    """The checkpoint's preprocessing; without the file, the feature extractor's defaults."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return Preprocessing(True, f"no {CONFIG_FILE}: Wav2Vec2FeatureExtractor's default")
    config = read_json_object(path, label)
    problems = []
    rate = config.get("sampling_rate", fe.TARGET_RATE_HZ)
    if rate != fe.TARGET_RATE_HZ:
        problems.append(f"sampling_rate is {rate!r}, but these models take {fe.TARGET_RATE_HZ} Hz")
    if config.get("feature_size", 1) != 1:
        problems.append(f"feature_size is {config.get('feature_size')!r}, not 1 (raw samples)")
    do_normalize = config.get("do_normalize", True)
    if not isinstance(do_normalize, bool):
        problems.append(f"do_normalize is {do_normalize!r}, not true or false")
    if problems:
        raise ExportError(f"{label}: {CONFIG_FILE}: {'; '.join(problems)}.")
    return Preprocessing(do_normalize, f"{CONFIG_FILE}: do_normalize={str(do_normalize).lower()}")
