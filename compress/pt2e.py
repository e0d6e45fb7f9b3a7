"""ExecuTorch INT8 (PT2E with the XNNPACK quantizer): post-training, accuracy-aware and quantization-aware.

The quantizer follows the same recipe as NNCF's targets (:class:`compress.quantize.QuantizationConfig`):
static INT8, symmetric per-channel weights, and the unit's sensitive layers in FP — the patterns NNCF
matches against node names are matched here against module names and handed to
``XNNPACKQuantizer``'s module-name config as ``None``, so NanoDet's GFL class/box conv and its whole box decoding
(whose concatenations, multiplications and additions the XNNPACK quantizer would otherwise annotate) stay FP.

Accuracy-aware INT8 (:func:`quantize_accuracy_aware`) is NNCF's accuracy-control idea for a quantizer that
has none: quantize everything, and while the unit's task metric (:mod:`compress.task_metrics`) is more than
``max_drop`` below FP32 on the validation inputs, return the layer whose FP version restores the most metric
to FP (ranked once, one quantization per candidate layer), cumulatively, in rank order.

Quantization-aware distillation (:func:`qat_student`) is PT2E QAT: ``prepare_qat_pt2e`` with the XNNPACK
quantizer's QAT config, the observers run over the calibration inputs and then frozen, and the weights
trained by :func:`compress.distill.distill_student`; ``convert_pt2e`` then gives the graph that is lowered.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Sequence

import torch

from compress.equality import sample_tensors, torch_run
from compress.quantize import QuantizationConfig, UnitSample
from compress.task_metrics import TaskMetric

#: The module types whose leaves accuracy-aware INT8 may return to FP, one layer at a time.
REVERTIBLE = (torch.nn.Conv2d, torch.nn.Linear)
MAX_REVERTED = 30            # stop after this many layers went back to FP (NNCF's restorer also caps its loop)
RANKING_CALIBRATION = 16     # calibration inputs per ranking quantization (the final one uses all of them)


def fp_module_names(module: torch.nn.Module, patterns: Sequence[str]) -> list[str]:
    """Every module of ``module`` whose qualified name fully matches one of ``patterns`` (the NNCF
    ignored-scope regexes, written against module paths such as ``head.gfl_cls.0``), children included: the
    quantizer's module filter looks a name up among the modules a node was *called* from, and a container
    (``head.gfl_cls``, a ModuleList) is never called itself."""
    regexes = [re.compile(p) for p in patterns]
    return [name for name, _ in module.named_modules() if name and any(r.fullmatch(name) for r in regexes)]


def xnnpack_quantizer(fp_names: Sequence[str] = (), is_qat: bool = False) -> Any:
    """XNNPACK's static per-channel symmetric INT8, with ``fp_names`` (module names), layer norms and the
    end-to-end network's selection/resampling/scoring modules left in floating point."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        _get_module_type_filter,
        get_symmetric_quantization_config,
    )
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer_utils import propagate_annotation
    from torchao.quantization.pt2e.quantizer.utils import get_module_name_filter

    from hoi_edge.model.end_to_end import FP_MODULES
    from hoi_edge.model.ops import DecomposedLayerNorm

    class Quantizer(XNNPACKQuantizer):
        """XNNPACKQuantizer whose FP modules really stay FP: executorch 1.5's ``cat`` annotator ignores the
        module filters (its ``filter_fn`` is unused), so a concatenation inside an FP module (NanoDet's level
        concatenation of class logits and box bins) was quantized anyway; annotations inside FP modules are
        dropped before they are propagated."""

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

            model = self._annotate_for_quantization_config(model)
            fp = [get_module_name_filter(n) for n, c in self.module_name_config.items() if c is None] + \
                 [_get_module_type_filter(t) for t, c in self.module_type_config.items() if c is None]
            for node in model.graph.nodes:
                if any(f(node) for f in fp):
                    node.meta.pop(Q_ANNOTATION_KEY, None)
            propagate_annotation(model)
            return model

    config = get_symmetric_quantization_config(is_per_channel=True, is_qat=is_qat)
    quantizer = (Quantizer().set_global(_min_max_fake_quant(config) if is_qat else config)
                 .set_module_type(DecomposedLayerNorm, None))
    for fp_module in FP_MODULES:
        quantizer.set_module_type(fp_module, None)
    for name in fp_names:
        # set_module_name(name, None) asserts "not supported yet" in executorch 1.5, yet the annotation it
        # feeds already supports None: the global config skips every module named in module_name_config, and a
        # None config annotates nothing (exactly what set_module_type(T, None) does for layer norms)
        quantizer.module_name_config[name] = None
    return quantizer


