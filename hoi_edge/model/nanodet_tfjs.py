"""Importing a NanoDet TF.js *graph model* (``model.json`` + ``.bin`` shard) into :class:`NanoDet`.

The JSON's ``modelTopology`` is a TensorFlow GraphDef (ONNX -> TF -> TF.js), its
``weightsManifest`` the byte layout of every constant in the shard (float16-quantised floats,
int32 shape constants). Batch norm is already folded into the kernels, so the model is folded
first (:meth:`NanoDet.fold_batchnorm`) and each TF ``Conv2D`` kernel (HWIO) plus the bias its
``Add`` consumer adds maps 1:1 onto a folded conv (OIHW). The graph's ``Conv2D`` nodes are named
``convolution``, ``convolution_1``, ... in the order the exported network ran them, which is the
order of :meth:`NanoDet.conv_layers`. Every mapping is checked: each kernel's shape, stride and
explicit padding against its conv, every weight used exactly once, every manifest tensor
referenced by the graph, every conv assigned. A mismatch is one :class:`WeightsError` line naming
the file and the tensor.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from hoi_edge.core.errors import WeightsError
from hoi_edge.model.nanodet import NanoDet
from hoi_edge.weights.fetch import verify_sha256

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANTIZED = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}
_PASS_THROUGH = {"Transpose", "Identity"}
_BIAS_OPS = {"Add", "AddV2", "BiasAdd"}
# float constants that are part of the graph's arithmetic, not weights (max-pool padding value)
_STRUCTURAL_FLOAT_OPS = {"PadV2"}


@dataclass
class TfjsGraph:
    """A parsed graph model: nodes by name (file order) and every constant's value."""

    json_path: Path
    nodes: dict[str, dict] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    consumers: dict[str, list[str]] = field(default_factory=dict)

    def fail(self, message: str) -> WeightsError:
        return WeightsError(f"{self.json_path}: {message}")

    @staticmethod
    def source(ref: str) -> str:
        """Node name of an input reference (drops ``:N`` output index and ``^`` control marks)."""
        return ref.lstrip("^").split(":")[0]


def _read_json(json_path: Path) -> dict:
    if not json_path.is_file():
        raise WeightsError(f"TF.js model file not found: {json_path}")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{json_path}: not a readable TF.js model.json ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("modelTopology"), dict) \
            or not isinstance(data.get("weightsManifest"), list):
        raise WeightsError(f"{json_path}: not a TF.js graph model (needs modelTopology and weightsManifest)")
    return data


def _entry_layout(json_path: Path, entry: dict) -> tuple[np.dtype, int, np.dtype | None]:
    """(stored dtype, element count, dequantised dtype or None) of one manifest entry."""
    name, dtype, shape = entry.get("name"), entry.get("dtype"), entry.get("shape")
    if not isinstance(name, str) or not isinstance(shape, list) or dtype not in _DTYPES:
        raise WeightsError(f"{json_path}: manifest entry {name!r} has an unsupported dtype {dtype!r} "
                           f"or a malformed shape {shape!r}")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    quant = entry.get("quantization")
    if quant:
        stored = _QUANTIZED.get(quant.get("dtype"))
        if stored is None:
            raise WeightsError(f"{json_path}: tensor {name!r} uses unsupported quantization {quant.get('dtype')!r}")
        return np.dtype(stored), count, np.dtype(_DTYPES[dtype])
    return np.dtype(_DTYPES[dtype]), count, None


def _decode(entry: dict, raw: np.ndarray, target: np.dtype | None) -> np.ndarray:
    quant = entry.get("quantization") or {}
    if target is None:
        value = raw
    elif quant.get("dtype") == "float16":
        value = raw.astype(target)
    else:                                  # affine uint8/uint16: q * scale + min
        value = (raw.astype(np.float32) * float(quant["scale"]) + float(quant["min"])).astype(target)
    return value.reshape(entry["shape"])


