"""The INT8 recipe in every target's graph, on a small NanoDet (same modules as NanoDet-g, 64 px, few channels):
the whole GFL decoding and the class/box conv stay in floating point — no quantizer anywhere between the
``gfl_cls`` convolutions and the ``scores``/``boxes`` outputs — while the backbone is INT8; and the check that
a converted (distilled) unit is the model it was converted from fails on a deliberately misplaced quantizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.quantize import QuantizationConfig
from hoi_edge.model.nanodet import NanoDet
from targets.contract import UnitContract

SMALL_NET = (("Conv", 3, 8, 3, 2), ("MaxPool", 3, 2), ("CspBlock", 8, 1, 3, 1), ("CspBlock", 16, 1, 3, 2),
             ("CspBlock", 32, 1, 3, 2), ("CspBlock", 64, 1, 3, 2))
SIZE = 64
CONTRACT = UnitContract("detector", {"images": (1, 3, SIZE, SIZE)}, ("scores", "boxes", "features"))
QCFG = QuantizationConfig(subset_size=4, detector_family="nanodet")


@pytest.fixture(scope="module")
def small_nanodet():
    torch.manual_seed(0)
    return NanoDet(num_classes=4, reg_max=3, image_size=SIZE, fpn_channels=16, feat_channels=16,
                   net_cfg=SMALL_NET).fold_batchnorm().eval()


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((1, 3, SIZE, SIZE)).astype(np.float32),) for _ in range(4)]


def _between(outputs, producers, is_quantizer, is_stop):
    """Quantizer nodes met walking back from ``outputs`` until (and including the inputs of) stop nodes."""
    seen, found, todo = set(), [], list(outputs)
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if is_quantizer(node):
            found.append(node)
            continue
        parents = producers(node)
        if is_stop(node):
            found += [p for p in parents if p is not None and is_quantizer(p)]
            continue
        todo += parents
    return found


def test_gfl_decoding_stays_fp_in_openvino_int8(small_nanodet, samples, tmp_path):
    import openvino as ov

    from targets.openvino_target import export_unit

    info = export_unit(small_nanodet, CONTRACT, (torch.from_numpy(samples[0][0]),), tmp_path / "d.xml", "int8",
                       samples=samples, qcfg=QCFG)
    model = ov.Core().read_model(tmp_path / "d.xml")
    outputs = [model.output(name).get_node().input_value(0).get_node() for name in ("scores", "boxes")]

    def producers(node):
        return [i.get_source_output().get_node() for i in node.inputs()]

    found = _between(outputs, producers, lambda n: n.get_type_name() == "FakeQuantize",
                     lambda n: n.get_type_name() == "Convolution")
    assert not found, [n.get_friendly_name() for n in found]
    assert sum(op.get_type_name() == "FakeQuantize" for op in model.get_ordered_ops()) > 10   # the backbone is INT8
    assert sum("gfl_cls" in n for n in info["fp_layers"]) == 3 and info["model_type"] == "cnn"


def test_gfl_decoding_stays_fp_in_onnx_int8(small_nanodet, samples, tmp_path):
    import onnx

    from targets.onnx_target import export_unit

    export_unit(small_nanodet, CONTRACT, (torch.from_numpy(samples[0][0]),), tmp_path / "d.onnx", "int8",
                samples=samples, qcfg=QCFG)
    model = onnx.load(tmp_path / "d.onnx")
    producer = {o: n for n in model.graph.node for o in n.output}
    outputs = [producer[o.name] for o in model.graph.output if o.name in ("scores", "boxes")]
    found = _between(outputs, lambda n: [producer.get(i) for i in n.input],
                     lambda n: n.op_type in ("QuantizeLinear", "DequantizeLinear"), lambda n: n.op_type == "Conv")
    assert len(outputs) == 2 and not found, [n.name for n in found]
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) > 10


def test_gfl_decoding_stays_fp_in_executorch_int8(small_nanodet, samples):
    from compress.pt2e import quantize_ptq, sensitive_names

    names = sensitive_names(small_nanodet, "detector", QCFG)
    assert names == ["head.gfl_cls", "head.gfl_cls.0", "head.gfl_cls.1", "head.gfl_cls.2", "gfl_decode"]
    example = (torch.from_numpy(samples[0][0]),)
    graph = quantize_ptq(small_nanodet, example, samples, names)
    out = next(n for n in graph.graph.nodes if n.op == "output")
    outputs = list(out.args[0][:2])

    def producers(node):
        return [a for a in node.all_input_nodes]

    def quantizer(node):
        return node.op == "call_function" and "quantize_per" in str(node.target)

    found = _between(outputs, producers, quantizer, lambda n: "conv" in str(n.target))
    assert not found, [n.name for n in found]
    assert sum(quantizer(n) for n in graph.graph.nodes) > 10


class _ConvNet(torch.nn.Module):
    """Three convolutions whose activations differ in range by 100x: swapping two quantizers' ranges clips one."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = (torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1),
                                  torch.nn.Conv2d(8, 4, 1))
        with torch.no_grad():
            self.b.weight.mul_(30.0)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x))))) * 0.01


