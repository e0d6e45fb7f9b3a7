"""What each runtime really executes: ONNX Runtime's fused integer kernels, ExecuTorch's XNNPACK share, and the
DETR forms that make both possible (written-out attention, export copy with folded batch norms)."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from compress.onnx_qdq import (
    activations_to_uint8,
    ignored_node_names,
    optimized_op_counts,
    quantize_conv_outputs,
    quantize_gemm_biases,
    torch_module_paths,
)
from hoi_edge.model.config import clip4hoi_tiny
from hoi_edge.model.detector import DETR, MultiheadAttention


def test_written_out_attention_equals_nn_multihead_attention():
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(64, 4, batch_first=True).eval()
    torch.nn.init.normal_(ref.in_proj_bias)
    torch.nn.init.normal_(ref.out_proj.bias)
    mine = MultiheadAttention(64, 4)
    assert list(mine.state_dict()) == list(ref.state_dict())          # the official DETR names and order
    mine.load_state_dict(ref.state_dict())
    q, k, v = torch.randn(2, 7, 64), torch.randn(2, 11, 64), torch.randn(2, 11, 64)
    torch.testing.assert_close(mine(q, k, v), ref(q, k, v, need_weights=False)[0], atol=1e-5, rtol=0)
    torch.manual_seed(1)
    a = torch.nn.MultiheadAttention(64, 4, batch_first=True)
    torch.manual_seed(1)
    b = MultiheadAttention(64, 4)
    assert all(torch.equal(a.state_dict()[n], b.state_dict()[n]) for n in a.state_dict())    # same random init


def test_detr_export_module_folds_batchnorm_and_keeps_outputs():
    torch.manual_seed(0)
    cfg = clip4hoi_tiny().detector
    det = DETR(cfg).eval()
    with torch.no_grad():
        for m in det.modules():          # non-trivial frozen statistics, so a wrong fold shows
            if type(m).__name__ == "FrozenBatchNorm2d":
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1.0, 0.1)
                m.bias.normal_()
    before = {k: v.clone() for k, v in det.state_dict().items()}
    exported = det.export_module()
    kinds = collections.Counter(type(m).__name__ for m in exported.modules())
    assert kinds["FrozenBatchNorm2d"] == 0 and kinds["MultiheadAttention"] == 0
    assert kinds["SplitAttention"] == cfg.num_encoder_layers + 2 * cfg.num_decoder_layers
    x = torch.randn(1, 3, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        for want, got in zip(det(x), exported(x), strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert all(torch.equal(before[k], v) for k, v in det.state_dict().items())      # the eager module is untouched


def _qdq_gemm(bias: np.ndarray, w_scale: np.ndarray | None = None) -> onnx.ModelProto:
    """DQ(x) -> Gemm(transB) <- DQ(per-channel int8 W), float bias: what NNCF writes for a Linear layer.
    ``w_scale``: the weight's per-output-channel scales (default 0.01 for every channel)."""
    rng = np.random.default_rng(0)
    n, k = bias.shape[0], 16
    w_scale = np.full(n, 0.01) if w_scale is None else w_scale
    inits = [numpy_helper.from_array(rng.integers(-100, 100, (n, k)).astype(np.int8), "w"),
             numpy_helper.from_array(np.asarray(w_scale, np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros(n, np.int8), "w_zero"),
             numpy_helper.from_array(np.array(0.05, np.float32), "x_scale"),
             numpy_helper.from_array(np.array(0, np.int8), "x_zero"),
             numpy_helper.from_array(bias.astype(np.float32), "bias")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=0),
             helper.make_node("Gemm", ["xd", "wd", "bias"], ["y"], transB=1, name="fc")]
    graph = helper.make_graph(nodes, "fc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, n])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_int32_gemm_biases_let_onnxruntime_fuse_qgemm():
    bias = np.linspace(-1, 1, 8)
    float_bias = _qdq_gemm(bias)
    before = optimized_op_counts(float_bias)
    assert before["Gemm"] == 1 and before["QGemm"] == 0            # a float bias blocks ORT's fusion
    fused, count = quantize_gemm_biases(_qdq_gemm(bias))
    onnx.checker.check_model(fused)
    after = optimized_op_counts(fused)
    assert count == 1 and after["QGemm"] == 1 and after["Gemm"] == 0 and after["DequantizeLinear"] == 0
    x = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32)
    quantum = 0.05 * 0.01
    np.testing.assert_allclose(_run(fused, x), _run(float_bias, x), atol=quantum)


