"""Which weighted layers of an OpenVINO IR run in floating point, read from the graph itself.

The ignored scope given to NNCF is a list of name patterns; what it actually kept in FP is only visible in the
saved IR. An INT8 layer reads its weight as an integer constant through a decompression chain
(``Constant(i8) -> Convert -> [Subtract] -> Multiply``, or a ``FakeQuantize``); a layer left in FP reads a
floating-point constant. Comparing these lists between two layouts of one model (the three export units and the
end-to-end network) shows whether both keep the same sensitive layers in FP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WEIGHTED_OPS = ("MatMul", "Convolution", "GroupConvolution", "ConvolutionBackpropData")
# ops between a weight constant and its layer that do not change what the weight is (layout, decompression)
_PASS_THROUGH = ("Convert", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "Subtract", "Multiply")


def _weight_source(node: Any) -> str | None:
    """'float', 'integer' or None (no constant behind this input: an activation)."""
    for _ in range(8):
        kind = node.get_type_name()
        if kind == "FakeQuantize":
            return "integer"
        if kind == "Constant":
            return "float" if node.get_element_type().is_real() else "integer"
        if kind not in _PASS_THROUGH:
            return None
        node = node.input(0).get_source_output().get_node()
    return None


def float_weight_layers(model: Any | str | Path) -> list[str]:
    """Friendly names of the weighted layers (MatMul / convolutions with a constant operand) of ``model`` (an
    ``ov.Model`` or an IR .xml path) whose weight is floating point, in graph order."""
    if not hasattr(model, "get_ops"):
        import openvino as ov

        model = ov.Core().read_model(str(model))
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in WEIGHTED_OPS:
            continue
        sources = [_weight_source(i.get_source_output().get_node()) for i in op.inputs()]
        if "float" in sources and "integer" not in sources:
            names.append(op.get_friendly_name())
    return names
