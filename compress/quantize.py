"""NNCF post-training INT8 quantization of the export units (OpenVINO IR and ONNX graphs), and the recipe
every target's INT8 shares.

The recipe (:class:`QuantizationConfig`), per unit:

- **model type**: the detector as its family says (:mod:`hoi_edge.model.detectors`: NanoDet is a CNN,
  quantized with NNCF's default CNN rules; DETR with the transformer rules), CLIP and the HOI head as
  transformers (softmax and layer norms stay FP);
- **preset MIXED** (symmetric weights, asymmetric activations), said explicitly;
- **bias correction**: the full BiasCorrection (``fast_bias_correction=False``) for CNN units, as OpenVINO's
  YOLO/NanoDet INT8 notebooks do; the fast one for transformer units (the full one re-runs every layer of a
  ViT per statistic: minutes for a gain the CNN recipe measured only for convolutions);
- **OverflowFix for the CPU the artifact will run on** (``target_cpu``, measured per unit by
  :func:`choose_overflow_fix`): on CPUs without VNNI (AVX2, AVX-512 without VNNI) u8 x s8 pair sums saturate
  int16, so an INT8 network can compute something else there than on the VNNI CPU that exported it. ``any``
  (default) starts from NNCF's recommendation for such CPUs (7-bit weights in the first convolution,
  ``OverflowFix.FIRST_LAYER``), runs the unit with AVX2's INT8 kernels (emulated on a VNNI CPU) and with the
  native ones, and quantizes every weight to 7 bits (``OverflowFix.ENABLE``, which costs accuracy) only for a
  unit whose outputs differ (cosine < 0.999); ``vnni`` keeps full 8-bit weights (``OverflowFix.DISABLE``)
  for artifacts that only run on CPUs with VNNI or AMX (or on ARM);
- **sensitive layers in FP**: DETR's class/box heads, NanoDet's GFL class/box conv and its whole box decoding,
  the HOI decoder's final projection into CLIP space, CLIP's last layer norm (they set scores and box
  coordinates directly). The same patterns drive ExecuTorch's XNNPACK quantizer (by module name) and NNCF's
  ignored scope (by node name), so one list serves every target.

With a validation set, accuracy-aware quantization reverts layers to FP until each unit's *task metric*
(:mod:`compress.task_metrics`: box AP50 against FP32 for the detector, pair-score agreement for the HOI head,
output cosine for CLIP) drops by at most ``max_drop``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import nncf
import numpy as np
from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

from hoi_edge.core.similarity import mean_cosine
from hoi_edge.model.detectors import FAMILIES

UnitSample = tuple[np.ndarray, ...]
DEFAULT_MAX_DROP = 0.01          # accuracy-aware INT8: allowed absolute drop of the unit's task metric

# Node-name patterns kept in floating point, per unit (OpenVINO names carry the PyTorch module path; ONNX nodes
# are matched through the module path the exporter recorded, ExecuTorch's quantizer by module name).
# The detector's come from its family (hoi_edge.model.detectors: DETR's class/box heads; NanoDet's GFL
# class/box conv and its box decoding), chosen by QuantizationConfig.detector_family.
SENSITIVE_PATTERNS: dict[str, list[str]] = {
    "detector": list(FAMILIES["detr"].sensitive_layers),
    "clip_image": [r".*ln_post.*"],
    "hoi_head": [r".*decoder\.out_proj.*", r".*interactor\.geometry.*"],
    # end-to-end network (hoi_edge.model.end_to_end): the CLIP resampling and the text-bank scoring, which the
    # three-unit layout runs in FP32 NumPy, stay FP; plus every unit's own (see QuantizationConfig.ignored_scope)
    "end_to_end": [r".*resample.*", r".*scorer.*", r".*select.*"],
}

#: ``--int8-cpu``: the CPUs an INT8 artifact must compute correctly on -> NNCF's OverflowFix to start from
#: (:func:`choose_overflow_fix` moves ``any`` to ``ENABLE`` for a unit that saturates on AVX2).
TARGET_CPUS: dict[str, OverflowFix] = {
    "any": OverflowFix.FIRST_LAYER,  # NNCF's recommendation for AVX2 / AVX-512 without VNNI; checked per unit
    "vnni": OverflowFix.DISABLE,     # full 8-bit weights: VNNI / AMX (and ARM) only
}


@dataclass
class QuantizationConfig:
    subset_size: int = 300
    fast_bias_correction: bool | None = None  # None: the unit's recipe (CNN: full bias correction, else fast)
    keep_sensitive_fp: bool = True
    max_drop: float | None = None            # enables accuracy-aware quantization when set (with a validation set)
    extra_ignored: list[str] = field(default_factory=list)
    detector_family: str = "detr"            # whose sensitive layers the detector unit keeps in FP (set by export)
    target_cpu: str = "any"                  # TARGET_CPUS key: which CPUs the artifact must be right on
    overflow_fix_override: str | None = None # set per unit by choose_overflow_fix (an OverflowFix value)

    def __post_init__(self) -> None:
        if self.target_cpu not in TARGET_CPUS:
            raise ValueError(f"target_cpu must be one of {sorted(TARGET_CPUS)}, not {self.target_cpu!r}")

    def ignored_scope(self, unit: str) -> nncf.IgnoredScope:
        sensitive = list(FAMILIES[self.detector_family].sensitive_layers) if unit == "detector" else \
            SENSITIVE_PATTERNS.get(unit, [])
        if unit == "end_to_end":      # one network holding all three units: each unit's sensitive layers
            sensitive = list(FAMILIES[self.detector_family].sensitive_layers) + \
                [p for u, ps in SENSITIVE_PATTERNS.items() if u != "detector" for p in ps]
        patterns = (sensitive if self.keep_sensitive_fp else []) + self.extra_ignored
        return nncf.IgnoredScope(patterns=patterns, validate=False)

    def torch_ignored_scope(self, unit: str) -> nncf.IgnoredScope:
        """:meth:`ignored_scope` for NNCF's torch backend, whose node names separate the module path with '/'
        (``decoder/out_proj/linear/0``) where OpenVINO's use '.' (``__module.decoder.out_proj/aten::linear``)."""
        patterns = [p.replace(r"\.", r"[./]") for p in self.ignored_scope(unit).patterns]
        return nncf.IgnoredScope(patterns=patterns, validate=False)

    def model_type(self, unit: str) -> nncf.ModelType | None:
        """NNCF's model type of ``unit``: None (CNN rules) for a CNN detector family, else transformer."""
        if unit == "detector" and FAMILIES[self.detector_family].int8_model_type == "cnn":
            return None
        return nncf.ModelType.TRANSFORMER

    def uses_fast_bias_correction(self, unit: str) -> bool:
        if self.fast_bias_correction is not None:
            return self.fast_bias_correction
        return self.model_type(unit) is not None          # CNN units: the full (slower, more accurate) one

    @property
    def overflow_fix(self) -> OverflowFix:
        if self.overflow_fix_override is not None:
            return OverflowFix(self.overflow_fix_override)
        return TARGET_CPUS[self.target_cpu]

    def advanced(self, **extra: Any) -> AdvancedQuantizationParameters:
        return AdvancedQuantizationParameters(overflow_fix=self.overflow_fix, **extra)

    def nncf_arguments(self, unit: str, num_samples: int, accuracy_control: bool = False) -> dict[str, Any]:
        """The keyword arguments NNCF's ``quantize`` (or ``quantize_with_accuracy_control``) gets for ``unit``."""
        advanced = "advanced_quantization_parameters" if accuracy_control else "advanced_parameters"
        return {"subset_size": min(self.subset_size, num_samples), "preset": nncf.QuantizationPreset.MIXED,
                "model_type": self.model_type(unit), "fast_bias_correction": self.uses_fast_bias_correction(unit),
                "ignored_scope": self.ignored_scope(unit), advanced: self.advanced()}

    def describe(self, unit: str, num_samples: int) -> dict[str, Any]:
        """What ``nncf.quantize`` is told for ``unit``; each target adds the method it actually ran."""
        model_type = self.model_type(unit)
        return {"preset": "mixed", "model_type": "cnn" if model_type is None else model_type.value,
                "ignored_patterns": self.ignored_scope(unit).patterns,
                "subset_size": min(self.subset_size, num_samples),
                "fast_bias_correction": self.uses_fast_bias_correction(unit),
                "target_cpu": self.target_cpu, "overflow_fix": self.overflow_fix.value}