@pytest.mark.parametrize("target", ["openvino", "onnx"])
def test_equality_check_fails_on_a_misplaced_quantizer(target):
    from compress.distill import convert_distilled, export_distilled_onnx, openvino_run, quantize_torch
    from compress.equality import MATCH_COSINE, check_equality, torch_run

    torch.manual_seed(0)
    net = _ConvNet().eval()
    rng = np.random.default_rng(0)
    samples = [(rng.standard_normal((1, 3, 16, 16)).astype(np.float32),) for _ in range(4)]
    inputs = [(torch.from_numpy(s[0]),) for s in samples]
    student = quantize_torch(net, "net", inputs, QuantizationConfig(subset_size=4)).eval()
    if target == "openvino":
        model, equality, why = convert_distilled(student, inputs[0], samples, ["y"])
        assert why is None and equality.worst >= MATCH_COSINE and equality.cpu["isa"]
        fqs = [op for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize"
               and op.input_value(0).get_node().get_type_name() != "Constant"]
        ranges = [[op.input_value(k).get_node() for k in range(1, 5)] for op in fqs]
        first, last = fqs[0], fqs[-1]           # swap the ranges of the first and last activation quantizers
        for k in range(1, 5):
            first.input(k).replace_source_output(ranges[-1][k - 1].output(0))
            last.input(k).replace_source_output(ranges[0][k - 1].output(0))
        model.validate_nodes_and_infer_types()
        moved = check_equality(torch_run(student), openvino_run(model)[0], samples, ["y"], "misplaced")
    else:
        import onnxruntime as ort
        from onnx import numpy_helper

        model, equality, why, _ = export_distilled_onnx(student, inputs[0], samples, ["x"], ["y"], opset=18)
        assert why is None and equality.worst >= MATCH_COSINE
        inits = {i.name: i for i in model.graph.initializer}
        quant = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits
                 and n.input[1] in inits and numpy_helper.to_array(inits[n.input[1]]).size == 1]
        a, b = quant[0], quant[-1]
        scale_a, scale_b = a.input[1], b.input[1]
        for node in model.graph.node:              # every Q and DQ of one tensor takes the other's scale
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.input[1] in (scale_a, scale_b):
                node.input[1] = scale_b if node.input[1] == scale_a else scale_a
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        moved = check_equality(torch_run(student), lambda s: session.run(None, {"x": s[0]}), samples, ["y"],
                               "misplaced")
    assert not moved.passed and moved.worst < MATCH_COSINE and "does not reproduce" in moved.reason()


def test_fake_quant_reference_computes_what_the_int8_model_means():
    """64 channels of u8 255 x s8 127 pairs: 2 * 255 * 127 overflows int16, so CPUs without VNNI saturate the INT8
    kernel; the written-out reference gives the exact value on every CPU (the probe compares the two)."""
    import openvino as ov
    import openvino.opset13 as ops

    from compress.equality import fake_quant_reference
    from hoi_edge.core.cpu import cpu_info

    c = 64
    x = ops.parameter([1, c, 4, 4], np.float32, name="x")
    fq = ops.fake_quantize(x, np.float32(0), np.float32(2.55), np.float32(0), np.float32(2.55), 256)
    w = ops.fake_quantize(ops.constant(np.full((8, c, 1, 1), 1.27, np.float32)), np.float32(-1.27), np.float32(1.27),
                          np.float32(-1.27), np.float32(1.27), 255)
    model = ov.Model([ops.convolution(fq, w, [1, 1], [0, 0], [0, 0], [1, 1])], [x])
    inputs = [np.full((1, c, 4, 4), 2.55, np.float32)]
    core = ov.Core()
    exact = core.compile_model(fake_quant_reference(model), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(inputs)[0]
    np.testing.assert_allclose(exact, 2.55 * 1.27 * c, rtol=1e-5)
    kernels = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(inputs)[0]
    if cpu_info().vnni:            # VNNI sums in int32: the INT8 kernel is exact too
        np.testing.assert_allclose(kernels, exact, rtol=1e-5)
    assert not any(op.get_type_name() == "FakeQuantize" for op in fake_quant_reference(model).get_ordered_ops())


def test_executorch_accuracy_aware_int8_reverts_layers_until_the_metric_is_met():
    """The revert loop (ExecuTorch has no NNCF accuracy control): at a drop no INT8 graph reaches, layers go back to
    FP, best first, and the report says which and what the metric reached; at a drop INT8 already meets, none."""
    from compress.pt2e import quantize_accuracy_aware
    from compress.task_metrics import TaskMetric

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).eval()
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((1, 3, 16, 16)).astype(np.float32),) for _ in range(4)]
    example = (torch.from_numpy(data[0][0]),)
    strict = QuantizationConfig(subset_size=4, max_drop=1e-7)
    _, report = quantize_accuracy_aware(net, example, data, data, "clip_image", strict, TaskMetric(), progress=False)
    assert report["reverted_layers"] and set(report["reverted_layers"]) <= {"0", "2", "4"}
    assert report["validation_value"] > report["initial_value"]
    loose = QuantizationConfig(subset_size=4, max_drop=0.5)
    _, report = quantize_accuracy_aware(net, example, data, data, "clip_image", loose, TaskMetric(), progress=False)
    assert report["reverted_layers"] == [] and report["max_drop_met"]
