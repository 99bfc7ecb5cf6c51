"""The export toolchain (installed as ``edgeser.export``; needs the ``export`` extra).

Imported only when an export runs; the runtime never imports it.
"""

from edgeser.export.pipeline import ExportOptions, ExportResult, Progress, export_model

__all__ = ["ExportOptions", "ExportResult", "Progress", "export_model"]