def _qdq_conv_leaky_relu() -> onnx.ModelProto:
    """DQ(x) -> Conv <- DQ(int8 W) -> LeakyRelu -> Q -> DQ: NNCF's placement for Conv + activation (one quantizer
    after the activation, which OpenVINO fuses), uint8 activations, an int32 bias behind its own DQ."""
    rng = np.random.default_rng(0)
    w_scale = np.full(4, 0.02, np.float32)
    inits = [numpy_helper.from_array(rng.integers(-60, 60, (4, 3, 3, 3)).astype(np.int8), "w"),
             numpy_helper.from_array(w_scale, "w_scale"), numpy_helper.from_array(np.zeros(4, np.int8), "w_zero"),
             numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"),
             numpy_helper.from_array(np.array(128, np.uint8), "x_zero"),
             numpy_helper.from_array(np.arange(4).astype(np.int32), "b"),
             numpy_helper.from_array(0.02 * w_scale, "b_scale"), numpy_helper.from_array(np.zeros(4, np.int32), "b_zero"),
             numpy_helper.from_array(np.array(0.05, np.float32), "y_scale"),
             numpy_helper.from_array(np.array(20, np.uint8), "y_zero")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=0),
             helper.make_node("DequantizeLinear", ["b", "b_scale", "b_zero"], ["bd"], axis=0),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("LeakyRelu", ["c"], ["a"], alpha=0.1),
             helper.make_node("QuantizeLinear", ["a", "y_scale", "y_zero"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "y_scale", "y_zero"], ["y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_conv_before_leaky_relu_gets_an_output_quantizer_and_fuses():
    """ONNX Runtime fuses DQ -> Conv -> Q only: with NNCF's single quantizer after the LeakyRelu the convolution
    ran in float. Quantizing its output on the calibration range makes it one QLinearConv (and the activation a
    QLinearLeakyRelu), within a few output quanta of the float-convolution model."""
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.uniform(-2, 2, (1, 3, 8, 8)).astype(np.float32)} for _ in range(4)]
    before = optimized_op_counts(_qdq_conv_leaky_relu())
    assert before["QLinearConv"] == 0 and before["Conv"] + before["FusedConv"] == 1
    fused, count = quantize_conv_outputs(_qdq_conv_leaky_relu(), feeds)
    onnx.checker.check_model(fused)
    after = optimized_op_counts(fused)
    assert count == 1 and after["QLinearConv"] == 1 and after["Conv"] + after["FusedConv"] == 0, after
    for feed in feeds:
        np.testing.assert_allclose(_run(fused, feed["x"]), _run(_qdq_conv_leaky_relu(), feed["x"]), atol=3 * 0.05)
    assert quantize_conv_outputs(_qdq_conv_leaky_relu(), [])[1] == 0          # no calibration data: unchanged