def _min_max_fake_quant(config: Any) -> Any:
    """XNNPACK's QAT config with plain ``FakeQuantize`` modules over min/max observers (per channel for
    weights) instead of ``FusedMovingAvgObsFakeQuantize``: the fused kernel gave NaN ranges for the HOI
    head's activations (after a ``repeat``; the FP32 graph has no non-finite value), which ``convert_pt2e``
    refuses; and the moving average (constant 0.01) would let the first calibration sample set the ranges.
    The observers run over all calibration inputs and are then frozen (:func:`qat_student`)."""
    import dataclasses

    from torchao.quantization.pt2e import FakeQuantize, MinMaxObserver, PerChannelMinMaxObserver

    def spec(s: Any, observer: Any) -> Any:
        ctr = FakeQuantize.with_args(observer=observer, quant_min=s.quant_min, quant_max=s.quant_max, dtype=s.dtype,
                                     qscheme=s.qscheme, eps=2**-12, **({"ch_axis": s.ch_axis}
                                                                        if observer is PerChannelMinMaxObserver else {}))
        return dataclasses.replace(s, observer_or_fake_quant_ctr=ctr)

    return dataclasses.replace(config, input_activation=spec(config.input_activation, MinMaxObserver),
                               output_activation=spec(config.output_activation, MinMaxObserver),
                               weight=spec(config.weight, PerChannelMinMaxObserver))


def sensitive_names(module: torch.nn.Module, unit: str, qcfg: QuantizationConfig) -> list[str]:
    return fp_module_names(module, qcfg.ignored_scope(unit).patterns)


def quantize_ptq(module: torch.nn.Module, example: tuple[torch.Tensor, ...], samples: Sequence[UnitSample],
                 fp_names: Sequence[str]) -> torch.fx.GraphModule:
    """Post-training INT8 (``prepare_pt2e`` / calibration / ``convert_pt2e``) with ``fp_names`` in FP."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = torch.export.export(module, example).module()
    prepared = prepare_pt2e(graph, xnnpack_quantizer(fp_names))
    with torch.no_grad():
        for sample in samples:
            prepared(*sample_tensors(sample))
    return convert_pt2e(prepared)


def quantize_accuracy_aware(module: torch.nn.Module, example: tuple[torch.Tensor, ...], samples: Sequence[UnitSample],
                            validation: Sequence[UnitSample], unit: str, qcfg: QuantizationConfig, metric: TaskMetric,
                            progress: bool = True) -> tuple[torch.fx.GraphModule, dict[str, Any]]:
    """INT8 whose task ``metric`` on ``validation`` is within ``qcfg.max_drop`` of FP32's (1), reverting the
    most helpful layers to FP; returns the converted graph and the manifest's report (layers reverted, the
    metric before and after)."""
    from tqdm import tqdm

    base = sensitive_names(module, unit, qcfg)
    references = [torch_run(module)(s) for s in validation]

    def value(fp_names: Sequence[str], calibration: Sequence[UnitSample] = samples
              ) -> tuple[float, torch.fx.GraphModule]:
        converted = quantize_ptq(module, example, calibration, fp_names)
        return metric.score(validation, [torch_run(converted)(s) for s in validation], references)[0], converted

    start, converted = value(base)
    reached, reverted = start, []
    if 1.0 - start > qcfg.max_drop:
        candidates = [n for n, m in module.named_modules() if isinstance(m, REVERTIBLE)
                      and not any(n == b or n.startswith(b + ".") for b in base)]
        gains = {}
        for name in tqdm(candidates, desc=f"rank {unit} layers", disable=not progress, leave=False):
            gains[name] = value(base + [name], samples[:RANKING_CALIBRATION])[0]
        for name in sorted(candidates, key=lambda n: -gains[n])[:MAX_REVERTED]:
            reverted.append(name)
            reached, converted = value(base + reverted)
            if 1.0 - reached <= qcfg.max_drop:
                break
    report = metric.report(reached, qcfg.max_drop)
    report.update(initial_value=start, reverted_layers=reverted, validation_samples=len(validation),
                  max_drop=qcfg.max_drop, drop_type="absolute",
                  method="hoi-edge revert loop over pt2e (rank each conv/linear by the metric it restores)")
    return converted, report


def qat_student(module: torch.nn.Module, example: tuple[torch.Tensor, ...], samples: Sequence[UnitSample],
                fp_names: Sequence[str]) -> torch.fx.GraphModule:
    """PT2E QAT student of ``module``: ``prepare_qat_pt2e`` with the XNNPACK QAT config, observers run over
    ``samples`` (the post-training ranges) and then frozen, weights trainable."""
    from torchao.quantization.pt2e import disable_observer, move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    graph = torch.export.export(copy.deepcopy(module).eval(), example).module()
    prepared = prepare_qat_pt2e(graph, xnnpack_quantizer(fp_names, is_qat=True))
    move_exported_model_to_eval(prepared)
    with torch.no_grad():
        for sample in samples:
            prepared(*sample_tensors(sample))
    prepared.apply(disable_observer)            # ranges fixed: training moves the weights, not the grid
    for p in prepared.parameters():
        if p.is_floating_point():
            p.requires_grad_(True)
    return prepared


def set_pt2e_mode(graph: torch.nn.Module, train: bool) -> None:
    """train()/eval() for an exported graph (torch.export graphs refuse the module methods)."""
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

    (move_exported_model_to_train if train else move_exported_model_to_eval)(graph)


def convert_student(student: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The trained QAT graph with its fake quantizers turned into quantize/dequantize pairs (what is lowered)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    set_pt2e_mode(student, False)
    return convert_pt2e(copy.deepcopy(student))
