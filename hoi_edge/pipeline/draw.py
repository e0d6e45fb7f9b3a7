"""Drawing HOI results: the kept human and object instances (thin boxes, class and score), and over
them the best triplets (thick human and object boxes, a line between them, verb-object labels).

Instances are drawn even when no triplet passes, so an empty result still shows what the detector
found. Labels are placed so they never cover each other (each is moved down past the ones placed
before it) and stay inside the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from hoi_edge.pipeline.postprocess import HOIDetection

HUMAN_COLOR = (66, 135, 245)   # RGB
OBJECT_COLOR = (245, 130, 48)
INSTANCE_HUMAN = (150, 190, 250)   # paler, thin: instances that are not (yet) part of a drawn triplet
INSTANCE_OBJECT = (250, 195, 150)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def format_score(score: float) -> str:
    """Two significant digits for small scores ('0.0031', not '0.00'), two decimals otherwise."""
    if score != 0 and abs(score) < 0.01:
        return f"{score:.2g}"
    return f"{score:.2f}"


def _palette(i: int) -> tuple[int, int, int]:
    hue = (i * 47) % 180
    rgb = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(int(c) for c in rgb)


class LabelPlacer:
    """Finds a free spot for each label: at the wanted position if nothing is there, else moved
    down (then up) in steps of one label height; always inside the image."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.placed: list[tuple[int, int, int, int]] = []      # x1, y1, x2, y2

    def place(self, x: int, y_top: int, w: int, h: int) -> tuple[int, int]:
        """Top-left corner for a ``w`` x ``h`` label wanted at (x, y_top)."""
        x = int(min(max(x, 0), max(self.width - w, 0)))
        start = int(min(max(y_top, 0), max(self.height - h, 0)))
        candidates = [start + k * (h + 1) for k in range(0, self.height // max(h, 1) + 1)]
        candidates += [start - k * (h + 1) for k in range(1, self.height // max(h, 1) + 1)]
        for y in candidates:
            if y < 0 or y + h > self.height:
                continue
            box = (x, y, x + w, y + h)
            if not any(_overlap(box, other) for other in self.placed):
                self.placed.append(box)
                return x, y
        self.placed.append((x, start, x + w, start + h))      # image full of labels: overlap is unavoidable
        return x, start


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label(image: np.ndarray, placer: LabelPlacer, text: str, x: int, y_top: int, color, font: float) -> None:
    (tw, th), base = cv2.getTextSize(text, FONT, font, 1)
    w, h = tw + 4, th + base + 4
    lx, ly = placer.place(x, y_top, w, h)
    cv2.rectangle(image, (lx, ly), (lx + w, ly + h), color, -1)
    cv2.putText(image, text, (lx + 2, ly + th + 2), FONT, font, (0, 0, 0), 1, cv2.LINE_AA)


def _ibox(b: Sequence[float]) -> tuple[int, int, int, int]:
    return tuple(int(round(v)) for v in b)  # type: ignore[return-value]


def draw_instances(out: np.ndarray, instances: Any, class_names: Sequence[str], placer: LabelPlacer | None,
                   font: float) -> int:
    """Thin pale boxes for every kept instance, and with a ``placer`` their 'class score' labels;
    returns how many instances there are."""
    if instances is None:
        return 0
    valid = np.asarray(instances.valid, bool)
    for box, cls, score, human in zip(np.asarray(instances.boxes)[valid], np.asarray(instances.classes)[valid],
                                      np.asarray(instances.scores)[valid], np.asarray(instances.human)[valid]):
        color = INSTANCE_HUMAN if human else INSTANCE_OBJECT
        b = _ibox(box)
        if placer is None:
            cv2.rectangle(out, b[:2], b[2:], color, 1)
            continue
        name = class_names[int(cls)] if 0 <= int(cls) < len(class_names) else f"class {int(cls)}"
        _label(out, placer, f"{name} {format_score(float(score))}", b[0], b[3] - 2, color, font * 0.8)
    return int(valid.sum())


def draw_detections(image: np.ndarray, detections: Sequence[HOIDetection], top: int = 10,
                    min_score: float = 0.0, instances: Any = None,
                    class_names: Sequence[str] = ()) -> np.ndarray:
    """RGB image -> a copy with the kept ``instances`` (thin, pale) and the ``top`` best triplets
    (thick, one label list per distinct pair). With nothing above ``min_score`` a caption says so,
    so an empty result is not mistaken for a failed write."""
    out = image.copy()
    scale = max(image.shape[:2]) / 640.0
    thick, font = max(2, round(2 * scale)), 0.5 * max(scale, 0.6)
    placer = LabelPlacer(out.shape[1], out.shape[0])
    shown = [d for d in detections if d.score >= min_score][:top]
    if not shown:
        _caption(out, placer, "no HOI triplets found" + (f" above score {min_score:g}" if min_score > 0 else ""),
                 font)
    draw_instances(out, instances, class_names, None, font)       # boxes under the triplets
    labels: dict[tuple, list[str]] = {}
    for det in shown:
        labels.setdefault((det.human_box, det.object_box), []).append(
            f"{det.verb.replace('_', ' ')} {det.object_label} {format_score(det.score)}")
    for n, (hb, ob) in enumerate(labels):
        h, o = _ibox(hb), _ibox(ob)
        cv2.rectangle(out, h[:2], h[2:], HUMAN_COLOR, thick)
        cv2.rectangle(out, o[:2], o[2:], OBJECT_COLOR, thick)
        hc = ((h[0] + h[2]) // 2, (h[1] + h[3]) // 2)
        oc = ((o[0] + o[2]) // 2, (o[1] + o[3]) // 2)
        cv2.line(out, hc, oc, _palette(n), thick)
    # triplet labels first (they matter most), at the top of the human box; then instance labels
    for n, (key, texts) in enumerate(labels.items()):
        h = _ibox(key[0])
        for text in texts[:3]:
            _label(out, placer, text, h[0], h[1], _palette(n), font)
    draw_instances(out, instances, class_names, placer, font)
    return out


def draw_prediction(image: np.ndarray, prediction: Any, top: int = 10, min_score: float = 0.0,
                    class_names: Sequence[str] = ()) -> np.ndarray:
    """:func:`draw_detections` for a :class:`~hoi_edge.pipeline.detector.Prediction` (triplets and instances)."""
    return draw_detections(image, prediction.detections, top=top, min_score=min_score,
                           instances=prediction.instances, class_names=class_names)


def _caption(image: np.ndarray, placer: LabelPlacer, text: str, font: float) -> None:
    (tw, th), base = cv2.getTextSize(text, FONT, font, 1)
    placer.placed.append((0, 0, tw + 8, th + base + 8))
    cv2.rectangle(image, (0, 0), (tw + 8, th + base + 8), (255, 255, 255), -1)
    cv2.putText(image, text, (4, th + 4), FONT, font, (0, 0, 0), 1, cv2.LINE_AA)
