"""Benchmark ``hoi-edge eval`` on the full HICO-DET test set with 100 detections per image.

Builds a synthetic but realistic prediction file (fixed seed): every GT pair once with
jittered boxes, then distractors up to N per image -- half are hard negatives (boxes near a
GT pair of the image, with that pair's class or another), half random classes and boxes.
Then times loading the GT, reading the JSON-lines file, and evaluating.

    python benchmarks/bench_eval.py --gt ../shared/data/hicodet/instances_test2015.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_caption  # noqa: E402

from hoi_edge.eval import (  # noqa: E402
    EvalConfig,
    GroundTruth,
    Predictions,
    evaluate,
    load_groundtruth,
    read_predictions,
    write_predictions,
)


def _clip(boxes: np.ndarray, wh: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, wh[:, :1] - 1)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, wh[:, 1:] - 1)
    out[:, 2:] = np.maximum(out[:, 2:], out[:, :2])
    return out


def _jitter(boxes: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    wh = boxes[:, 2:] - boxes[:, :2] + 1
    return boxes + rng.normal(0, sigma, boxes.shape) * np.hstack([wh, wh])


def _random_boxes(wh: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = rng.uniform(0.1, 0.6, (wh.shape[0], 2)) * wh
    xy = rng.uniform(0, 1, (wh.shape[0], 2)) * (wh - size)
    return np.hstack([xy, xy + size])


def make_predictions(gt: GroundTruth, sizes: np.ndarray, per_image: int, seed: int) -> Predictions:
    """``per_image`` detections on every test image (images with more GT pairs keep them all)."""
    rng = np.random.default_rng(seed)
    n_pairs = gt.num_pairs
    # 1) every GT pair, jittered (most still match at IoU >= 0.5), score mostly high.
    tp_img = gt.image
    tp_wh = sizes[tp_img]
    tp = dict(image=tp_img, hoi=gt.hoi, score=rng.beta(5, 2, n_pairs),
              h=_clip(_jitter(gt.boxes_h, 0.08, rng), tp_wh), o=_clip(_jitter(gt.boxes_o, 0.08, rng), tp_wh))
    # 2) distractors filling each image up to per_image detections.
    pairs_per_image = np.bincount(gt.image, minlength=gt.num_images)
    n_fill = np.maximum(per_image - pairs_per_image, 0)
    img = np.repeat(np.arange(gt.num_images), n_fill)
    wh = sizes[img]
    n = img.size
    hoi = rng.integers(0, gt.num_classes, n)
    h = _random_boxes(wh, rng)
    o = _random_boxes(wh, rng)
    # Hard negatives: on images with GT, half the distractors sit near a GT pair of the image.
    first_pair = np.searchsorted(gt.image, img)  # gt.image is sorted by image in the loader
    has_gt = pairs_per_image[img] > 0
    hard = has_gt & (rng.random(n) < 0.5)
    pick = first_pair[hard] + (rng.random(hard.sum()) * pairs_per_image[img[hard]]).astype(np.int64)
    same_class = rng.random(hard.sum()) < 0.5
    hoi[hard] = np.where(same_class, gt.hoi[pick], hoi[hard])
    h[hard] = _jitter(gt.boxes_h[pick], 0.3, rng)
    o[hard] = _jitter(gt.boxes_o[pick], 0.3, rng)
    score = rng.beta(2, 5, n)
    return Predictions.from_arrays(
        image=np.r_[tp["image"], img], hoi=np.r_[tp["hoi"], hoi], score=np.r_[tp["score"], score],
        boxes_h=np.r_[tp["h"], _clip(h, wh)], boxes_o=np.r_[tp["o"], _clip(o, wh)],
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gt", type=Path, default=Path("../shared/data/hicodet/instances_test2015.json"))
    ap.add_argument("--per-image", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    gt = load_groundtruth(args.gt)
    sizes = np.asarray(json.loads(args.gt.read_text())["size"], dtype=np.float64)
    preds = make_predictions(gt, sizes, args.per_image, args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "preds.jsonl"
        t0 = time.perf_counter()
        write_predictions(path, preds.to_image_detections(gt.filenames))
        t_write = time.perf_counter() - t0
        mb = path.stat().st_size / 1e6

        t0 = time.perf_counter()
        gt2 = load_groundtruth(args.gt)
        t_gt = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded = read_predictions(path, gt2)
        t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = evaluate(gt2, loaded, EvalConfig())
    t_eval = time.perf_counter() - t0
    t0 = time.perf_counter()
    ko = evaluate(gt2, loaded, EvalConfig(setting="known_object"))
    t_ko = time.perf_counter() - t0

    print(f"{gt2.num_images} images, {gt2.num_pairs} GT pairs, {len(loaded)} detections "
          f"({len(loaded) / gt2.num_images:.1f} per image), file {mb:.0f} MB (written in {t_write:.1f} s)")
    print(f"load GT      {t_gt:6.2f} s")
    print(f"read preds   {t_read:6.2f} s")
    print(f"evaluate     {t_eval:6.2f} s   mAP Full {res.map_full:.2f}  Rare {res.map_rare:.2f}  "
          f"Non-rare {res.map_non_rare:.2f}  mean recall {res.mean_recall:.2f}")
    print(f"evaluate KO  {t_ko:6.2f} s   mAP Full {ko.map_full:.2f}")
    print(f"total load + evaluate: {t_gt + t_read + t_eval:.2f} s\n{cpu_caption()}")


if __name__ == "__main__":
    main()
