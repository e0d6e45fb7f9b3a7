"""A small, independent interpreter of the TF.js NanoDet graph (test-only ground truth).

It executes the GraphDef node by node with TensorFlow semantics (NHWC Conv2D/MaxPool,
HWIO kernels, explicit Pad, half-pixel ResizeBilinear ...), so the PyTorch NanoDet's raw
outputs can be compared with what the TF.js graph itself computes, without TensorFlow.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hoi_edge.model.nanodet_tfjs import TfjsGraph


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def _pad(x: torch.Tensor, paddings: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    pads: list[int] = []
    for before, after in reversed(paddings.tolist()):
        pads += [int(before), int(after)]
    return F.pad(x, pads, value=value)


def _attr_list(node: dict, key: str) -> list[int]:
    return [int(v) for v in node["attr"][key]["list"]["i"]]


def _check_valid(node: dict) -> None:
    padding = node["attr"].get("padding", {}).get("s")
    fmt = node["attr"].get("data_format", {}).get("s")
    assert padding == "VkFMSUQ=", f"{node['name']}: only VALID padding is interpreted"   # b64 'VALID'
    assert fmt in (None, "TkhXQw=="), f"{node['name']}: only NHWC is interpreted"       # b64 'NHWC'


def run_graph(graph: TfjsGraph, image: torch.Tensor, outputs: list[str]) -> list[torch.Tensor]:
    """Evaluate ``outputs`` (node names) for the graph's single placeholder fed with ``image``."""
    cache: dict[str, list[torch.Tensor]] = {}

    def value(ref: str) -> torch.Tensor:
        name, _, index = ref.lstrip("^").partition(":")
        return evaluate(name)[int(index or 0)]

    def evaluate(name: str) -> list[torch.Tensor]:
        if name in cache:
            return cache[name]
        node = graph.nodes[name]
        op, ins = node["op"], [value(r) for r in node.get("input", [])]
        if op == "Placeholder":
            out = [image]
        elif op == "Const":
            out = [torch.from_numpy(np.array(graph.tensors[name]))]
        elif op == "Identity":
            out = [ins[0]]
        elif op == "Transpose":
            out = [ins[0].permute(*ins[1].tolist())]
        elif op == "Pad":
            out = [_pad(ins[0], ins[1])]
        elif op == "PadV2":
            out = [_pad(ins[0], ins[1], float(ins[2]))]
        elif op == "Conv2D":
            _check_valid(node)
            stride = _attr_list(node, "strides")[1:3]
            out = [_nhwc(F.conv2d(_nchw(ins[0]), ins[1].float().permute(3, 2, 0, 1), stride=stride))]
        elif op == "MaxPool":
            _check_valid(node)
            out = [_nhwc(F.max_pool2d(_nchw(ins[0]), _attr_list(node, "ksize")[1:3],
                                      _attr_list(node, "strides")[1:3]))]
        elif op in ("Add", "AddV2"):
            out = [ins[0] + ins[1]]
        elif op == "LeakyRelu":
            out = [F.leaky_relu(ins[0], node["attr"]["alpha"]["f"])]
        elif op == "ConcatV2":
            out = [torch.cat(ins[:-1], dim=int(ins[-1]))]
        elif op == "ResizeBilinear":
            assert node["attr"]["half_pixel_centers"]["b"] and not node["attr"]["align_corners"]["b"]
            size = [int(v) for v in ins[1].tolist()]
            out = [_nhwc(F.interpolate(_nchw(ins[0]), size=size, mode="bilinear", align_corners=False))]
        elif op == "SplitV":
            out = list(torch.split(ins[0], [int(v) for v in ins[1].tolist()], dim=int(ins[2])))
        elif op == "Sigmoid":
            out = [ins[0].sigmoid()]
        elif op == "Reshape":
            out = [ins[0].reshape([int(v) for v in ins[1].tolist()])]
        elif op == "SparseToDense":
            indices, shape, values, default = ins
            dense = torch.full([int(v) for v in shape.tolist()], default.item(), dtype=values.dtype)
            for idx, v in zip(indices.reshape(len(values), indices.shape[-1]).tolist(), values.tolist()):
                dense[tuple(idx)] = v
            out = [dense]
        else:
            raise NotImplementedError(f"op {op} ({name})")
        cache[name] = out
        return out

    return [value(name) for name in outputs]
