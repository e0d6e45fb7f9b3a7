"""Hand-labelled boxes (HICO-DET-format annotation files) as detector ground truth: every distinct human and
object box of an image, with the detector class its object name maps to.

HOI annotations list boxes per (human, object) pair, so the same box appears once per interaction it
takes part in; box AP needs each once. Labels are incomplete where the annotator labelled only clear
interactions (``samples/labels/README.md``): an unlabelled person the detector finds counts as a false
positive, so the AP is comparable between models on the same labels, not with published numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hoi_edge.data.hico_json import read_hico_json
from hoi_edge.data.vocabulary import Vocabulary, normalize_name
from hoi_edge.validate.box_ap import ImageBoxes


def hand_label_boxes(path: str | Path, detector_classes: tuple[str, ...] | list[str], vocab: Vocabulary
                     ) -> dict[str, ImageBoxes]:
    """file name -> the image's distinct labelled boxes (x1, y1, x2, y2 pixels) and detector class ids."""
    names = [normalize_name(n) for n in detector_classes]
    person = names.index("person")
    out: dict[str, ImageBoxes] = {}
    for image in read_hico_json(path, "hand-label file").images:
        rows: dict[tuple, int] = {}
        for h, o, obj in zip(image.boxes_h, image.boxes_o, image.object):
            rows.setdefault(tuple(np.round(h, 2)), person)
            rows.setdefault(tuple(np.round(o, 2)), names.index(vocab.objects[int(obj)]))
        boxes = np.array(list(rows), np.float64).reshape(-1, 4)
        out[image.filename] = ImageBoxes(boxes, np.array(list(rows.values()), np.int64), np.ones(len(rows)))
    return out
