"""Run an end-to-end hoi-edge artifact (``hoi-edge export --target executorch --end-to-end``) with nothing but
the ExecuTorch runtime, NumPy and OpenCV: all the code an app needs around the model. It does not import
hoi_edge; port these ~45 lines to Kotlin/Swift/C++ as they are.

    python samples/end_to_end_executorch.py ARTIFACT_DIR photo.jpg [--json out.json]

The app's whole contract (also in the artifact's manifest.json, ``io_contract``):
  1. read the image as RGB, (h, w);
  2. resize as the manifest's io_contract "resize" says, to float32 (1,3,S,S) RGB pixel values 0..255:
     "letterbox" (DETR): s = S / max(h, w), resize to (round(w*s), round(h*s)) (INTER_AREA shrinking,
     INTER_LINEAR enlarging), paste at the top-left of an S x S canvas; "stretch" (NanoDet): resize to S x S
     (INTER_LINEAR);
  3. run the network on (image, [[h, w]]);
  4. read ``count`` rows: boxes are already in original image pixels; ``hoi`` indexes vocabulary.json's hois.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np


def letterbox(image_rgb: np.ndarray, size: int, resize: str = "letterbox") -> tuple[np.ndarray, np.ndarray]:
    """Step 2 of the contract: (1,3,S,S) float32 0..255 and (1,2) float32 (height, width)."""
    h, w = image_rgb.shape[:2]
    if resize == "stretch":
        resized = cv2.resize(image_rgb, (size, size), interpolation=cv2.INTER_LINEAR)
        # C-contiguous: the runtime reads the buffer as (1,3,S,S) whatever the array's strides
        return np.ascontiguousarray(resized.transpose(2, 0, 1)[None], np.float32), np.array([[h, w]], np.float32)
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    resized = cv2.resize(image_rgb, (nw, nh), interpolation=cv2.INTER_LINEAR if s > 1 else cv2.INTER_AREA)
    canvas = np.zeros((1, 3, size, size), np.float32)
    canvas[0, :, :nh, :nw] = resized.transpose(2, 0, 1)
    return canvas, np.array([[h, w]], np.float32)


def run(artifact: Path, image_path: Path) -> list[dict]:
    import torch                                    # the ExecuTorch Python runtime's tensor type
    from executorch.runtime import Runtime

    manifest = json.loads((artifact / "manifest.json").read_text())
    vocab = json.loads((artifact / "vocabulary.json").read_text())
    unit = manifest["units"]["end_to_end"]
    size = unit["inputs"]["image"][-1]
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read image {image_path}")
    resize = manifest["io_contract"].get("resize", "letterbox")
    pixels, hw = letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size, resize)
    method = Runtime.get().load_program(str(artifact / unit["file"])).load_method("forward")
    outputs = method.execute([torch.from_numpy(pixels), torch.from_numpy(hw)])
    out = {name: np.asarray(o) for name, o in zip(unit["outputs"], outputs)}
    rows = []
    for r in range(int(out["count"].reshape(-1)[0])):
        hoi = int(out["hoi"][0, r])
        verb, obj = vocab["hois"][hoi]
        rows.append({"hoi": hoi, "verb": vocab["verbs"][verb], "object": vocab["objects"][obj],
                     "score": float(out["scores"][0, r]), "human_box": out["human_boxes"][0, r].tolist(),
                     "object_box": out["object_boxes"][0, r].tolist(),
                     "human_score": float(out["human_scores"][0, r]),
                     "object_score": float(out["object_scores"][0, r])})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("image", type=Path)
    parser.add_argument("--json", type=Path, help="write every row as JSON here")
    args = parser.parse_args(argv)
    rows = run(args.artifact, args.image)
    if args.json:
        args.json.write_text(json.dumps(rows))
    for row in rows[:10]:
        print(f"{row['score']:.4f}  {row['verb']} {row['object']}  human {[round(v) for v in row['human_box']]}"
              f"  object {[round(v) for v in row['object_box']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
