"""Accuracy-versus-latency validation of exported artifacts against the PyTorch reference.

Typical use::

    from hoi_edge.validate import ValidateConfig, validate

    report = validate(ValidateConfig(reference=Path("model.pt"), artifacts=[Path("ov-int8")],
                                     data=Path("annotations.json"), out=Path("validation")))
    print(report.to_markdown())
    assert report.passed

Every backend runs in its own process over the same images (warm-up excluded from timing);
see :mod:`hoi_edge.validate.memory` for how peak memory is made comparable. Names are
imported lazily, so ``hoi-edge --help`` does not pay for PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MapScores": "accuracy",
    "AgreementStats": "agreement", "ImageAgreement": "agreement", "compare_predictions": "agreement",
    "match_triplets": "agreement",
    "BackendSpec": "backends", "artifact_spec": "backends", "reference_spec": "backends",
    "BenchmarkConfig": "benchmarking", "BenchmarkReport": "benchmarking", "benchmark": "benchmarking",
    "Dataset": "dataset", "load_dataset": "dataset",
    "ValidationError": "errors",
    "LatencyStats": "latency", "StageStats": "latency",
    "BackendRun": "measure", "KeptInstances": "measure", "RunSettings": "measure", "run_backend": "worker",
    "MemoryStats": "memory",
    "BackendReport": "report", "Thresholds": "report", "ValidationReport": "report",
    "render_markdown": "markdown",
    "ValidateConfig": "validator", "validate": "validator", "write_outputs": "validator",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hoi_edge.validate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"hoi_edge.validate.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
