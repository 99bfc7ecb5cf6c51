"""edgeser: speech emotion recognition and laughter detection on edge devices."""

__version__ = "0.1.0"

from edgeser.errors import (  # noqa: E402
    AudioError, BundleError, DetectionError, EdgeserError, FrontendError,
)

__all__ = ["AudioError", "BundleError", "DetectionError", "DetectionOptions", "Detector",
           "EdgeserError", "FrontendError", "__version__"]


def __getattr__(name: str):
    # Detector pulls in the decoder and the native frontend; `import edgeser` stays light.
    if name in ("Detector", "DetectionOptions"):
        from edgeser import detector

        return getattr(detector, name)
    raise AttributeError(f"module 'edgeser' has no attribute {name!r}")
