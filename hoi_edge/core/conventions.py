"""Names of the conventions a detector's outputs and inputs follow, importable without torch or OpenCV.

The model layer (:mod:`hoi_edge.model.detectors`) declares its families with them; the NumPy glue
(:mod:`hoi_edge.pipeline.preprocess`, :mod:`hoi_edge.pipeline.postprocess`) implements them.
"""

from __future__ import annotations

# what the detector's score output is
SOFTMAX_NO_OBJECT = "softmax-no-object"   # DETR: logits over C classes + a trailing no-object class
PROBABILITIES = "probabilities"           # NanoDet: per-class sigmoid probabilities (the sigmoid is in the graph)
SCORE_KINDS = (SOFTMAX_NO_OBJECT, PROBABILITIES)

# how an image becomes the square network input
LETTERBOX = "letterbox"                   # scale to fit, aspect kept, padded bottom/right
STRETCH = "stretch"                       # each axis resized to S, aspect not kept (upstream NanoDet)
RESIZE_MODES = (LETTERBOX, STRETCH)
CHANNEL_ORDERS = ("rgb", "bgr")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
