"""An end-to-end artifact (one network: letterboxed image in, triplets out) behind the usual
:class:`HOIDetector` API, so ``detect``, ``validate`` and ``benchmark`` run it unchanged."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hoi_edge.end_to_end_io import UNIT, network_pixels, read_outputs
from hoi_edge.pipeline import HOIDetector, Prediction
from hoi_edge.preprocess import check_image, load_image


class EndToEndDetector(HOIDetector):
    """``run`` resizes the image as the I/O contract says (letterbox or stretch), runs the one network and
    reads its outputs.

    Stage timings: the network's time is reported as ``detector`` (it holds every network), ``clip_image``
    and ``hoi_head`` as 0, ``postprocess`` is reading the outputs."""

    pipelinable = False     # one network: hoi_edge.stream has no stages to overlap, so it runs frame by frame

    def run(self, image: np.ndarray | str | Path) -> Prediction:
        start = time.perf_counter()
        if isinstance(image, (str, Path)):
            image = load_image(image)
        pixels, size = network_pixels(check_image(image), self.spec.detector_size, self.spec.detector_resize)
        t_pre = time.perf_counter()
        spec = self.runner.manifest.units[UNIT]
        outputs = dict(zip(spec.outputs, self.runner.call(UNIT, pixels, size), strict=True))
        t_net = time.perf_counter()
        dets, inst = read_outputs(outputs, self.vocab, self.labels)
        t_end = time.perf_counter()
        timings = {"preprocess": t_pre - start, "detector": t_net - t_pre, "clip_image": 0.0, "hoi_head": 0.0,
                   "postprocess": t_end - t_net}
        return Prediction(detections=dets, instances=inst, timings=timings)
