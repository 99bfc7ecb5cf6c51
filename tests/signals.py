"""Generated test audio."""

from __future__ import annotations

import numpy as np


def speech_like(seconds: float, rate_hz: int = 16000, channels: int = 1, seed: int = 0,
                gap: tuple[float, float] | None = None) -> np.ndarray:
    """A gliding harmonic tone with noise and a syllable-rate envelope, float32; ``gap`` (start,
    end in seconds) is digital silence; several channels are scaled copies."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate_hz))
    t = np.arange(n) / rate_hz
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate_hz
    voiced = sum(np.sin(k * phase) / k for k in (1, 2, 3, 5))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    x = 0.2 * voiced * envelope + 0.02 * rng.standard_normal(n)
    if gap is not None:
        x[int(gap[0] * rate_hz):int(gap[1] * rate_hz)] = 0.0
    if channels > 1:
        x = np.stack([x * (1 - 0.2 * c) for c in range(channels)], axis=1)
    return x.astype(np.float32)
