"""What INT8 costs the NanoDet detector on every target, and what it buys: the table of docs/compression.md.

    python benchmarks/bench_int8.py                                  # preset clip4hoi-nanodet-tiny, 3 targets
    python benchmarks/bench_int8.py --targets openvino --distill-steps 50 --work /tmp/int8   # one target, reuse

Per target, four artifacts of one checkpoint (default: the offline default model, real NanoDet-g weights via
npm with a tiny random CLIP and HOI head, seed 0): FP32, post-training INT8 (the default recipe), accuracy-aware
INT8 (``--val``, ``--max-drop``: layers back to FP until each unit's task metric is within the drop) and
distilled INT8 (``--distill-steps``). Data, all from ``../shared/data``:

- calibration: frames 5, 15, 25, ... of ``videos/vtest.avi`` (the first ``--calib-frames`` of them);
- accuracy-aware validation: frames 3, 13, 23, ... (the first ``--val-frames``);
- evaluation, all held out from both: the 14 photos + the 2 HICO-DET test images ("16 images"), and every 10th
  frame 0, 10, ..., 790 of the video ("80 frames", a street scene with many people).

Columns: box AP50 / AP (overall, COCO-style, percent) of each artifact's detector instances **before the
pipeline's cut** (score >= 0.01, class-wise NMS, up to 100 per image) against the FP32 PyTorch reference's kept
instances (:func:`hoi_edge.validate.box_ap.detector_comparison`) on the 16 images and on the 80 frames; recall
at the pipeline's threshold on both; AP50 against the hand labels (``samples/labels/photos_hoi.json`` and the
2 HICO-DET images: incomplete labels, so compare rows, not with published numbers); median end-to-end latency
over the photos, all artifacts timed interleaved (each in its own process, ``hoi-edge benchmark``); the
detector file's size; and how many of the detector's convolution/matmul layers run in FP (the manifest's
``fp_layers``). Below the table: whether each target's default INT8 is within 1.0 AP50 of FP32, and whether
distillation beats post-training INT8 on the held-out photos.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED  # noqa: E402

from hoi_edge.targets_registry import target_names  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HAND_LABELS = (REPO / "samples" / "labels" / "photos_hoi.json",
               SHARED / "hicodet" / "real_test_images" / "annotations.json")
VARIANTS = ("fp32", "int8", "int8 accuracy-aware", "int8 distilled")
GOAL_AP50 = 99.0           # "within 1.0 AP50 of FP32": FP32 scores 100 against itself


def video_frames(video: Path, offset: int, step: int, limit: int | None, out: Path) -> list[Path]:
    """Frames ``offset``, ``offset + step``, ... of ``video`` (up to ``limit``) written once as PNG into ``out``."""
    from hoi_edge.data.sources import Source, iter_frames, write_image

    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for index, rgb in enumerate(iter_frames(Source("video", str(video)))):
        if limit is not None and len(paths) >= limit:
            break
        if index >= offset and (index - offset) % step == 0:
            path = out / f"frame{index:04d}.png"
            if not path.is_file():
                write_image(path, rgb)
            paths.append(path)
    if not paths:
        raise SystemExit(f"no frames read from {video}")
    return paths


def default_checkpoint(work: Path) -> Path:
    path = work / "clip4hoi-nanodet-tiny.pt"
    if not path.is_file():
        import torch

        from hoi_edge.data.vocabulary import load_vocabulary
        from hoi_edge.model.config import clip4hoi_nanodet_tiny
        from hoi_edge.weights.checkpoint import build_model, save_checkpoint

        torch.manual_seed(0)
        save_checkpoint(build_model(clip4hoi_nanodet_tiny(), load_vocabulary("hico")), path)
    return path


@dataclass
class Sets:
    photos: list[Path]            # the 16 images
    frames: list[Path]            # the held-out video frames
    calib: Path                   # folder of calibration frames
    val: Path                     # folder of validation frames
    labels: dict = field(default_factory=dict)     # file name -> hand-labelled ImageBoxes


def export_variants(ckpt: Path, target: str, sets: Sets, args, work: Path) -> dict[str, Path]:
    """The four artifacts of ``target`` (exported once; ``--reuse`` keeps folders already there)."""
    from compress.calibration import CalibrationConfig
    from compress.distill import DistillConfig
    from compress.quantize import QuantizationConfig
    from targets.export import ExportConfig, export_artifact

    out = {}
    for variant in VARIANTS:
        folder = work / "artifacts" / f"{target}-{variant.replace(' ', '-')}"
        out[variant] = folder
        if folder.is_dir() and args.reuse:
            continue
        int8 = variant != "fp32"
        qcfg = QuantizationConfig(subset_size=args.calib_frames, target_cpu=args.int8_cpu,
                                  max_drop=args.max_drop if variant == "int8 accuracy-aware" else None)
        print(f"exporting {target} {variant} ...", file=sys.stderr)
        export_artifact(ExportConfig(
            checkpoint=ckpt, target=target, out=folder, precision="int8" if int8 else "fp32", overwrite=True,
            calibration=CalibrationConfig(sets.calib, max_images=args.calib_frames) if int8 else None,
            validation=(CalibrationConfig(sets.val, max_images=args.val_frames, role="validation")
                        if variant == "int8 accuracy-aware" else None),
            quantization=qcfg,
            distill=(DistillConfig(steps=args.distill_steps, lr=args.distill_lr)
                     if variant == "int8 distilled" else None)), progress=False)
    return out


def detector_boxes(detector, paths: list[Path]) -> list:
    """Each image's detector instances at the low threshold (:func:`hoi_edge.validate.box_ap.detector_instances`)."""
    from hoi_edge.validate.box_ap import detector_instances

    boxes = []
    for path in paths:
        hw, det_in, _ = detector.prepare(path)
        boxes.append(detector_instances(detector.spec, detector.labels, detector.runner.detector(det_in), hw))
    return boxes