def choose_overflow_fix(module: Any, example: tuple, unit: str, samples: list[UnitSample], cfg: QuantizationConfig,
                        checks: int = 3) -> tuple[QuantizationConfig, dict[str, Any]]:
    """``cfg`` with the OverflowFix ``unit`` needs on the CPUs ``cfg.target_cpu`` names, and what was measured.

    For ``any`` on a CPU with VNNI: a probe INT8 of the unit (OpenVINO, the recipe's OverflowFix, fast bias
    correction) runs on ``checks`` calibration samples with the native INT8 kernels and with AVX2's (oneDNN
    honours ``ONEDNN_MAX_CPU_ISA`` inside OpenVINO's CPU plugin); if any output's cosine between the two is below
    :data:`compress.equality.MATCH_COSINE`, the unit saturates int16 somewhere on AVX2 and gets 7-bit weights
    everywhere (``ENABLE``). ONNX Runtime's x86 INT8 kernels without VNNI sum u8 x s8 pairs the same way, so the
    ONNX target uses the same decision. On a CPU without VNNI the probe cannot emulate (it runs the AVX2 kernels
    itself): there the unit's INT8 kernels are compared with the quantized model's own arithmetic written out in
    f32 (:func:`compress.equality.fake_quant_reference`), which shows the saturation directly.
    """
    import dataclasses

    import openvino as ov

    from compress.equality import MATCH_COSINE, openvino_emulated_check
    from hoi_edge.core.cpu import cpu_info

    if cfg.target_cpu != "any" or cfg.overflow_fix_override is not None:
        return cfg, {}
    model = ov.convert_model(module, example_input=example)
    args = {**cfg.nncf_arguments(unit, len(samples)), "fast_bias_correction": True}
    probe = nncf.quantize(model, _dataset(samples, list), **args)
    used = list(samples)[:checks]

    def outputs(m: Any) -> list[list[np.ndarray]]:
        compiled = ov.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return [[np.asarray(o) for o in compiled(list(s)).values()] for s in used]

    native = outputs(probe)
    names = [f"output{i}" for i in range(len(native[0]))]
    if cpu_info().vnni:      # this CPU does not saturate: run AVX2's kernels against its own
        avx2 = openvino_emulated_check(probe, used, native, names)
        if isinstance(avx2, str):
            print(f"hoi-edge: WARNING {unit}: {avx2}; keeping OverflowFix {cfg.overflow_fix.value}", file=sys.stderr)
            return cfg, {"avx2_check": avx2}
    else:                    # this CPU is one that saturates: its kernels against what the INT8 model means
        from compress.equality import check_equality, fake_quant_reference

        exact = outputs(fake_quant_reference(probe))
        avx2 = check_equality(lambda s: exact[_index(used, s)], lambda s: native[_index(used, s)], used, names,
                              "openvino CPU INT8 kernels vs the model's FakeQuantize arithmetic in f32")
    record = {"avx2_vs_native_cosine": avx2.worst, "avx2_check": avx2.runtime}
    if avx2.worst >= MATCH_COSINE:
        return cfg, record
    return dataclasses.replace(cfg, overflow_fix_override=OverflowFix.ENABLE.value), \
        {**record, "overflow_fix_reason": f"INT8 kernels without VNNI saturate (cosine {avx2.worst:.4f})"}


