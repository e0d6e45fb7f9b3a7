"""ExecuTorch runs XNNPACK on its own threadpool: the runner's num_threads must size that pool."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from hoi_edge.runtime.executorch_runner import ExecuTorchRunner, executorch_threads, set_executorch_threads
from hoi_edge.runtime.manifest import UnitSpec


def _tiny_pte(path) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval()
    program = torch.export.export(net, (torch.zeros(1, 8),))
    path.write_bytes(to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)


def test_num_threads_sizes_the_executorch_threadpool(tmp_path):
    _tiny_pte(tmp_path / "unit.pte")
    manifest = SimpleNamespace(units={"unit": UnitSpec(file="unit.pte", inputs={"x": [1, 8]}, outputs=["y"])})
    before = executorch_threads()
    try:
        runner = ExecuTorchRunner(tmp_path, manifest, num_threads=1, devices={"unit": "xnnpack"})
        assert executorch_threads() == 1
        (y,) = runner.call("unit", np.ones((1, 8), np.float32))
        assert y.shape == (1, 4)
        ExecuTorchRunner(tmp_path, manifest, num_threads=2, devices={"unit": "xnnpack"})
        assert executorch_threads() == 2
    finally:
        set_executorch_threads(before)
