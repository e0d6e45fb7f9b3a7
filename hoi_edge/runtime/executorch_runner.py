"""ExecuTorch backend: .pte programs (XNNPACK-delegated) through the ExecuTorch Python runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hoi_edge.runtime.base import ArtifactRunner


class ExecuTorchRunner(ArtifactRunner):
    name = "executorch"

    def _load(self, path: Path):
        import executorch.kernels.quantized  # noqa: F401  q/dq kernels for ops XNNPACK did not take
        from executorch.runtime import Runtime

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        return Runtime.get().load_program(str(path)).load_method("forward")

    def _run(self, unit, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = unit.execute([torch.from_numpy(x.copy()) for x in inputs])  # copy: standard strides
        return [o.numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in outputs]
