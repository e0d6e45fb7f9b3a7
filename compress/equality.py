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

#: How faithfully a runtime must execute the graph it was given (ExecuTorch: the ``convert_pt2e`` graph, whose
#: quantize/dequantize pairs XNNPACK turns into integer kernels that round otherwise). Measured on the AMD EPYC
#: (AVX-512 VNNI): NanoDet-g's post-training INT8 detector 0.9988 (scores), a distilled one 0.998; a single CSP
#: block or conv layer >= 0.99999 — the difference accumulates over the backbone, it is not a misplaced op.
RUNTIME_FIDELITY = 0.995

Run = Callable[[tuple[np.ndarray, ...]], Sequence[np.ndarray]]


@dataclass
class Equality:
    """Worst cosine per output of the converted unit against the student, and where it was measured."""

    per_output: dict[str, float]
    runtime: str                     # which engine ran the converted unit, and how (precision hints)
    samples: int
    cpu: dict[str, Any] = field(default_factory=dict)     # hoi_edge.core.cpu.cpu_info().to_dict()
    emulated: Equality | None = None   # the same check with the INT8 kernels of a CPU without VNNI (OpenVINO)
    note: str | None = None            # why the emulated check did not run, when it could not

    @property
    def worst(self) -> float:
        values = list(self.per_output.values()) + (list(self.emulated.per_output.values()) if self.emulated else [])
        return min(values)

    @property
    def passed(self) -> bool:
        return self.worst >= MATCH_COSINE

    def reason(self) -> str | None:
        """Why the unit is discarded, or None when it matches."""
        if self.passed:
            return None
        failing = [e for e in (self, self.emulated) if e is not None and min(e.per_output.values()) < MATCH_COSINE]
        where = "; ".join(f"{e.cpu.get('isa', 'this CPU')} ({e.runtime}): output cosine "
                          + ", ".join(f"{k} {v:.4f}" for k, v in e.per_output.items() if v < MATCH_COSINE)
                          for e in failing)
        return f"the converted unit does not reproduce the distilled model on {where} < {MATCH_COSINE}"

    def describe(self) -> dict[str, Any]:
        out = {"per_output_cosine": {k: round(v, 6) for k, v in self.per_output.items()}, "worst": self.worst,
               "threshold": MATCH_COSINE, "passed": self.passed, "runtime": self.runtime,
               "samples": self.samples, "cpu": self.cpu}
        if self.emulated is not None:
            out["emulated"] = self.emulated.describe()
        if self.note:
            out["note"] = self.note
        return out


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


def sample_tensors(sample: Sequence[np.ndarray]) -> tuple[Any, ...]:
    """One unit sample (NumPy arrays) as the contiguous float32 torch tensors a unit's forward takes."""
    import torch

    return tuple(torch.from_numpy(np.array(a, dtype=np.float32, order="C")) for a in sample)


def torch_run(module: Any) -> Run:
    """``module`` (in eval mode) on NumPy inputs, outputs as float32 arrays."""
    import torch

    def run(sample: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(*sample_tensors(sample))
        out = (out,) if isinstance(out, torch.Tensor) else tuple(out)
        return [o.detach().float().numpy() for o in out]

    return run


#: The ISA the check emulates on a VNNI CPU for artifacts meant to run anywhere (``--int8-cpu any``): oneDNN,
#: inside OpenVINO's CPU plugin, honours ``ONEDNN_MAX_CPU_ISA`` and then runs the AVX2 INT8 kernels, whose
#: u8 x s8 pair sums saturate int16 (what NNCF's OverflowFix avoids).
EMULATED_ISA = "AVX2"


def openvino_emulated_check(model: Any, samples: Sequence[tuple[np.ndarray, ...]], expected: Sequence[Sequence[np.ndarray]],
                            names: Sequence[str], isa: str = EMULATED_ISA) -> Equality | str:
    """:func:`check_equality` of an ``ov.Model`` run in a fresh process limited to ``isa``'s INT8 kernels
    (``ONEDNN_MAX_CPU_ISA``), inference precision f32 (bf16 kernels do not exist below AVX-512); or, when the
    emulation cannot run the model, why (the plugin still picks some kernels by the real CPU's features, and a
    few of them then find no oneDNN primitive: an emulation limit, not a property of the model)."""
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        ov.save_model(model, Path(tmp) / "unit.xml", compress_to_fp16=False)
        arrays = {f"in{i}_{k}": np.asarray(a, np.float32) for i, s in enumerate(samples) for k, a in enumerate(s)}
        arrays.update({f"out{i}_{k}": np.asarray(a, np.float32) for i, e in enumerate(expected) for k, a in enumerate(e)})
        np.savez(Path(tmp) / "data.npz", **arrays)
        env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
        proc = subprocess.run([sys.executable, "-m", "compress.equality", tmp, str(len(samples)), json.dumps(list(names))],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return f"the emulated {isa} check could not run here: {last[:200]}"
        per_output = json.loads(proc.stdout.strip().splitlines()[-1])
    from hoi_edge.core.cpu import cpu_info

    cpu = {**cpu_info().to_dict(), "isa": f"{isa} (emulated: ONEDNN_MAX_CPU_ISA={isa})", "int8_isa": isa,
           "vnni": False}
    return Equality(per_output=per_output, runtime=f"openvino CPU, inference precision f32, {isa} kernels",
                    samples=len(samples), cpu=cpu)


def fake_quant_reference(model: Any) -> Any:
    """A copy of an INT8 ``ov.Model`` in which every FakeQuantize is written out as f32 arithmetic (clamp, scale,
    round half to even, rescale): OpenVINO's CPU plugin then cannot fuse it into INT8 kernels, so the copy computes
    what the quantized model *means*, exactly, on any CPU. Against it, the plugin's INT8 kernels show the int16
    saturation of a CPU without VNNI on the CPU itself."""
    import openvino.opset13 as ops

    clone = model.clone()
    for node in clone.get_ordered_ops():
        if node.get_type_name() != "FakeQuantize":
            continue
        x, il, ih, ol, oh = (node.input_value(k) for k in range(5))
        steps = float(node.get_attributes()["levels"] - 1)
        lo, hi = ops.minimum(il, ih), ops.maximum(il, ih)
        clamped = ops.minimum(ops.maximum(x, lo), hi)
        q = ops.round(ops.multiply(ops.divide(ops.subtract(clamped, il), ops.subtract(ih, il)),
                                   ops.constant(np.float32(steps))), "half_to_even")
        out = ops.add(ops.multiply(ops.divide(q, ops.constant(np.float32(steps))), ops.subtract(oh, ol)), ol)
        node.output(0).replace(out.output(0))
    clone.validate_nodes_and_infer_types()
    return clone


def _emulated_child(folder: str, count: int, names: list[str]) -> dict[str, float]:
    import openvino as ov

    data = np.load(f"{folder}/data.npz")
    core = ov.Core()
    compiled = core.compile_model(f"{folder}/unit.xml", "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    worst = {n: 1.0 for n in names}
    for i in range(count):
        inputs = [data[f"in{i}_{k}"] for k in range(len(compiled.inputs))]
        got = compiled(inputs)
        for k, (name, port) in enumerate(zip(names, compiled.outputs)):
            worst[name] = min(worst[name], cosine(data[f"out{i}_{k}"], got[port]))
    return worst


if __name__ == "__main__":      # the emulated-ISA child of openvino_emulated_check
    import json
    import sys

    print(json.dumps(_emulated_child(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))))
