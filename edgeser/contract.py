"""The contract between the export toolchain, the model bundle and every runtime: its constants,
defined once. Standard library only; every other module imports these names.

The native frontend's header defines the same rate (``EDGESER_TARGET_RATE_HZ``); the binding
checks the two agree when it loads.
"""

from __future__ import annotations

# Audio as the models take it.
SAMPLE_RATE_HZ = 16_000
# One model frame: the conv feature extractor's total stride (20 ms). Windows and hops are whole
# frames.
FRAME_SAMPLES = 320
# The conv stack's receptive field (25 ms): shorter audio gives the model no frame at all.
MIN_WINDOW_SAMPLES = 400
# Variance floor of per-window normalisation, as Wav2Vec2FeatureExtractor uses it.
NORM_EPSILON = 1e-7

# The ONNX graph's interface.
OPSET = 17
INPUT_NAME = "input_values"  # float32 [batch, samples], prepared 16 kHz mono
LOGITS_NAME = "logits"  # float32 [batch, n_outputs], raw head outputs
EMBEDDING_NAME = "embedding"  # float32 [batch, hidden], the pooled vector
OUTPUT_NAMES = (LOGITS_NAME, EMBEDDING_NAME)

# What a bundle can be, and what its logits are.
TASKS = ("emotion-dimensional", "emotion-categorical", "emotion-prototypes", "laughter")
LOGITS_KINDS = ("regression", "class-logits", "similarity")

# Normalisation the runtime applies before the graph: per window (Wav2Vec2FeatureExtractor's
# do_normalize) or none (the checkpoint takes raw samples).
NORMALIZATION_MODES = ("per-window", "none")

# Raw PCM sample formats and their size in bytes (live streams, the native converter).
SAMPLE_FORMAT_BYTES = {"u8": 1, "s16": 2, "s24": 3, "s32": 4, "f32": 4, "f64": 8}
SAMPLE_FORMATS = tuple(SAMPLE_FORMAT_BYTES)

# Reduced-precision TensorRT engines a bundle may carry.
ENGINE_PRECISIONS = ("fp16", "int8")
