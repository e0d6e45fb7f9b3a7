"""ONNX INT8 on full-size models: attention weights must be initializers before NNCF sees them."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import torch

from compress.quantize import fold_constants


class _Attention(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(128, 4)     # in_proj: 384 x 128, split into q / k,v

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.attn(x + 1.0, memory, memory, need_weights=False)[0]      # DETR-style: query != key


def _matmuls_on_computed_weights(model) -> int:
    """MatMuls whose weight is an initializer seen through Split/Transpose nodes (NNCF cannot treat it as a weight)."""
    inits = {i.name for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}

    def behind_ops(name: str) -> bool:
        node = producer.get(name)
        while node is not None and node.op_type in ("Split", "Transpose"):
            if node.input[0] in inits:
                return True
            node = producer.get(node.input[0])
        return False

    return sum(1 for n in model.graph.node if n.op_type == "MatMul" and behind_ops(n.input[1]))


def test_fold_constants_turns_split_attention_weights_into_initializers():
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    x, memory = torch.randn(10, 1, 128), torch.randn(12, 1, 128)
    model = torch.onnx.export(_Attention().eval(), (x, memory), dynamo=True, opset_version=18,
                              verbose=False).model_proto
    folded = fold_constants(model)
    assert _matmuls_on_computed_weights(model) > 0 and _matmuls_on_computed_weights(folded) == 0
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(  # noqa: E731
        None, {m.graph.input[0].name: x.numpy(), m.graph.input[1].name: memory.numpy()})[0]
    np.testing.assert_allclose(run(folded), run(model), atol=1e-5)