def _index(samples: list, sample: Any) -> int:
    return next(i for i, s in enumerate(samples) if s is sample)


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
                                  validation: list[UnitSample] | None = None, metric: Any = None
                                  ) -> tuple[Any, dict[str, Any]]:
    """:func:`quantize_openvino`, plus what accuracy control achieved (empty without it).

    ``metric`` is the unit's task metric (:mod:`compress.task_metrics`; default: output cosine). NNCF's
    accuracy-aware search can end without reaching ``max_drop`` (it only logs that), so the INT8 model's
    metric on the validation items is measured again and reported next to the FP32 model's.
    """
    calib = _dataset(samples, list)
    if cfg.max_drop is None or not validation:
        return nncf.quantize(model, calib, **cfg.nncf_arguments(unit, len(samples))), {}
    import openvino as ov

    from compress.task_metrics import metric_for

    metric = metric_for(unit, metric)
    items = reference_items(model, validation)
    validation_fn = metric.validation_fn(lambda compiled, sample: list(compiled(list(sample)).values()))
    quantized = nncf.quantize_with_accuracy_control(
        model, calib, _dataset(items, lambda item: list(item[0])), validation_fn, max_drop=cfg.max_drop,
        drop_type=nncf.DropType.ABSOLUTE, **cfg.nncf_arguments(unit, len(samples), accuracy_control=True))
    reached = validation_fn(ov.compile_model(quantized, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), items)[0]
    return quantized, metric.report(reached, cfg.max_drop)