def score(candidate: list, reference: list, person: int, threshold: float
          ) -> tuple[float | None, float | None, float | None, float | None]:
    """(all-classes AP50, all-classes AP, recall at the threshold, persons AP50) against the reference."""
    from hoi_edge.validate.box_ap import detector_comparison

    cmp = detector_comparison(candidate, reference, person, threshold)
    return cmp.box_ap.overall.ap50, cmp.box_ap.overall.ap, cmp.recall, cmp.box_ap.persons.ap50


def hand_label_ap50(candidate: list, paths: list[Path], labels: dict, person: int) -> float | None:
    from hoi_edge.validate.box_ap import box_ap

    pairs = [(c, labels[p.name]) for c, p in zip(candidate, paths) if p.name in labels]
    return box_ap([c for c, _ in pairs], [g for _, g in pairs], person).overall.ap50


def fp_layer_count(folder: Path) -> str:
    manifest = json.loads((folder / "manifest.json").read_text())
    q = manifest.get("quantization", {}).get("detector")
    if not q:
        return "all"
    reverted = q.get("reverted_layers")
    n = len(q.get("fp_layers", []))
    return f"{n} ({len(reverted)} reverted)" if reverted else str(n)


def distillation_note(folder: Path) -> str | None:
    q = json.loads((folder / "manifest.json").read_text()).get("quantization", {})
    discarded = [u for u, e in q.items() if "distillation_discarded" in e]
    return f"distillation discarded for {', '.join(discarded)}" if discarded else None


def openvino_fp_precision(folder: Path, sets: Sets, refs: tuple[list, list], person: int, threshold: float,
                          runs: int) -> list[str] | None:
    """The OpenVINO INT8 detector with its FP layers in f32 (what the runner asks for) and in the CPU plugin's
    default (bf16 on CPUs with AVX512-BF16 / AMX): box AP50 against FP32 and the detector's median latency,
    the two compiled models called alternately (interleaved). None on a CPU without bf16 (nothing to choose)."""
    import time

    import numpy as np
    import openvino as ov

    from hoi_edge import HOIDetector

    core = ov.Core()
    if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return None
    det = HOIDetector.from_artifact(folder)
    compiled = {hint: core.compile_model(folder / "detector.xml", "CPU", {"INFERENCE_PRECISION_HINT": hint})
                for hint in ("f32", "bf16")}
    fp32_in_bf16 = core.compile_model(folder.parent / "openvino-fp32" / "detector.xml", "CPU",
                                      {"INFERENCE_PRECISION_HINT": "bf16"})
    rows, inputs = [], [det.prepare(p) for p in sets.photos]
    times: dict[str, list[float]] = {h: [] for h in compiled}
    for r in range(runs):
        for hint, model in compiled.items():
            t0 = time.perf_counter()
            model([inputs[r % len(inputs)][1]])
            times[hint].append(time.perf_counter() - t0)
    from hoi_edge.validate.box_ap import detector_instances

    for hint, model in [*compiled.items(), ("FP32 detector, all layers in bf16", fp32_in_bf16)]:
        scores = []
        for paths, ref in zip((sets.photos, sets.frames), refs):
            boxes = []
            for path in paths:
                hw, det_in, _ = det.prepare(path)
                out = model([det_in])
                boxes.append(detector_instances(det.spec, det.labels, [out[o] for o in model.outputs], hw))
            scores.append(score(boxes, ref, person, threshold)[0])
        ms = f"{1000 * float(np.median(times[hint])):.1f}" if hint in times else "—"
        label = hint if hint not in times else f"INT8, FP layers in {hint}"
        rows.append(f"| {label} | {fmt(scores[0])} | {fmt(scores[1])} | {ms} |")
    return ["| OpenVINO detector | AP50 vs FP32, 16 images | AP50 vs FP32, 80 frames | Detector median ms |",
            "| --- | --: | --: | --: |", *rows]


