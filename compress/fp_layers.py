"""Which compute layers (convolutions, matrix products) an INT8 graph leaves in floating point, per target.

One question with three graph formats: is each input of a Convolution / MatMul / Gemm / linear the output of a
quantizer (OpenVINO ``FakeQuantize`` or a low-precision constant, ONNX ``DequantizeLinear``, PT2E
``dequantize_per_*``)? A layer whose inputs are not all quantized runs in floating point. The manifest lists
them (``fp_layers``), so what accuracy-aware INT8 returned to FP, and what the sensitive-layer patterns keep in
FP, is on record and costed in the docs' table; the tests check that NanoDet's GFL decoding stays FP in every
target's INT8 graph with the same functions.
"""

from __future__ import annotations

from typing import Any

# ops an OpenVINO weight path passes through between its quantizer and the layer (decompression, layout)
_OV_PASS_THROUGH = {"Convert", "Multiply", "Subtract", "Reshape", "Transpose", "Unsqueeze", "Squeeze"}
# ops that keep INT8 data INT8 when every data input is quantized (NNCF quantizes before them, not after)
_OV_AGNOSTIC = {"Concat", "MaxPool", "Split", "VariadicSplit", "StridedSlice", "Slice", "Gather"}
_OV_LAYERS = {"Convolution", "GroupConvolution", "MatMul"}
_ONNX_LAYERS = {"Conv", "MatMul", "Gemm"}
_PT2E_LAYERS = ("aten.conv2d", "aten.conv1d", "aten.linear", "aten.matmul", "aten.bmm", "aten.mm",
                "aten.convolution", "aten.addmm")


def _ov_quantized(output: Any, depth: int = 4) -> bool:
    """Whether a FakeQuantize or a low-precision constant feeds ``output`` through decompression/layout ops only."""
    node = output.get_node()
    kind = node.get_type_name()
    if kind == "FakeQuantize":
        return True
    if kind == "Constant":
        return node.get_element_type().get_type_name() in ("i8", "u8", "i4", "u4")
    if depth <= 0:
        return False
    if kind in _OV_AGNOSTIC:
        data = [i.get_source_output() for i in node.inputs() if i.get_source_output().get_node().get_type_name()
                != "Constant"]
        return bool(data) and all(_ov_quantized(o, depth - 1) for o in data)
    return kind in _OV_PASS_THROUGH and any(_ov_quantized(i.get_source_output(), depth - 1) for i in node.inputs())


def openvino_fp_layers(model: Any) -> list[str]:
    """Friendly names of the Convolution / MatMul nodes of an ``ov.Model`` with an input not from a quantizer."""
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() in _OV_LAYERS
            and not all(_ov_quantized(i.get_source_output()) for i in op.inputs())]


def onnx_fp_layers(model: Any, source: Any = None) -> list[str]:
    """Names (the torch module path where the exporter recorded one, in ``model`` or in the exported ``source``
    it was folded from) of the Conv / MatMul / Gemm nodes of an ONNX QDQ model with a data or weight input not
    produced by a DequantizeLinear."""
    from compress.onnx_qdq import torch_module_paths

    producer = {o: n for n in model.graph.node for o in n.output}
    paths = torch_module_paths(source if source is not None else model)
    out = []
    for node in model.graph.node:
        if node.op_type not in _ONNX_LAYERS:
            continue
        inputs = node.input[:2]
        if not all(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear" for i in inputs):
            out.append(paths.get(node.name) or paths.get(node.name.split("/")[0], node.name))
    return out


def pt2e_fp_layers(graph_module: Any) -> list[str]:
    """``module path/op`` of the conv / linear / matmul nodes of a converted PT2E graph whose activation or weight
    input is not a ``dequantize_per_*`` node (what XNNPACK then runs in FP32)."""
    out = []
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or not str(node.target).startswith(_PT2E_LAYERS):
            continue
        inputs = [a for a in node.args[:2] if hasattr(a, "op")]
        if not all(a.op == "call_function" and "dequantize_per" in str(a.target) for a in inputs):
            stack = node.meta.get("nn_module_stack") or {}
            module = list(stack.values())[-1][0] if stack else ""
            out.append(f"{module}/{str(node.target).split('.')[1]}" if module else node.name)
    return out
