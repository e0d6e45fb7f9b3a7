"""Make an NNCF QDQ ONNX model one that ONNX Runtime's CPU provider fuses into integer kernels.

ONNX Runtime replaces ``DQ(x) -> Gemm <- DQ(W)`` by one ``QGemm``, and ``DQ(x) -> Conv <- DQ(W)`` by one
``QLinearConv``, only when the layer's bias is absent or an int32 tensor behind its own DequantizeLinear
(scale = input scale x weight scale); NNCF's ONNX backend (and PyTorch's QDQ export of a stripped NNCF
model) leaves the bias in float, so every Linear layer with a bias (all but a few of CLIP's and DETR's)
stayed a float Gemm, and every convolution with a bias (all of NanoDet's, whose batch norms are folded
into them) a float Conv, fed by a DequantizeLinear that re-expands its weight on every call.
:func:`quantize_gemm_biases` quantizes those biases the way ONNX Runtime's own ``quantize_static`` does
(int32, zero point 0), which is exact up to one bias quantum.
"""

from __future__ import annotations

import ast
import collections
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

INT32_LIMIT = 2**31 - 1
#: ONNX Runtime kernels that run a layer in integer arithmetic (the fused QDQ patterns).
INTEGER_OPS = ("QGemm", "MatMulIntegerToFloat", "QLinearMatMul", "QLinearConv", "MatMulInteger", "ConvInteger",
               "DynamicQuantizeMatMul")
#: The same layers left in float after optimisation.
FLOAT_OPS = ("Gemm", "MatMul", "FusedMatMul", "Conv", "FusedConv", "FusedGemm")


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor name -> the nodes that read it."""
    consumers: dict[str, list[onnx.NodeProto]] = collections.defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)
    return consumers


def _constant(name: str, inits: dict[str, onnx.TensorProto]) -> np.ndarray | None:
    return numpy_helper.to_array(inits[name]) if name in inits else None


def quantize_gemm_biases(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Give every ``DQ -> Gemm/Conv <- DQ(weight)`` with a float initializer bias an int32 bias; returns
    (model, count).

    The bias scale is the activation scale times the weight's (per-channel) scale, computed in float32
    as ONNX Runtime's QGemm kernel implies it. A bias that would overflow int32 stays float (the layer
    then stays a float Gemm, which is correct, only slower).
    """
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    uses = collections.Counter(i for n in graph.node for i in n.input)
    new_nodes: list[tuple[onnx.NodeProto, onnx.NodeProto]] = []
    count = 0
    for node in graph.node:
        if node.op_type not in ("Gemm", "Conv") or len(node.input) < 3 or node.input[2] not in inits:
            continue
        if node.op_type == "Gemm" and (_attr(node, "transA", 0) or
                                       float(next((a.f for a in node.attribute if a.name == "beta"), 1.0)) != 1.0):
            continue
        a_dq, w_dq = producer.get(node.input[0]), producer.get(node.input[1])
        if a_dq is None or w_dq is None or a_dq.op_type != "DequantizeLinear" or w_dq.op_type != "DequantizeLinear":
            continue
        a_scale, w_scale = _constant(a_dq.input[1], inits), _constant(w_dq.input[1], inits)
        bias = _constant(node.input[2], inits)
        if a_scale is None or w_scale is None or a_scale.size != 1 or bias is None or bias.ndim != 1:
            continue
        n = bias.shape[0]
        if w_scale.size not in (1, n):
            continue
        scale = (np.float32(a_scale.reshape(())) * w_scale.astype(np.float32).reshape(-1)).astype(np.float32)
        scale = np.broadcast_to(scale, (n,)).copy()
        if np.any(scale <= 0):
            continue
        q = np.round(bias.astype(np.float64) / scale)
        if np.any(np.abs(q) > INT32_LIMIT):
            continue
        base = node.name or node.output[0]
        q_name, s_name, out = f"{base}.bias_int32", f"{base}.bias_scale", f"{base}.bias_dq"
        graph.initializer.extend([numpy_helper.from_array(q.astype(np.int32), q_name),
                                  numpy_helper.from_array(scale, s_name)])
        new_nodes.append((node, helper.make_node("DequantizeLinear", [q_name, s_name], [out], axis=0,
                                                 name=f"{base}.bias_dequantize")))
        uses[node.input[2]] -= 1
        node.input[2] = out
        count += 1
    before = {id(gemm): dq for gemm, dq in new_nodes}      # topological order: each bias DQ right before its Gemm
    nodes = list(graph.node)
    graph.ClearField("node")
    for n in nodes:
        if id(n) in before:
            graph.node.append(before[id(n)])
        graph.node.append(n)
    unused = {name for name, k in uses.items() if k <= 0}
    kept = [i for i in graph.initializer if i.name not in unused]
    graph.ClearField("initializer")
    graph.initializer.extend(kept)
    return model, count


