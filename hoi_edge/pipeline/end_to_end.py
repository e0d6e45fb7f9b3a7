"""The app side of an end-to-end artifact (:mod:`hoi_edge.model.end_to_end`), in NumPy/OpenCV: the letterbox
an app does before the network, the reading of its fixed-size outputs into :class:`HOIDetection` rows, and
:func:`run_network`, which :class:`hoi_edge.pipeline.detector.HOIPipeline` runs for such an artifact.

``samples/end_to_end_executorch.py`` is the same contract written without hoi_edge (what an app copies);
a test checks the two against each other.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from hoi_edge.core.conventions import LETTERBOX, STRETCH
from hoi_edge.data.vocabulary import Vocabulary
from hoi_edge.pipeline.postprocess import HOIDetection, Instances, LabelMap
from hoi_edge.pipeline.preprocess import check_image, load_image, resize_to_input
from hoi_edge.pipeline.spec import PipelineSpec

LAYOUT = "end-to-end"
UNIT = "end_to_end"

#: The ``image`` input, per detector resize mode (the spec's ``detector_resize``).
IMAGE_INPUT = {
    LETTERBOX: "(1,3,S,S) float32 RGB pixel values 0..255: the image resized by s = S/max(h,w) to "
               "(round(h*s), round(w*s)) (OpenCV INTER_AREA when shrinking, INTER_LINEAR when enlarging), "
               "placed at the top-left; the padding may hold any value (masked in the graph)",
    STRETCH: "(1,3,S,S) float32 RGB pixel values 0..255: the image resized to S x S (OpenCV INTER_LINEAR, "
             "aspect not kept); RGB even for a BGR detector (the graph reverses the channels)",
}
IO_CONTRACT = {
    "inputs": {
        "image_size": "(1,2) float32: the original image's (height, width) in pixels",
    },
    "outputs": {
        "human_boxes": "(1,N,4) float32 x1,y1,x2,y2 in original image pixels",
        "object_boxes": "(1,N,4) float32 x1,y1,x2,y2 in original image pixels",
        "hoi": "(1,N) int64 index into vocabulary.json 'hois' ([verb index, object index])",
        "scores": "(1,N) float32 final HOI score, descending",
        "human_scores": "(1,N) float32 detector score of the human",
        "object_scores": "(1,N) float32 detector score of the object",
        "count": "(1,) int64 number of real rows; rows from count on are zeros",
        "instance_boxes": "(1,K,4) float32 kept humans/objects, original pixels",
        "instance_scores": "(1,K) float32",
        "instance_classes": "(1,K) int64 detector class id (manifest spec.detector_classes), -1 = empty slot",
    },
    "app": "resize the RGB image as described for 'image', pass its (height, width); boxes come back in "
           "original pixels, so nothing is mapped back",
}


def io_contract(resize: str) -> dict:
    """The app's contract for a detector that takes ``resize`` (letterbox or stretch) input."""
    return {**IO_CONTRACT, "inputs": {"image": IMAGE_INPUT[resize], **IO_CONTRACT["inputs"]}, "resize": resize}


def network_pixels(image: np.ndarray, size: int, resize: str = LETTERBOX) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (H,W,3) -> the network's inputs: (1,3,S,S) float32 0..255 and (1,2) float32 (height, width).

    The same resize as :class:`hoi_edge.pipeline.preprocess.Letterbox` (a test checks the graph's normalised
    input against it); the letterbox padding is left at 0 (the graph masks it)."""
    h, w = image.shape[:2]
    resized = resize_to_input(image, size, resize)
    nh, nw = resized.shape[:2]
    out = np.zeros((1, 3, size, size), np.float32)        # stretch fills it whole; letterbox leaves 0 padding
    out[0, :, :nh, :nw] = resized.transpose(2, 0, 1)
    return out, np.array([[h, w]], np.float32)


def read_outputs(outputs: dict[str, np.ndarray], vocab: Vocabulary, labels: LabelMap
                 ) -> tuple[list[HOIDetection], Instances]:
    """The network's named outputs -> triplets (best first) and the kept instances (as the NumPy pipeline's)."""
    n = int(np.asarray(outputs["count"]).reshape(-1)[0])
    dets = []
    for r in range(n):
        hoi = int(outputs["hoi"][0, r])
        verb, obj = vocab.hois[hoi]
        dets.append(HOIDetection(
            human_box=tuple(float(v) for v in outputs["human_boxes"][0, r]),
            object_box=tuple(float(v) for v in outputs["object_boxes"][0, r]),
            object_label=vocab.objects[obj], object_index=obj, verb=vocab.verbs[verb], verb_index=verb, hoi=hoi,
            hoi_name=vocab.hoi_name(hoi), score=float(outputs["scores"][0, r]),
            human_score=float(outputs["human_scores"][0, r]), object_score=float(outputs["object_scores"][0, r])))
    classes = np.asarray(outputs["instance_classes"][0], np.int64)
    valid = classes >= 0
    safe = np.where(valid, classes, 0)
    inst = Instances(boxes=np.asarray(outputs["instance_boxes"][0], np.float32),
                     scores=np.asarray(outputs["instance_scores"][0], np.float32), classes=safe,
                     objects=np.where(valid, labels.to_object[safe], -1), human=valid & (safe == labels.person_class),
                     valid=valid, features=np.zeros((classes.size, 0), np.float32))
    return dets, inst


def run_network(runner: Any, spec: PipelineSpec, vocab: Vocabulary, labels: LabelMap, image: np.ndarray | str | Path
                ) -> tuple[list[HOIDetection], Instances, dict[str, float]]:
    """One image through an end-to-end artifact: resize it as the I/O contract says (letterbox or stretch),
    run the one network (``runner.call``) and read its outputs.

    Stage timings: the network's time is reported as ``detector`` (it holds every network), ``clip_image``
    and ``hoi_head`` as 0, ``postprocess`` is reading the outputs."""
    start = time.perf_counter()
    if isinstance(image, (str, Path)):
        image = load_image(image)
    pixels, size = network_pixels(check_image(image), spec.detector_size, spec.detector_resize)
    t_pre = time.perf_counter()
    unit = runner.manifest.units[UNIT]
    outputs = dict(zip(unit.outputs, runner.call(UNIT, pixels, size), strict=True))
    t_net = time.perf_counter()
    dets, inst = read_outputs(outputs, vocab, labels)
    t_end = time.perf_counter()
    timings = {"preprocess": t_pre - start, "detector": t_net - t_pre, "clip_image": 0.0, "hoi_head": 0.0,
               "postprocess": t_end - t_net}
    return dets, inst, timings
