"""edgeser: speech emotion recognition and laughter detection on edge devices."""

__version__ = "0.1.0"

from edgeser.errors import AudioError, EdgeserError, FrontendError  # noqa: E402

__all__ = ["AudioError", "EdgeserError", "FrontendError", "__version__"]
