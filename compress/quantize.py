"""NNCF post-training INT8 quantization of the export units (OpenVINO IR and ONNX graphs).

Sensitive layers stay in floating point: DETR's class/box heads and the HOI
decoder's final projection into CLIP space (they set scores and box
coordinates directly), and — through NNCF's transformer model type — softmax
and layer norms. With a validation set, NNCF's accuracy-aware quantization
reverts layers to FP until the unit's output similarity to the FP32 reference
drops by at most ``max_drop``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import nncf
import numpy as np

UnitSample = tuple[np.ndarray, ...]

# Node-name patterns kept in floating point, per unit (OpenVINO names carry the PyTorch module path).
SENSITIVE_PATTERNS: dict[str, list[str]] = {
    "detector": [r".*class_embed.*", r".*bbox_embed.*"],
    "clip_image": [r".*ln_post.*"],
    "hoi_head": [r".*decoder\.out_proj.*"],
}


@dataclass
class QuantizationConfig:
    subset_size: int = 300
    fast_bias_correction: bool = True
    keep_sensitive_fp: bool = True
    max_drop: float | None = None            # enables accuracy-aware quantization (OpenVINO) when set
    extra_ignored: list[str] = field(default_factory=list)

    def ignored_scope(self, unit: str) -> nncf.IgnoredScope:
        patterns = (SENSITIVE_PATTERNS.get(unit, []) if self.keep_sensitive_fp else []) + self.extra_ignored
        return nncf.IgnoredScope(patterns=patterns, validate=False)

    def describe(self, unit: str) -> dict[str, Any]:
        return {"method": "nncf.quantize" if self.max_drop is None else "nncf.quantize_with_accuracy_control",
                "preset": "mixed", "model_type": "transformer", "ignored_patterns": self.ignored_scope(unit).patterns,
                "max_drop": self.max_drop}


def _dataset(samples: list[UnitSample], to_inputs: Callable[[UnitSample], Any]) -> nncf.Dataset:
    return nncf.Dataset(samples, to_inputs)


def quantize_openvino(model: Any, unit: str, samples: list[UnitSample], cfg: QuantizationConfig,
                      validation: list[UnitSample] | None = None) -> Any:
    """INT8 ov.Model from an FP32 ov.Model; accuracy-aware when ``cfg.max_drop`` and ``validation`` are given."""
    calib = _dataset(samples, list)
    common = dict(subset_size=min(cfg.subset_size, len(samples)), fast_bias_correction=cfg.fast_bias_correction,
                  model_type=nncf.ModelType.TRANSFORMER, ignored_scope=cfg.ignored_scope(unit))
    if cfg.max_drop is None or not validation:
        return nncf.quantize(model, calib, **common)
    import openvino as ov

    reference = ov.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    expected = [[np.asarray(o) for o in reference(list(s)).values()] for s in validation]

    def similarity(compiled: Any, data: Any) -> float:
        """Mean cosine similarity of every output to the FP32 reference (1.0 = identical)."""
        sims = []
        for sample, ref in zip(data, expected):
            outs = list(compiled(list(sample)).values())
            for o, r in zip(outs, ref):
                a, b = np.asarray(o).ravel(), r.ravel()
                sims.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
        return float(np.mean(sims))

    return nncf.quantize_with_accuracy_control(
        model, calib, _dataset(validation, lambda s: s), similarity, max_drop=cfg.max_drop,
        drop_type=nncf.DropType.ABSOLUTE, **common)


def fold_constants(model: Any) -> Any:
    """The ONNX model after ONNX Runtime's basic (standard-op only) graph optimisations.

    torch's dynamo exporter leaves large attention weights behind Split/Transpose nodes (its own
    folder skips them), where NNCF does not recognise them as weights and SmoothQuant fails; ORT's
    constant folding turns them back into initializers.
    """
    import tempfile
    from pathlib import Path

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath)


def quantize_onnx(model: Any, unit: str, samples: list[UnitSample], cfg: QuantizationConfig) -> Any:
    """INT8 onnx.ModelProto (QDQ) from an FP32 one."""
    model = fold_constants(model)
    names = [i.name for i in model.graph.input]
    calib = _dataset(samples, lambda s: dict(zip(names, s)))
    return nncf.quantize(model, calib, subset_size=min(cfg.subset_size, len(samples)),
                         fast_bias_correction=cfg.fast_bias_correction, model_type=nncf.ModelType.TRANSFORMER,
                         ignored_scope=cfg.ignored_scope(unit))
