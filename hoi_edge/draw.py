"""Drawing HOI detections: human and object boxes, a line between them, and a verb-object label."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from hoi_edge.postprocess import HOIDetection

HUMAN_COLOR = (66, 135, 245)   # RGB
OBJECT_COLOR = (245, 130, 48)


def _palette(i: int) -> tuple[int, int, int]:
    hue = (i * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(int(c) for c in bgr)


def draw_detections(image: np.ndarray, detections: Sequence[HOIDetection], top: int = 10,
                    min_score: float = 0.0) -> np.ndarray:
    """RGB image -> a copy with the ``top`` best triplets drawn; one label per distinct pair.

    An image with nothing above ``min_score`` says so in a caption, so an empty result is not
    mistaken for a failed write."""
    out = image.copy()
    scale = max(image.shape[:2]) / 640.0
    thick, font = max(1, round(2 * scale)), 0.5 * max(scale, 0.6)
    labels: dict[tuple, list[str]] = {}
    boxes: dict[tuple, tuple] = {}
    shown = [d for d in detections if d.score >= min_score][:top]
    if not shown:
        _caption(out, "no HOI triplets found" + (f" above score {min_score:g}" if min_score > 0 else ""), font)
    for det in shown:
        key = (det.human_box, det.object_box)
        boxes[key] = (det.human_box, det.object_box)
        labels.setdefault(key, []).append(f"{det.verb.replace('_', ' ')} {det.object_label} {det.score:.2f}")
    for n, (key, (hb, ob)) in enumerate(boxes.items()):
        color = _palette(n)
        h = tuple(int(round(v)) for v in hb)
        o = tuple(int(round(v)) for v in ob)
        cv2.rectangle(out, h[:2], h[2:], HUMAN_COLOR, thick)
        cv2.rectangle(out, o[:2], o[2:], OBJECT_COLOR, thick)
        hc = ((h[0] + h[2]) // 2, (h[1] + h[3]) // 2)
        oc = ((o[0] + o[2]) // 2, (o[1] + o[3]) // 2)
        cv2.line(out, hc, oc, color, thick)
        y = max(h[1], 12)
        for text in labels[key][:3]:
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
            cv2.rectangle(out, (h[0], y - th - base), (h[0] + tw, y), color, -1)
            cv2.putText(out, text, (h[0], y - base), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 1, cv2.LINE_AA)
            y += th + base + 2
    return out


def _caption(image: np.ndarray, text: str, font: float) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
    cv2.rectangle(image, (0, 0), (tw + 8, th + base + 8), (255, 255, 255), -1)
    cv2.putText(image, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 1, cv2.LINE_AA)