def _depthwise_qdq(per_channel_input: bool) -> onnx.ModelProto:
    """Q(x) -> DQ(x) (int8 zero point: NNCF's ONNX form for a range crossing zero; per-tensor or per channel, as
    NNCF quantizes some depthwise inputs) -> depthwise Conv <- DQ(int8 W) -> Q -> DQ."""
    rng = np.random.default_rng(0)
    shape = (4,) if per_channel_input else ()
    inits = [numpy_helper.from_array(rng.integers(-60, 60, (4, 1, 3, 3)).astype(np.int8), "w"),
             numpy_helper.from_array(np.full(4, 0.02, np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros(4, np.int8), "w_zero"),
             numpy_helper.from_array(np.full(shape, 0.02, np.float32), "x_scale"),
             numpy_helper.from_array(np.full(shape, -3, np.int8), "x_zero"),
             numpy_helper.from_array(np.array(0.05, np.float32), "y_scale"),
             numpy_helper.from_array(np.array(2, np.int8), "y_zero")]
    axis = {"axis": 1} if per_channel_input else {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"], **axis),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"], **axis),
             helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1], group=4, name="dw"),
             helper.make_node("QuantizeLinear", ["c", "y_scale", "y_zero"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "y_scale", "y_zero"], ["y"])]
    graph = helper.make_graph(nodes, "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_uint8_activations_let_onnxruntime_fuse_qlinearconv_exactly():
    x = np.random.default_rng(1).uniform(-2, 2, (1, 4, 8, 8)).astype(np.float32)
    model, count = activations_to_uint8(_depthwise_qdq(False))
    onnx.checker.check_model(model)
    assert count == 2 and optimized_op_counts(model)["QLinearConv"] == 1
    np.testing.assert_allclose(_run(model, x), _run(_depthwise_qdq(False), x), atol=1e-6)      # the same grid


def test_per_channel_activations_stay_int8_and_the_model_runs():
    """A per-channel activation zero point cannot feed a QLinearConv (ONNX Runtime fails at run time): that pair
    is left as it is, the other (per-tensor) one is rewritten, and the model runs."""
    model, count = activations_to_uint8(_depthwise_qdq(True))
    assert count == 1
    x = np.random.default_rng(1).uniform(-2, 2, (1, 4, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(model, x), _run(_depthwise_qdq(True), x), atol=1e-6)


def test_int32_gemm_biases_use_each_output_channels_weight_scale():
    """NNCF scales weights per output channel: channel c's bias quantum is x_scale * w_scale[c]. ONNX Runtime's
    QGemm adds the int32 bias to the int32 accumulator as is, so a bias quantized with another channel's scale
    would be off by w_scale[c] / w_scale[0]; within one bias quantum of the float-bias model, channel by channel."""
    w_scale = np.geomspace(0.002, 0.05, 8)                            # 25x apart, as real channels are
    bias = np.linspace(-1, 1, 8)
    float_bias = _qdq_gemm(bias, w_scale)
    fused, count = quantize_gemm_biases(_qdq_gemm(bias, w_scale))
    assert count == 1 and optimized_op_counts(fused)["QGemm"] == 1
    x = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32)
    got, want = _run(fused, x), _run(float_bias, x)
    quantum = 0.05 * w_scale.astype(np.float32)                      # x_scale * w_scale[c], per column
    assert np.all(np.abs(got - want) <= quantum[None, :] + 1e-6), (got - want) / quantum


def test_bias_that_overflows_int32_stays_float():
    fused, count = quantize_gemm_biases(_qdq_gemm(np.full(8, 1e7)))       # 1e7 / 5e-4 > 2^31
    assert count == 0 and optimized_op_counts(fused)["Gemm"] == 1


def test_onnx_nodes_are_matched_by_their_torch_module_path(tmp_path):
    """NNCF's ignored patterns name torch modules (OpenVINO's node names carry them); an ONNX node named
    ``node_MatMul_3`` is matched through the module path the dynamo exporter recorded."""
    from compress.quantize import fold_constants

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.class_embed = torch.nn.Linear(8, 8), torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.class_embed(torch.relu(self.body(x))), torch.matmul(x, x.transpose(-1, -2))

    exported = torch.onnx.export(Net(), (torch.randn(1, 4, 8),), dynamo=True, verbose=False).model_proto
    paths = torch_module_paths(exported)
    assert any(p.startswith("__module.class_embed/aten::linear/") for p in paths.values()), paths
    folded = fold_constants(exported)
    ignored = ignored_node_names(exported, folded, [r".*class_embed.*"])
    kinds = {n.op_type for n in folded.graph.node if n.name in ignored}
    assert ignored and kinds <= {"MatMul", "Gemm", "Add"}, (ignored, kinds)
    assert not any("body" in paths.get(n, paths.get(n.split("/")[0], "")) for n in ignored)
    matmul = ignored_node_names(exported, folded, [r".*aten::matmul.*"])
    assert len(matmul) == 1 and "class_embed" not in str(matmul)


@pytest.mark.parametrize("batch_first", [True, False])
def test_written_out_attention_equals_multihead_attention(batch_first):
    from hoi_edge.model.ops import WrittenOutAttention, write_out_attention

    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(32, 4, batch_first=batch_first).eval()
    torch.nn.init.normal_(mha.in_proj_bias)
    q = torch.randn(2, 7, 32) if batch_first else torch.randn(7, 2, 32)
    kv = torch.randn(2, 5, 32) if batch_first else torch.randn(5, 2, 32)
    want = mha(q, kv, kv, need_weights=False)[0]
    got, weights = WrittenOutAttention(mha)(q, kv, kv, need_weights=False)
    assert weights is None
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="no mask"):
        WrittenOutAttention(mha)(q, kv, kv, attn_mask=torch.zeros(7, 5))
    net = torch.nn.Sequential(torch.nn.Linear(32, 32))
    net.attn = mha
    assert write_out_attention(net) == 1 and isinstance(net.attn, WrittenOutAttention)


def test_decomposed_layer_norm_equals_layer_norm():
    from hoi_edge.model.ops import DecomposedLayerNorm, decompose_layer_norms

    torch.manual_seed(0)
    norm = torch.nn.LayerNorm(16)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    for shape in ((2, 5, 16), (3, 16)):
        x = torch.randn(*shape) * 3 + 1
        torch.testing.assert_close(DecomposedLayerNorm(norm)(x), norm(x), atol=1e-5, rtol=1e-5)
    net = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.LayerNorm(16))
    assert decompose_layer_norms(net) == 1 and isinstance(net[1], DecomposedLayerNorm)
