"""Export targets, one module per runtime, all following :mod:`targets.contract`."""

from targets.export import ExportConfig, export_artifact

__all__ = ["ExportConfig", "export_artifact"]
