"""ExecuTorch backend: .pte programs (XNNPACK-delegated) through the ExecuTorch Python runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hoi_edge.runtime.base import ArtifactRunner
from hoi_edge.runtime.manifest import Manifest


def set_executorch_threads(n: int) -> None:
    """Size ExecuTorch's own threadpool, the one XNNPACK delegates run on (torch's intra-op pool is not it).

    The pool is process-wide and must not be resized while a method executes; runners are built
    before any inference, which is when this is called.
    """
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

    _unsafe_reset_threadpool(int(n))


def executorch_threads() -> int:
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count

    return int(_threadpool_get_thread_count())


class ExecuTorchRunner(ArtifactRunner):
    """``device``: ``xnnpack`` (the backend the .pte files are lowered for at export); others are refused."""

    name = "executorch"

    def __init__(self, folder: Path, manifest: Manifest, num_threads: int | None = None, device: str | None = None,
                 throughput: bool = False, devices: dict[str, str] | None = None) -> None:
        if num_threads:
            set_executorch_threads(num_threads)
        super().__init__(folder, manifest, num_threads, device, throughput, devices)

    def _load(self, path: Path, device: str):
        import executorch.kernels.quantized  # noqa: F401  q/dq kernels for ops XNNPACK did not take
        from executorch.runtime import Runtime

        return Runtime.get().load_program(str(path)).load_method("forward")

    def _run(self, unit, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = unit.execute([torch.from_numpy(x.copy()) for x in inputs])  # copy: standard strides
        return [o.numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in outputs]