def activations_to_uint8(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Rewrite every per-tensor activation QuantizeLinear -> DequantizeLinear pair with an int8 zero point as uint8
    (zero point + 128); returns (model, pairs rewritten).

    Exact: (q - z) * s takes the same values for q in [-128, 127] with zero point z as for q + 128 in
    [0, 255] with z + 128. Why: NNCF's ONNX backend writes asymmetric activations whose range crosses zero as
    int8, and ONNX Runtime's x86 CPU provider fuses a QDQ convolution into ``QLinearConv`` only with uint8
    activations (u8 x s8), so every such convolution ran in float with its weights dequantized per call.
    """
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers = _consumers(graph)
    count, retyped = 0, set()
    for q in list(graph.node):
        if q.op_type != "QuantizeLinear" or len(q.input) < 3 or q.input[2] not in inits:
            continue
        zp = inits[q.input[2]]
        # per-tensor only: ONNX Runtime would fuse a per-channel uint8 activation into a QLinearConv that then
        # fails at run time (its input zero point must be a scalar); left int8, such a layer runs in float
        if zp.data_type != onnx.TensorProto.INT8 or numpy_helper.to_array(zp).size != 1:
            continue
        dqs = consumers[q.output[0]]
        if not dqs or any(d.op_type != "DequantizeLinear" or len(d.input) < 3 or
                          _constant(d.input[2], inits) is None or
                          not np.array_equal(_constant(d.input[2], inits), _constant(q.input[2], inits)) or
                          d.input[1] != q.input[1] and not np.array_equal(_constant(d.input[1], inits),
                                                                          _constant(q.input[1], inits))
                          for d in dqs):
            continue
        value = numpy_helper.to_array(zp).astype(np.int16) + 128
        name = f"{q.name or q.output[0]}.zero_point_u8"
        graph.initializer.append(numpy_helper.from_array(value.astype(np.uint8), name))
        for node in (q, *dqs):
            node.input[2] = name
        retyped.add(q.output[0])
        count += 1
    for info in graph.value_info:       # shape inference recorded the int8 type of the rewritten tensors
        if info.name in retyped:
            info.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    _drop_unused_initializers(graph)    # the int8 zero points replaced (ONNX Runtime warns about each otherwise)
    return model, count


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """Remove initializers no node reads (left as they are where a node has a subgraph, which may read them)."""
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        return
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    kept = [i for i in graph.initializer if i.name in used]
    if len(kept) < len(graph.initializer):
        graph.ClearField("initializer")
        graph.initializer.extend(kept)


#: Ops whose output stays on the grid of their (equally quantized) inputs: a Q/DQ after them adds no error.
GRID_PRESERVING = ("Concat", "MaxPool")


def requantize_grid_preserving(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """After each Concat / MaxPool whose data inputs are all DequantizeLinear outputs with the same scale and
    zero point, insert QuantizeLinear -> DequantizeLinear with those parameters; returns (model, inserted).

    Exact (a concatenation or maximum of grid values is on the grid, so quantizing it again changes nothing),
    and what lets ONNX Runtime fuse the convolution after it into ``QLinearConv``: NNCF quantizes a concat's
    inputs with one shared scale but not its output, so the layers reading a CSP block's concatenation (or a
    max pool) ran in float.
    """
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers = _consumers(graph)
    graph_outputs = {g.name for g in graph.output}      # a graph output keeps its name: left as it is
    inserted: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        if node.op_type not in GRID_PRESERVING:
            continue
        dqs = [producer.get(i) for i in node.input if i not in inits]
        if not dqs or any(d is None or d.op_type != "DequantizeLinear" or len(d.input) < 3 for d in dqs):
            continue
        params = [(_constant(d.input[1], inits), _constant(d.input[2], inits)) for d in dqs]
        if any(sc is None or zp is None or sc.size != 1 for sc, zp in params) or \
                any(not (np.array_equal(sc, params[0][0]) and np.array_equal(zp, params[0][1])) for sc, zp in params):
            continue
        out = node.output[0]
        if out in graph_outputs or all(c.op_type == "QuantizeLinear" for c in consumers[out]):
            continue
        inserted[out] = _quantize_tensor(out, dqs[0].input[1], dqs[0].input[2], node.name or out, consumers)
    _insert_after_producers(graph, inserted)
    return model, len(inserted)


def _quantize_tensor(tensor: str, scale: str, zero: str, base: str,
                     consumers: Mapping[str, list[onnx.NodeProto]]) -> list[onnx.NodeProto]:
    """QuantizeLinear -> DequantizeLinear of ``tensor`` (initializers ``scale``/``zero``); every consumer of
    ``tensor`` is rewired to read the dequantized copy. Returns the two nodes, for
    :func:`_insert_after_producers`."""
    q_out, dq_out = f"{base}.requantized", f"{base}.dequantized"
    for user in consumers[tensor]:
        for k, name in enumerate(user.input):
            if name == tensor:
                user.input[k] = dq_out
    return [helper.make_node("QuantizeLinear", [tensor, scale, zero], [q_out], name=f"{base}.quantize"),
            helper.make_node("DequantizeLinear", [q_out, scale, zero], [dq_out], name=f"{base}.dequantize")]


def _insert_after_producers(graph: onnx.GraphProto, inserted: Mapping[str, list[onnx.NodeProto]]) -> None:
    """Put each list of nodes right after the node that produces its key tensor (the graph stays sorted)."""
    nodes = list(graph.node)
    graph.ClearField("node")
    for n in nodes:
        graph.node.append(n)
        for o in n.output:
            graph.node.extend(inserted.get(o, []))


#: Activations NNCF fuses into the convolution before them (one quantizer after the activation, as OpenVINO runs
#: Conv + activation as one kernel) but ONNX Runtime's CPU provider does not: it fuses ``DQ -> Conv -> Q`` only.
UNFUSED_ACTIVATIONS = ("LeakyRelu",)


def conv_outputs_before_activations(model: onnx.ModelProto) -> list[str]:
    """Output tensors of the QDQ convolutions (data and weight behind DequantizeLinear) whose one consumer is an
    activation of :data:`UNFUSED_ACTIVATIONS`: the places :func:`quantize_conv_outputs` quantizes."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers = _consumers(model.graph)
    graph_outputs = {o.name for o in model.graph.output}
    out = []
    for node in model.graph.node:
        if node.op_type != "Conv" or any(producer.get(i) is None or producer[i].op_type != "DequantizeLinear"
                                         for i in node.input[:2]):
            continue
        users = consumers[node.output[0]]
        if len(users) == 1 and users[0].op_type in UNFUSED_ACTIVATIONS and node.output[0] not in graph_outputs:
            out.append(node.output[0])
    return out


