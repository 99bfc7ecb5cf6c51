"""Exception types. Each layer raises one type; all derive from EdgeserError so a caller (and the
CLI) can turn any of them into one sentence and exit code 1."""


class EdgeserError(Exception):
    """Base of every error edgeser raises on purpose. ``str(err)`` is one sentence for a user."""


class AudioError(EdgeserError):
    """An audio file or stream that cannot be decoded or fails validation; names the source."""


class FrontendError(EdgeserError, ValueError):
    """Invalid arguments or data for the signal frontend (rates, lengths, NaN/Inf)."""


class ExportError(EdgeserError):
    """A checkpoint that cannot be exported faithfully: unreachable, unsafe, unknown or mismatched."""


class BundleError(EdgeserError):
    """A model bundle that is missing, malformed, tampered with or cannot be published; names the
    bundle directory and the problem(s)."""


class DetectionError(EdgeserError):
    """Detection asked to do something it cannot: unknown operating point, a stream used from two
    threads at once or after it was closed, chunks of the wrong shape."""


class DeviceError(EdgeserError):
    """A device profile that cannot run here: unknown name, missing ONNX Runtime provider, no
    Jetson where one was asked for."""


class EvaluationError(EdgeserError):
    """An evaluation that cannot run as asked: unreadable labels, unknown perturbations, models
    that cannot be compared, an operating-point rule no threshold meets."""
