"""Post-training INT8 versus distilled INT8 (OpenVINO), per network, against the FP32 network.

    python benchmarks/bench_distill.py                       # the tiny random test model
    python benchmarks/bench_distill.py --model model.pt --steps 300

For each export unit: the cosine similarity to FP32 of every output of (a) NNCF post-training INT8
OpenVINO IR and (b) the distilled INT8 IR (``compress.distill``), on calibration images the
quantizers never saw, plus the distillation loss before/after. This is the source of docs/compression.md's
distillation numbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import openvino as ov  # noqa: E402
from common import SHARED, cpu_caption  # noqa: E402

from compress.bake import bake_text_embeddings  # noqa: E402
from compress.calibration import CalibrationConfig, collect_unit_inputs, list_images  # noqa: E402
from compress.distill import DistillConfig, PairScores, convert_distilled, quantize_and_distill  # noqa: E402
from compress.quantize import QuantizationConfig, quantize_openvino  # noqa: E402
from hoi_edge.core.similarity import cosine  # noqa: E402
from hoi_edge.core.units import EXPORT_UNITS  # noqa: E402
from hoi_edge.runtime.torch_runner import detector_from_model  # noqa: E402
from hoi_edge.weights.checkpoint import load_model  # noqa: E402
from targets.contract import as_tensors  # noqa: E402


def mean_cosines(compiled, fp32, samples) -> list[float]:
    """Per output: mean over samples of cos(INT8 output, FP32 output)."""
    sims = []
    for s in samples:
        want = list(fp32([np.asarray(a) for a in s]).values())
        have = list(compiled([np.asarray(a) for a in s]).values())
        sims.append([cosine(h, w) for h, w in zip(have, want)])
    return list(np.mean(sims, axis=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="checkpoint (default: the tiny random test model)")
    ap.add_argument("--calib", type=Path, default=SHARED / "photos")
    ap.add_argument("--held-out", type=int, default=4, help="images kept out of calibration for scoring")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=DistillConfig.lr, help="as export --distill-lr")
    args = ap.parse_args()

    if args.model is None:
        from hoi_edge.testing import make_tiny_model

        model = make_tiny_model()
    else:
        model = load_model(args.model)
    images = list_images(CalibrationConfig(args.calib, max_images=10_000))
    calib, held = images[:-args.held_out], images[-args.held_out:]
    reference = detector_from_model(model)
    train = collect_unit_inputs(reference, calib, desc="calibration")
    test = collect_unit_inputs(reference, held, desc="held-out")
    qcfg, dcfg = QuantizationConfig(), DistillConfig(steps=args.steps, lr=args.lr)
    pair_scores = PairScores(bake_text_embeddings(model), reference.spec.scoring.pair_scale)  # as export does
    rows = []
    for unit in EXPORT_UNITS:
        module = model.export_unit(unit).eval()
        example = as_tensors(train[unit][0])
        fp32_ir = ov.convert_model(module, example_input=example)
        fp32 = ov.compile_model(fp32_ir, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        ptq = ov.compile_model(quantize_openvino(fp32_ir, unit, train[unit], qcfg), "CPU",
                               {"INFERENCE_PRECISION_HINT": "f32"})
        result = quantize_and_distill(module, unit, train[unit], qcfg, dcfg, pair_scores=pair_scores)
        names = [f"output{i}" for i in range(len(fp32.outputs))]
        kd_ir, _, discarded = convert_distilled(result.module, example, train[unit], names)   # as export checks it
        kd = ov.compile_model(kd_ir, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}) if kd_ir is not None else None
        rows.append((unit, mean_cosines(ptq, fp32, test[unit]),
                     mean_cosines(kd, fp32, test[unit]) if kd is not None else discarded,
                     result.loss_before, result.loss_after))
    print(f"\n{len(calib)} calibration images, {len(held)} held-out images; {args.steps} distillation steps, "
          f"lr {args.lr}\n")
    print("| Unit | Outputs | cos(PTQ INT8, FP32) | cos(distilled INT8, FP32) | distill loss before -> after |")
    print("| --- | --- | --- | --- | --- |")
    names = {"detector": "logits, boxes, features", "clip_image": "global, patches", "hoi_head": "pair embeddings (+ pair logits in the loss)"}
    for unit, ptq_c, kd_c, before, after in rows:
        fmt = lambda cs: cs if isinstance(cs, str) else ", ".join(f"{c:.4f}" for c in cs)  # noqa: E731
        print(f"| {unit} | {names[unit]} | {fmt(ptq_c)} | {fmt(kd_c)} | {before:.5f} -> {after:.5f} |")
    print(f"\nINT8 IRs compiled with f32 inference precision. {cpu_caption()}")


if __name__ == "__main__":
    main()
