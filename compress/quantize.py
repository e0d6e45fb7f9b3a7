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
from typing import Any, Callable, Iterable

import nncf
import numpy as np

from hoi_edge.core.similarity import mean_cosine
from hoi_edge.model.detectors import FAMILIES

UnitSample = tuple[np.ndarray, ...]
DEFAULT_MAX_DROP = 0.01          # accuracy-aware INT8: allowed absolute drop of output cosine similarity

# Node-name patterns kept in floating point, per unit (OpenVINO names carry the PyTorch module path).
# The detector's come from its family (hoi_edge.model.detectors: DETR's class/box heads; NanoDet's GFL
# class/box conv and box-integral MatMul), chosen by QuantizationConfig.detector_family.
SENSITIVE_PATTERNS: dict[str, list[str]] = {
    "detector": list(FAMILIES["detr"].sensitive_layers),
    "clip_image": [r".*ln_post.*"],
    "hoi_head": [r".*decoder\.out_proj.*"],
    # end-to-end network (hoi_edge.model.end_to_end): the CLIP resampling and the text-bank scoring, which the
    # three-unit layout runs in FP32 NumPy, stay FP; plus every unit's own (see QuantizationConfig.ignored_scope)
    "end_to_end": [r".*resample.*", r".*scorer.*", r".*select.*"],
}


@dataclass
class QuantizationConfig:
    subset_size: int = 300
    fast_bias_correction: bool = True
    keep_sensitive_fp: bool = True
    max_drop: float | None = None            # enables accuracy-aware quantization (OpenVINO) when set
    extra_ignored: list[str] = field(default_factory=list)
    detector_family: str = "detr"            # whose sensitive layers the detector unit keeps in FP (set by export)

    def ignored_scope(self, unit: str) -> nncf.IgnoredScope:
        sensitive = list(FAMILIES[self.detector_family].sensitive_layers) if unit == "detector" else \
            SENSITIVE_PATTERNS.get(unit, [])
        if unit == "end_to_end":      # one network holding all three units: each unit's sensitive layers
            sensitive = list(FAMILIES[self.detector_family].sensitive_layers) + \
                [p for u, ps in SENSITIVE_PATTERNS.items() if u != "detector" for p in ps]
        patterns = (sensitive if self.keep_sensitive_fp else []) + self.extra_ignored
        return nncf.IgnoredScope(patterns=patterns, validate=False)

    def describe(self, unit: str, num_samples: int) -> dict[str, Any]:
        """What ``nncf.quantize`` is told for ``unit``; each target adds the method it actually ran."""
        return {"preset": "mixed", "model_type": "transformer", "ignored_patterns": self.ignored_scope(unit).patterns,
                "subset_size": min(self.subset_size, num_samples), "fast_bias_correction": self.fast_bias_correction}


def _dataset(samples: list[Any], to_inputs: Callable[[Any], Any]) -> nncf.Dataset:
    return nncf.Dataset(samples, to_inputs)


def reference_items(model: Any, validation: list[UnitSample]) -> list[tuple[UnitSample, list[np.ndarray]]]:
    """(sample, FP32 outputs) pairs: each validation item carries its own reference.

    NNCF hands ``validation_fn`` subsets of the dataset (single items while ranking layers), so a
    reference looked up by position within what it receives would belong to another sample.
    """
    import openvino as ov

    compiled = ov.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return [(s, [np.asarray(o).copy() for o in compiled(list(s)).values()]) for s in validation]


def similarity_to_reference(compiled: Any, items: Iterable[tuple[UnitSample, list[np.ndarray]]]
                            ) -> tuple[float, list[float]]:
    """NNCF ``validation_fn``: mean cosine similarity to each item's own FP32 reference, and per item."""
    per_item = [mean_cosine(list(compiled(list(sample)).values()), ref) for sample, ref in items]
    return float(np.mean(per_item)), per_item


def quantize_openvino(model: Any, unit: str, samples: list[UnitSample], cfg: QuantizationConfig,
                      validation: list[UnitSample] | None = None) -> Any:
    """INT8 ov.Model from an FP32 ov.Model; accuracy-aware when ``cfg.max_drop`` and ``validation`` are given."""
    return quantize_openvino_with_report(model, unit, samples, cfg, validation)[0]


def quantize_openvino_with_report(model: Any, unit: str, samples: list[UnitSample], cfg: QuantizationConfig,
                                  validation: list[UnitSample] | None = None) -> tuple[Any, dict[str, Any]]:
    """:func:`quantize_openvino`, plus what accuracy control achieved (empty without it).

    NNCF's accuracy-aware search can end without reaching ``max_drop`` (it only logs that), so the
    INT8 model's similarity to FP32 on the validation items is measured again and reported.
    """
    calib = _dataset(samples, list)
    common = dict(subset_size=min(cfg.subset_size, len(samples)), fast_bias_correction=cfg.fast_bias_correction,
                  model_type=nncf.ModelType.TRANSFORMER, ignored_scope=cfg.ignored_scope(unit))
    if cfg.max_drop is None or not validation:
        return nncf.quantize(model, calib, **common), {}
    import openvino as ov

    items = reference_items(model, validation)
    quantized = nncf.quantize_with_accuracy_control(
        model, calib, _dataset(items, lambda item: list(item[0])), similarity_to_reference, max_drop=cfg.max_drop,
        drop_type=nncf.DropType.ABSOLUTE, **common)
    similarity = similarity_to_reference(ov.compile_model(quantized, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}),
                                         items)[0]
    drop = 1.0 - similarity
    return quantized, {"validation_similarity": similarity, "validation_drop": drop,
                       "max_drop_met": bool(drop <= cfg.max_drop)}


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
    return quantize_onnx_with_report(model, unit, samples, cfg)[0]


def quantize_onnx_with_report(model: Any, unit: str, samples: list[UnitSample], cfg: QuantizationConfig
                              ) -> tuple[Any, dict[str, Any]]:
    """:func:`quantize_onnx`, plus how many Gemm biases became int32.

    NNCF leaves Gemm biases in float, and ONNX Runtime then keeps those layers as float Gemms fed by a
    DequantizeLinear of the weight (slower than FP32); int32 biases let it fuse them into QGemm
    (see :mod:`compress.onnx_qdq`).
    """
    from compress.onnx_qdq import ignored_node_names, quantize_gemm_biases

    folded = fold_constants(model)
    # the layer patterns name torch modules (OpenVINO keeps them in node names); ONNX nodes are matched by the
    # module path the exporter recorded, so the same layers stay in floating point on both targets
    ignored = ignored_node_names(model, folded, cfg.ignored_scope(unit).patterns)
    names = [i.name for i in folded.graph.input]
    calib = _dataset(samples, lambda s: dict(zip(names, s)))
    quantized = nncf.quantize(folded, calib, subset_size=min(cfg.subset_size, len(samples)),
                              fast_bias_correction=cfg.fast_bias_correction, model_type=nncf.ModelType.TRANSFORMER,
                              ignored_scope=nncf.IgnoredScope(names=ignored, validate=False))
    quantized, biases = quantize_gemm_biases(quantized)
    return quantized, {"int32_gemm_biases": biases, "ignored_nodes": len(ignored)}
