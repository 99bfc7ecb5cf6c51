"""edgeser: speech emotion recognition and laughter detection on edge devices."""

from edgeser.errors import (
    AudioError, BundleError, DetectionError, EdgeserError, FrontendError,
)

# Set on first use (see __getattr__); the annotation is for type checkers.
__version__: str

__all__ = ["AudioError", "BundleError", "DetectionError", "DetectionOptions", "Detector",
           "EdgeserError", "FrontendError", "__version__"]


def _read_version() -> str:
    """The installed distribution's version; from a source tree that is not installed, the C
    header's version macros (the one source setup.py builds the distribution's version from)."""
    from importlib import metadata

    try:
        return metadata.version("edgeser")
    except metadata.PackageNotFoundError:
        from edgeser._version import header_version

        try:
            return header_version()
        except OSError:  # neither installed nor a source tree: a copied package folder
            return "0+unknown"


def __getattr__(name: str):
    # Detector pulls in the decoder and the native frontend, and the version importlib.metadata;
    # `import edgeser` stays light.
    if name == "__version__":
        version = globals()["__version__"] = _read_version()
        return version
    if name in ("Detector", "DetectionOptions"):
        from edgeser import detector

        return getattr(detector, name)
    raise AttributeError(f"module 'edgeser' has no attribute {name!r}")