def quantize_conv_outputs(model: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]]
                          ) -> tuple[onnx.ModelProto, int]:
    """Quantize the output of every convolution :func:`conv_outputs_before_activations` finds (uint8, asymmetric,
    the range it takes on ``feeds``), so that ONNX Runtime runs ``DQ -> Conv -> Q`` as one ``QLinearConv`` and the
    activation as ``QLinearLeakyRelu``; returns (model, convolutions quantized).

    Not exact (one more rounding, of the pre-activation), but what ONNX Runtime's own ``quantize_static`` does with
    Conv + LeakyRelu; without it a CNN detector such as NanoDet-g ran every convolution in float, its weights
    dequantized per call. The ranges are measured on the quantized model itself (QDQ simulated
    in float, no graph optimisation), so each range sees the rounding of the layers before it.
    """
    names = conv_outputs_before_activations(model)
    if not names or not feeds:
        return model, 0
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    session = cpu_session(probe, "disable")
    low = dict.fromkeys(names, 0.0)
    high = dict.fromkeys(names, 0.0)
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed)):
            low[name], high[name] = min(low[name], float(value.min())), max(high[name], float(value.max()))
    graph = model.graph
    consumers = _consumers(graph)
    inserted: dict[str, list[onnx.NodeProto]] = {}
    for name in names:
        scale = np.float32((high[name] - low[name]) / 255.0)
        if not scale > 0:
            continue
        zero = np.uint8(np.clip(np.round(-low[name] / scale), 0, 255))
        base = f"{name}.conv_output"
        graph.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), f"{base}.scale"),
                                  numpy_helper.from_array(np.array(zero, np.uint8), f"{base}.zero_point")])
        inserted[name] = _quantize_tensor(name, f"{base}.scale", f"{base}.zero_point", base, consumers)
    _insert_after_producers(graph, inserted)
    return model, len(inserted)


