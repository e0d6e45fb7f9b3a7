"""INT8 box AP of the NanoDet variant on every target, against the FP32 PyTorch reference as pseudo ground truth.

    python benchmarks/bench_nanodet_box_ap.py                          # preset clip4hoi-nanodet-tiny, 3 targets
    python benchmarks/bench_nanodet_box_ap.py --model model.pt --targets openvino --calib-size 300

Exports the checkpoint (default: the NanoDet-g + tiny random CLIP model the offline default uses, real
detector weights through npm) to each target at INT8, calibrated on the 14 photos, then runs the FP32
PyTorch reference and each artifact on the 14 photos plus the 2 HICO-DET test images and reports COCO-style
box AP (:mod:`hoi_edge.validate.box_ap`) of each artifact's kept instances (what the HOI head sees: the
pipeline's score threshold, NMS and top-K) against the reference's, per group. Only the detector matters
here, so the random CLIP does not affect the numbers. Calibration and evaluation images overlap (the photos):
say so when quoting the table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from compress.calibration import CalibrationConfig  # noqa: E402
from hoi_edge import HOIDetector  # noqa: E402
from hoi_edge.data.sources import IMAGE_SUFFIXES  # noqa: E402
from hoi_edge.data.vocabulary import load_vocabulary  # noqa: E402
from hoi_edge.model.config import clip4hoi_nanodet_tiny  # noqa: E402
from hoi_edge.testing import shared_data_dir  # noqa: E402
from hoi_edge.validate.box_ap import ImageBoxes, box_ap  # noqa: E402
from hoi_edge.weights.checkpoint import build_model, save_checkpoint  # noqa: E402
from targets.export import ExportConfig, export_artifact  # noqa: E402


def images(shared: Path) -> list[Path]:
    photos = sorted(p for p in (shared / "photos").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return photos + sorted((shared / "hicodet" / "real_test_images").glob("*.jpg"))


def instances(detector: HOIDetector, paths: list[Path]) -> list[ImageBoxes]:
    return [ImageBoxes.from_instances(detector.run(p).instances) for p in paths]


def fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None,
                    help="checkpoint (default: preset clip4hoi-nanodet-tiny, seed 0)")
    ap.add_argument("--targets", nargs="+", default=["openvino", "onnx", "executorch"])
    ap.add_argument("--calib-size", type=int, default=14)
    ap.add_argument("--work", type=Path, default=None, help="folder for the artifacts (default: a temporary one)")
    args = ap.parse_args()

    shared = shared_data_dir()
    work = args.work or Path(tempfile.mkdtemp(prefix="nanodet-box-ap-"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = args.model
    if ckpt is None:
        import torch

        torch.manual_seed(0)
        model = build_model(clip4hoi_nanodet_tiny(), load_vocabulary("hico"))
        ckpt = save_checkpoint(model, work / "nanodet_tiny.pt")
    paths = images(shared)
    reference = HOIDetector.from_checkpoint(ckpt)
    person = reference.spec.detector_classes.index("person")
    ref = instances(reference, paths)
    rows = []
    for target in args.targets:
        out = work / f"{target}-int8"
        if not out.exists():
            export_artifact(ExportConfig(checkpoint=ckpt, target=target, out=out, precision="int8",
                                         calibration=CalibrationConfig(shared / "photos", max_images=args.calib_size)),
                            progress=False)
        result = box_ap(instances(HOIDetector.from_artifact(out), paths), ref, person)
        rows.append((f"{target}/int8", result))
    print("| Model | Persons AP50 | Persons AP | Objects AP50 | Objects AP | All AP50 | All AP "
          "| Instances (ref / int8) |")
    print("| --- | --: | --: | --: | --: | --: | --: | --: |")
    for name, r in rows:
        print(f"| {name} | {fmt(r.persons.ap50)} | {fmt(r.persons.ap)} | {fmt(r.objects.ap50)} | {fmt(r.objects.ap)} "
              f"| {fmt(r.overall.ap50)} | {fmt(r.overall.ap)} | {r.overall.reference_instances} / "
              f"{r.overall.candidate_instances} |")
    spec = reference.spec
    print(f"\nBox AP (COCO-style, percent) of each INT8 artifact's kept instances against the FP32 PyTorch "
          f"reference's on {len(paths)} images (14 photos + 2 HICO-DET test images); threshold "
          f"{spec.box_score_threshold}, NMS IoU {spec.nms_threshold}, top-{spec.max_instances}; INT8 calibrated on "
          f"{min(args.calib_size, 14)} of the photos; checkpoint {ckpt}.")


if __name__ == "__main__":
    main()