def fold_constants(model: Any) -> Any:
    """The ONNX model after ONNX Runtime's basic (standard-op only) graph optimisations.

    torch's dynamo exporter leaves large attention weights behind Split/Transpose nodes (its own
    folder skips them), where NNCF does not recognise them as weights and SmoothQuant fails; ORT's
    constant folding turns them back into initializers.
    """
    import tempfile
    from pathlib import Path

    import onnx

    from compress.onnx_qdq import cpu_session

    with tempfile.TemporaryDirectory() as tmp:
        cpu_session(model, "basic", Path(tmp) / "folded.onnx")
        return onnx.load(str(Path(tmp) / "folded.onnx"))


def quantize_onnx(model: Any, unit: str, samples: list[UnitSample], cfg: QuantizationConfig) -> Any:
    """INT8 onnx.ModelProto (QDQ) from an FP32 one."""
    return quantize_onnx_with_report(model, unit, samples, cfg)[0]


class _Sessions:
    """ONNX Runtime sessions of the models NNCF's accuracy control hands ``validation_fn`` (one ModelProto at a
    time, the same one many times while ranking): the last one is kept instead of re-created per call."""

    def __init__(self) -> None:
        self._model: Any = None
        self._session: Any = None

    def run(self, model: Any, sample: UnitSample) -> list[np.ndarray]:
        from compress.onnx_qdq import cpu_session

        if model is not self._model:
            self._session = cpu_session(model)
            self._model = model
        names = [i.name for i in self._session.get_inputs()]
        return self._session.run(None, dict(zip(names, sample)))


def quantize_onnx_with_report(model: Any, unit: str, samples: list[UnitSample], cfg: QuantizationConfig,
                              validation: list[UnitSample] | None = None, metric: Any = None
                              ) -> tuple[Any, dict[str, Any]]:
    """:func:`quantize_onnx`, plus what :func:`compress.onnx_qdq.make_fusable` rewrote (int32 biases, uint8
    activations, requantized concatenations: what lets ONNX Runtime fuse QGemm / QLinearConv) and, with
    ``cfg.max_drop`` and ``validation``, what NNCF's accuracy control reached on the unit's task ``metric``.
    """
    from compress.onnx_qdq import ignored_node_names, make_fusable

    folded = fold_constants(model)
    # the layer patterns name torch modules (OpenVINO keeps them in node names); ONNX nodes are matched by the
    # module path the exporter recorded, so the same layers stay in floating point on both targets
    ignored = ignored_node_names(model, folded, cfg.ignored_scope(unit).patterns)
    names = [i.name for i in folded.graph.input]
    calib = _dataset(samples, lambda s: dict(zip(names, s)))
    aa = cfg.max_drop is not None and bool(validation)
    args = {**cfg.nncf_arguments(unit, len(samples), accuracy_control=aa),
            "ignored_scope": nncf.IgnoredScope(names=ignored, validate=False)}
    achieved: dict[str, Any] = {}
    if not args["fast_bias_correction"]:
        # NNCF 3.4's full BiasCorrection fails on ONNX graphs whose subgraph copies rename nodes (KeyError in
        # its get_input_name): the fast one is used there, and the manifest says so
        args["fast_bias_correction"] = True
        achieved["fast_bias_correction"] = True
        achieved["bias_correction_note"] = "full BiasCorrection is not usable with NNCF's ONNX backend here; fast"
    if not aa:
        quantized = nncf.quantize(folded, calib, **args)
    else:
        from compress.task_metrics import metric_for

        metric, sessions = metric_for(unit, metric), _Sessions()
        items = [(s, sessions.run(folded, s)) for s in validation]
        validation_fn = metric.validation_fn(sessions.run)
        quantized = nncf.quantize_with_accuracy_control(
            folded, calib, _dataset(items, lambda item: dict(zip(names, item[0]))), validation_fn,
            max_drop=cfg.max_drop, drop_type=nncf.DropType.ABSOLUTE, **args)
    quantized, rewrites = make_fusable(quantized, [dict(zip(names, sample)) for sample in samples])
    if aa:       # the metric of the model that ships, after the (not all exact) rewrites for ONNX Runtime (a
        # fresh session: the rewrites changed the model in place, so the cached one is the model before them)
        final = metric.validation_fn(_Sessions().run)
        achieved.update(metric.report(final(quantized, items)[0], cfg.max_drop))
    return quantized, {**rewrites, "ignored_nodes": len(ignored), **achieved}