def make_fusable(model: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]] = ()
                 ) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Every rewrite that lets ONNX Runtime run more of a QDQ model in integer kernels; returns the model and how
    many places each rewrite changed (recorded in the manifest). All are exact but the convolution outputs, which
    are quantized (:func:`quantize_conv_outputs`) only where calibration ``feeds`` are given."""
    model, grids = requantize_grid_preserving(model)
    model, biases = quantize_gemm_biases(model)
    model, unsigned = activations_to_uint8(model)
    model, convs = quantize_conv_outputs(model, feeds)
    return model, {"int32_biases": biases, "requantized_concat_maxpool": grids, "uint8_activation_pairs": unsigned,
                   "quantized_conv_outputs": convs}


def cpu_session(model: onnx.ModelProto | bytes, level: str = "all", optimized_path: Path | None = None) -> Any:
    """An ONNX Runtime CPU session of ``model`` for export-time work (calibration, checks, graph inspection), its
    graph-optimizer warnings silenced: ``level`` 'disable' | 'basic' | 'all' (ONNX Runtime's default, what the
    runner loads); ``optimized_path``: where ONNX Runtime writes the graph it optimised."""
    import onnxruntime as ort

    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    opts = ort.SessionOptions()
    opts.graph_optimization_level = levels[level]
    opts.log_severity_level = 3
    if optimized_path is not None:
        opts.optimized_model_filepath = str(optimized_path)
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def optimized_op_counts(model: onnx.ModelProto | str | Path) -> collections.Counter:
    """Op types of the graph ONNX Runtime actually runs (all CPU graph optimisations, as the runner loads it)."""
    data = model if isinstance(model, onnx.ModelProto) else Path(model).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        cpu_session(data, "all", Path(tmp) / "optimized.onnx")
        optimized = onnx.load(str(Path(tmp) / "optimized.onnx"), load_external_data=False)
    return collections.Counter(n.op_type for n in optimized.graph.node)


def fusion_summary(counts: collections.Counter) -> dict[str, Any]:
    """What the manifest records: integer kernels vs float matmul/conv layers and leftover DequantizeLinear."""
    return {"integer_ops": {k: counts[k] for k in INTEGER_OPS if counts[k]},
            "float_ops": {k: counts[k] for k in FLOAT_OPS if counts[k]},
            "dequantize_linear_left": counts["DequantizeLinear"]}


def torch_module_paths(model: onnx.ModelProto) -> dict[str, str]:
    """ONNX node name -> the OpenVINO-style name of the torch op it came from (``__module.head.decoder.out_proj/
    aten::linear/MatMul``), from the metadata torch's dynamo exporter writes, so the layer patterns written for
    OpenVINO names (``.*class_embed.*``, ``.*aten::matmul.*``) select the same layers in an ONNX model, whose
    own node names (``node_MatMul_12``) say nothing about the module."""
    paths = {}
    for node in model.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        try:
            scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        except (ValueError, SyntaxError):
            scopes = []
        if len(scopes) < 2:
            paths[node.name] = node.name
            continue
        module = f"__module.{scopes[-2]}" if scopes[-2] else "__module"
        op = re.sub(r"_\d+$", "", scopes[-1])
        paths[node.name] = f"{module}/aten::{op}/{node.op_type}"
    return paths


def ignored_node_names(exported: onnx.ModelProto, folded: onnx.ModelProto, patterns: list[str]) -> list[str]:
    """Names of the nodes of ``folded`` (``exported`` after ONNX Runtime's folding, which drops the metadata and
    renames fused nodes ``<original>/<Fusion>``) whose torch op path matches one of ``patterns``."""
    paths = torch_module_paths(exported)
    regexes = [re.compile(p) for p in patterns]
    names = []
    for node in folded.graph.node:
        path = paths.get(node.name) or paths.get(node.name.split("/")[0], node.name)
        if any(r.fullmatch(path) for r in regexes):
            names.append(node.name)
    return names