def overflow_note(folder: Path) -> str | None:
    """The OverflowFix each unit got and the AVX2-vs-native cosine that chose it (the manifest's record)."""
    q = json.loads((folder / "manifest.json").read_text()).get("quantization", {})
    parts = []
    for unit, e in q.items():
        if "overflow_fix" in e:
            cos = e.get("avx2_vs_native_cosine")
            parts.append(f"{unit} {e['overflow_fix']}" + (f" (AVX2 vs native {cos:.5f})" if cos is not None else ""))
    return "OverflowFix " + ", ".join(parts) if parts else None


def fmt(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def ap50_verdict(target: str, what: str, images: float | None, frames: float | None) -> str:
    """Whether the default INT8 is within 1.0 AP50 of FP32 on both evaluation sets; n/a when one was not scored."""
    verdict = ("n/a" if images is None or frames is None else
               "within" if images >= GOAL_AP50 and frames >= GOAL_AP50 else "NOT within")
    return (f"- {target}: default INT8 AP50 vs FP32 ({what}) {fmt(images)} (16 images) / {fmt(frames)} (80 frames): "
            f"{verdict} 1.0 AP50 of FP32")


def distillation_verdict(target: str, distilled: tuple[float | None, float | None],
                         post_training: tuple[float | None, float | None]) -> str:
    """Whether distilled INT8 beats post-training INT8 on the held-out images: (AP50, AP) compared in that order (AP
    breaks an AP50 tie); n/a when either was not scored."""
    if None in distilled or None in post_training:
        verdict = "n/a: nothing to compare for"
    else:
        verdict = "beats" if distilled > post_training else "does NOT beat"
    return (f"- {target}: distilled INT8 on the held-out 16 images {fmt(distilled[0])} / {fmt(distilled[1])} vs "
            f"post-training {fmt(post_training[0])} / {fmt(post_training[1])} (AP50 / AP): distillation {verdict} "
            "post-training INT8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="checkpoint (default: preset clip4hoi-nanodet-tiny)")
    ap.add_argument("--targets", nargs="+", default=list(target_names()), choices=list(target_names()))
    ap.add_argument("--calib-frames", type=int, default=80)
    ap.add_argument("--val-frames", type=int, default=16)
    ap.add_argument("--max-drop", type=float, default=0.01)
    ap.add_argument("--distill-steps", type=int, default=100)
    ap.add_argument("--distill-lr", type=float, default=1e-5)
    ap.add_argument("--int8-cpu", default="any", choices=["any", "vnni"])
    ap.add_argument("--runs", type=int, default=28, help="timed runs per artifact (interleaved)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--work", type=Path, default=None, help="folder for frames and artifacts (default: temporary)")
    ap.add_argument("--reuse", action="store_true", help="keep artifacts already in --work")
    args = ap.parse_args()

    from hoi_edge.core.noise import configure

    configure()                 # third-party log noise (NNCF INFO, tracer warnings) hidden, as in the CLI
    from hoi_edge import HOIDetector
    from hoi_edge.data.sources import IMAGE_SUFFIXES
    from hoi_edge.validate import BenchmarkConfig, benchmark
    from hoi_edge.validate.environment import cpu_line, environment
    from hoi_edge.validate.hand_labels import hand_label_boxes
    from hoi_edge.validate.markdown import md_table

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-int8-"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = args.model or default_checkpoint(work)
    video = SHARED / "videos" / "vtest.avi"
    photos = sorted(p for p in (SHARED / "photos").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    photos += sorted((SHARED / "hicodet" / "real_test_images").glob("*.jpg"))
    sets = Sets(photos=photos, frames=video_frames(video, 0, 10, None, work / "frames" / "eval"),
                calib=work / "frames" / "calib", val=work / "frames" / "val")
    video_frames(video, 5, 10, args.calib_frames, sets.calib)
    video_frames(video, 3, 10, args.val_frames, sets.val)

    reference = HOIDetector.from_checkpoint(ckpt)
    person = reference.labels.person_class
    threshold = reference.spec.box_score_threshold
    for path in HAND_LABELS:
        sets.labels.update(hand_label_boxes(path, reference.spec.detector_classes, reference.vocab))
    ref_photos, ref_frames = detector_boxes(reference, sets.photos), detector_boxes(reference, sets.frames)
    rows, artifacts, verdicts = [], [], []
    ref_hand = hand_label_ap50(ref_photos, sets.photos, sets.labels, person)
    for target in args.targets:
        folders = export_variants(ckpt, target, sets, args, work)
        got = {}
        for variant, folder in folders.items():
            det = HOIDetector.from_artifact(folder)
            cand_photos, cand_frames = detector_boxes(det, sets.photos), detector_boxes(det, sets.frames)
            got[variant] = (score(cand_photos, ref_photos, person, threshold),
                            score(cand_frames, ref_frames, person, threshold),
                            hand_label_ap50(cand_photos, sets.photos, sets.labels, person))
            artifacts.append(folder)
            del det
        for variant, folder in folders.items():
            (p50, pap, prec, pp50), (f50, fap, frec, fp50), hand = got[variant]
            notes_here = [n for n in (distillation_note(folder), overflow_note(folder) if variant == "int8" else None)
                          if n]
            rows.append([target, variant, f"{fmt(p50)} / {fmt(pap)}", f"{fmt(f50)} / {fmt(fap)}",
                         f"{fmt(pp50)} / {fmt(fp50)}", f"{fmt(prec)} / {fmt(frec)}", fmt(hand), folder,
                         fp_layer_count(folder), "; ".join(notes_here) or None])
        ptq, kd = got["int8"], got["int8 distilled"]
        for what, k in (("all classes", 0), ("persons", 3)):
            verdicts.append(ap50_verdict(target, what, ptq[0][k], ptq[1][k]))
        verdicts.append(distillation_verdict(target, (kd[0][0], kd[0][1]), (ptq[0][0], ptq[0][1])))

    precision_rows = None
    if "openvino" in args.targets:
        precision_rows = openvino_fp_precision(work / "artifacts" / "openvino-int8", sets, (ref_photos, ref_frames),
                                               person, threshold, args.runs * 4)
    bench = benchmark(BenchmarkConfig(images=SHARED / "photos", artifacts=artifacts, runs=args.runs,
                                      warmup=args.warmup, threads=args.threads, progress=False))
    latency = {Path(e.spec.path).resolve(): e.latency.median_ms for e in bench.entries}
    head = ["Target", "Model", "AP50 / AP, 16 images", "AP50 / AP, 80 frames", "Persons AP50 (16 / 80)",
            f"Recall@{threshold:g} (16 / 80)", "Hand-label AP50", "Median ms", "Detector MiB", "FP layers"]
    table = []
    notes = []
    for target, variant, a, b, persons, rec, hand, folder, fp, note in rows:
        size = sum(f.stat().st_size for f in folder.glob("detector.*")) / 2**20
        table.append([target, variant, a, b, persons, rec, hand, fmt(latency.get(folder.resolve())), f"{size:.2f}",
                      fp])
        if note:
            notes.append(f"- {target} {variant}: {note}")
    env = environment()
    threads = bench.settings["threads"]
    print(md_table(head, table))
    print(f"\nNanoDet-g detector ({ckpt.name}) per target: box AP (COCO-style, percent; mean over all classes, "
          f"and persons alone) of each "
          f"artifact's instances scored >= 0.01 (class-wise NMS, <= 100 per image) against the FP32 PyTorch "
          f"reference's kept instances (threshold {threshold:g}, NMS), on 16 held-out images (14 photos + 2 HICO-DET) "
          f"and on 80 held-out frames of vtest.avi (0, 10, ..., 790); recall at the pipeline threshold; AP50 "
          f"against the hand labels of 9 images (PyTorch FP32: {fmt(ref_hand)}). INT8 calibrated on "
          f"{args.calib_frames} frames (5, 15, ...), accuracy-aware on {args.val_frames} frames (3, 13, ...) with "
          f"max drop {args.max_drop}, distilled for {args.distill_steps} steps (lr {args.distill_lr}); "
          f"--int8-cpu {args.int8_cpu}. Median end-to-end latency over the photos, {args.runs} runs per artifact "
          f"interleaved, {threads} threads. {cpu_line(env)}")
    print("\n" + "\n".join(verdicts + notes))
    if precision_rows:
        print("\n" + "\n".join(precision_rows))
        print(f"\nThe OpenVINO post-training INT8 detector above, compiled with each inference precision for its FP "
              f"layers (GFL class/box conv and decoding), {args.runs * 4} calls each, alternating. {cpu_line(env)}")


if __name__ == "__main__":
    main()
