"""Is a converted unit the model that was distilled? Run both on the same inputs and compare every output.

Distillation trains a fake-quantized PyTorch student; what ships is a conversion of it (an OpenVINO IR, a
QDQ ONNX graph, an ExecuTorch program) run by another engine in real INT8 arithmetic. The conversion may
misplace a quantizer (``torch.jit.trace`` once put NNCF's quantizers on the wrong ops), the engine may
compute the floating-point layers in bf16 (OpenVINO's CPU plugin does by default on AVX512-BF16 CPUs), or
the CPU may saturate (u8 x s8 pair sums overflow int16 without VNNI, which NNCF's OverflowFix avoids). The
check catches each of these: every output's worst cosine over the checked samples must reach
:data:`MATCH_COSINE`. The result names the CPU and its ISA, since INT8 arithmetic depends on them, and goes
into the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from hoi_edge.core.similarity import cosine

#: What "the artifact is the distilled model" means: every output's cosine similarity to the student's, on
#: calibration inputs, at least this (an FP32 conversion reaches ~1 - 1e-7; INT8 kernels that round at
#: other bin edges than the fake quantizers stay above 0.9995 on the units measured).
MATCH_COSINE = 0.999

Run = Callable[[tuple[np.ndarray, ...]], Sequence[np.ndarray]]


@dataclass
class Equality:
    """Worst cosine per output of the converted unit against the student, and where it was measured."""

    per_output: dict[str, float]
    runtime: str                     # which engine ran the converted unit, and how (precision hints)
    samples: int
    cpu: dict[str, Any] = field(default_factory=dict)     # hoi_edge.core.cpu.cpu_info().to_dict()

    @property
    def worst(self) -> float:
        return min(self.per_output.values())

    @property
    def passed(self) -> bool:
        return self.worst >= MATCH_COSINE

    def reason(self) -> str | None:
        """Why the unit is discarded, or None when it matches."""
        if self.passed:
            return None
        bad = ", ".join(f"{k} {v:.4f}" for k, v in self.per_output.items() if v < MATCH_COSINE)
        return (f"the converted unit does not reproduce the distilled model on {self.cpu.get('isa', 'this CPU')} "
                f"({self.runtime}): output cosine {bad} < {MATCH_COSINE}")

    def describe(self) -> dict[str, Any]:
        return {"per_output_cosine": {k: round(v, 6) for k, v in self.per_output.items()}, "worst": self.worst,
                "threshold": MATCH_COSINE, "passed": self.passed, "runtime": self.runtime,
                "samples": self.samples, "cpu": self.cpu}


def check_equality(expected: Run, actual: Run, samples: Sequence[tuple[np.ndarray, ...]], names: Sequence[str],
                   runtime: str, checks: int = 3) -> Equality:
    """Run ``expected`` (the student) and ``actual`` (the converted unit) on the first ``checks`` samples."""
    from hoi_edge.core.cpu import cpu_info

    worst = {name: 1.0 for name in names}
    used = list(samples)[:checks]
    for sample in used:
        want, got = expected(sample), actual(sample)
        if len(want) != len(got):
            raise ValueError(f"the converted unit has {len(got)} outputs, the student {len(want)}")
        for name, w, g in zip(names, want, got):
            worst[name] = min(worst[name], cosine(np.asarray(w), np.asarray(g)))
    return Equality(per_output=worst, runtime=runtime, samples=len(used), cpu=cpu_info().to_dict())


def torch_run(module: Any) -> Run:
    """``module`` (in eval mode) on NumPy inputs, outputs as float32 arrays."""
    import torch

    def run(sample: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        x = tuple(torch.from_numpy(np.array(a, dtype=np.float32, order="C")) for a in sample)
        with torch.no_grad():
            out = module(*x)
        out = (out,) if isinstance(out, torch.Tensor) else tuple(out)
        return [o.detach().float().numpy() for o in out]

    return run