def read_tfjs_graph(json_path: str | os.PathLike[str], bin_path: str | os.PathLike[str] | None = None) -> TfjsGraph:
    """Parse model.json and its shard(s); check that constants and manifest entries match 1:1."""
    json_path = Path(json_path)
    data = _read_json(json_path)
    graph = TfjsGraph(json_path)
    for node in data["modelTopology"].get("node", []):
        graph.nodes[node["name"]] = node
    for node in graph.nodes.values():
        for ref in node.get("input", []):
            graph.consumers.setdefault(graph.source(ref), []).append(node["name"])

    groups = data["weightsManifest"]
    shard_paths = [json_path.parent / p for g in groups for p in g.get("paths", [])]
    if bin_path is not None:
        if len(shard_paths) > 1:
            raise WeightsError(f"{json_path}: the manifest names {len(shard_paths)} shards; "
                               "pass no bin path, keep them beside the JSON")
        shard_paths = [Path(bin_path)]
    for shard in shard_paths:
        if not shard.is_file():
            raise WeightsError(f"TF.js weights shard not found: {shard} (named by {json_path})")
    blob = b"".join(p.read_bytes() for p in shard_paths)
    shard_label = ", ".join(str(p) for p in shard_paths)

    entries = [e for g in groups for e in g.get("weights", [])]
    names = [e.get("name") for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise graph.fail(f"manifest lists tensor {dupes[0]!r} more than once")
    consts = {n for n, node in graph.nodes.items() if node.get("op") == "Const"}
    missing = sorted(consts - set(names))
    if missing:
        raise graph.fail(f"tensor {missing[0]!r} is used by the graph but missing from the weights "
                         f"manifest ({len(missing)} missing)")
    unused = sorted(n for n in names if n not in consts or n not in graph.consumers)
    if unused:
        raise graph.fail(f"tensor {unused[0]!r} in the weights manifest is not used by the graph "
                         f"({len(unused)} unused)")

    layouts = [_entry_layout(json_path, e) for e in entries]
    total = sum(dt.itemsize * count for dt, count, _ in layouts)
    if total != len(blob):
        raise WeightsError(f"{shard_label}: {len(blob)} bytes, but the manifest in {json_path} "
                           f"describes {total}")
    offset = 0
    for entry, (stored, count, target) in zip(entries, layouts):
        raw = np.frombuffer(blob, dtype=stored, count=count, offset=offset)
        offset += stored.itemsize * count
        graph.tensors[entry["name"]] = _decode(entry, raw, target)
    return graph


def _conv_nodes(graph: TfjsGraph) -> list[dict]:
    """Conv2D nodes in the order the exported network ran them (``convolution_N`` suffixes)."""
    convs = [n for n in graph.nodes.values() if n.get("op") == "Conv2D"]

    def index(node: dict) -> int:
        match = re.search(r"convolution(?:_(\d+))?$", node["name"])
        if match is None:
            raise graph.fail(f"Conv2D node {node['name']!r} does not follow the convolution_N naming "
                             "that orders the convs")
        return int(match.group(1) or 0)

    return sorted(convs, key=index)


def _const_input(graph: TfjsGraph, node: dict, position: int) -> str:
    inputs = node.get("input", [])
    name = graph.source(inputs[position]) if len(inputs) > position else ""
    if graph.nodes.get(name, {}).get("op") != "Const":
        raise graph.fail(f"{node['op']} node {node['name']!r} input {position} is not a constant tensor")
    return name


def _bias_of(graph: TfjsGraph, conv: dict) -> tuple[str, dict]:
    adds = [graph.nodes[c] for c in graph.consumers.get(conv["name"], [])]
    found = []
    for add in adds:
        if add.get("op") not in _BIAS_OPS:
            continue
        for ref in add.get("input", []):
            src = graph.source(ref)
            if graph.nodes.get(src, {}).get("op") == "Const":
                found.append((src, add))
    if len(adds) != 1 or len(found) != 1:
        raise graph.fail(f"Conv2D node {conv['name']!r} is not followed by exactly one bias Add "
                         "(batch norm not folded?)")
    return found[0]


def _explicit_padding(graph: TfjsGraph, conv: dict) -> int:
    """Symmetric spatial padding applied by the Pad that feeds ``conv`` (0 when none)."""
    node = graph.nodes.get(graph.source(conv["input"][0]), {})
    while node.get("op") in _PASS_THROUGH:
        node = graph.nodes.get(graph.source(node["input"][0]), {})
    if node.get("op") not in ("Pad", "PadV2"):
        return 0
    pads = graph.tensors[graph.source(node["input"][1])].reshape(-1).tolist()
    nonzero = sorted(p for p in pads if p)
    if len(nonzero) != 4 or len(set(nonzero)) != 1:
        raise graph.fail(f"Pad feeding {conv['name']!r} is not a symmetric spatial padding: {pads}")
    return int(nonzero[0])


def _check_input_size(graph: TfjsGraph, size: int) -> None:
    inputs = [n for n in graph.nodes.values() if n.get("op") == "Placeholder"]
    if len(inputs) != 1:
        raise graph.fail(f"expected one input placeholder, found {len(inputs)}")
    dims = [int(d.get("size", -1)) for d in inputs[0].get("attr", {}).get("shape", {}).get("shape", {}).get("dim", [])]
    if len(dims) != 4 or dims[1] != 3 or any(d not in (-1, size) for d in dims[2:]):
        raise graph.fail(f"input {inputs[0]['name']!r} has shape {dims}; the model takes [N, 3, {size}, {size}]")


def _attr_ints(node: dict, key: str) -> list[int]:
    return [int(v) for v in node.get("attr", {}).get(key, {}).get("list", {}).get("i", [])]


def load_nanodet_tfjs(model: NanoDet, json_path: str | os.PathLike[str],
                      bin_path: str | os.PathLike[str] | None = None,
                      expected_sha256: Mapping[str, str] | None = None) -> None:
    """Fold ``model``'s batch norms and load the TF.js graph model's weights into it, checked 1:1.

    Nothing is written into the model unless every check passes (it is folded either way).

    ``expected_sha256`` (``{"nanodet.json": ..., "nanodet.bin": ...}``, the family's release entry) checks both
    files first; the family's loader always passes it. None only for a different, deliberately converted graph
    of the same architecture.
    """
    json_path = Path(json_path)
    if expected_sha256 is not None:
        if not json_path.is_file():
            raise WeightsError(f"TF.js model file not found: {json_path}")
        shard = Path(bin_path) if bin_path is not None else json_path.with_name("nanodet.bin")
        if not shard.is_file():
            raise WeightsError(f"TF.js weights shard not found: {shard} (beside {json_path})")
        verify_sha256(json_path, expected_sha256["nanodet.json"])
        verify_sha256(shard, expected_sha256["nanodet.bin"])
    graph = read_tfjs_graph(json_path, bin_path)
    _check_input_size(graph, model.image_size)
    model.fold_batchnorm()
    targets = model.conv_layers()
    convs = _conv_nodes(graph)
    if len(convs) != len(targets):
        raise graph.fail(f"graph has {len(convs)} Conv2D nodes, the model {len(targets)} convs")

    assigned: dict[str, str] = {}
    updates: list[tuple[torch.Tensor, np.ndarray]] = []
    for node, (module_name, conv) in zip(convs, targets):
        kernel_name = _const_input(graph, node, 1)
        bias_name, _ = _bias_of(graph, node)
        for tensor, role in ((kernel_name, "kernel"), (bias_name, "bias")):
            if tensor in assigned:
                raise graph.fail(f"tensor {tensor!r} is used twice ({assigned[tensor]} and {module_name} {role})")
            assigned[tensor] = f"{module_name} {role}"
        kernel = graph.tensors[kernel_name]
        expected = (conv.kernel_size[0], conv.kernel_size[1], conv.in_channels // conv.groups, conv.out_channels)
        if kernel.shape != expected:
            raise graph.fail(f"tensor {kernel_name!r} has shape {list(kernel.shape)}; {module_name} "
                             f"expects an HWIO kernel of {list(expected)}")
        bias = graph.tensors[bias_name]
        if bias.shape != (conv.out_channels,):
            raise graph.fail(f"tensor {bias_name!r} has shape {list(bias.shape)}; {module_name} "
                             f"expects a bias of [{conv.out_channels}]")
        strides = _attr_ints(node, "strides")
        if strides[1:3] != list(conv.stride):
            raise graph.fail(f"Conv2D node {node['name']!r} has strides {strides}; {module_name} "
                             f"has stride {list(conv.stride)}")
        mode = base64.b64decode(node.get("attr", {}).get("padding", {}).get("s", "")).decode(errors="replace")
        pad = _explicit_padding(graph, node)
        if mode != "VALID" or pad != conv.padding[0]:
            raise graph.fail(f"Conv2D node {node['name']!r} is padded by {pad} ({mode}); {module_name} "
                             f"pads by {conv.padding[0]}")
        updates.append((conv.weight, kernel.transpose(3, 2, 0, 1)))
        updates.append((conv.bias, bias))

    for name, value in graph.tensors.items():
        if name in assigned or not np.issubdtype(value.dtype, np.floating):
            continue
        users = {graph.nodes[c].get("op") for c in graph.consumers.get(name, [])}
        if not users <= _STRUCTURAL_FLOAT_OPS:
            raise graph.fail(f"tensor {name!r} (used by {', '.join(sorted(users))}) is not mapped onto the model")
    with torch.no_grad():
        for param, value in updates:
            param.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))


def nanodet_from_tfjs(json_path: str | os.PathLike[str], bin_path: str | os.PathLike[str] | None = None,
                      **kwargs) -> NanoDet:
    """A folded, eval-mode :class:`NanoDet` (upstream NanoDet-g defaults) with the TF.js weights."""
    model = NanoDet(**kwargs)
    load_nanodet_tfjs(model, json_path, bin_path)
    return model.eval()
