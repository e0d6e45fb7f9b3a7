"""The scoring rule's constants and its NumPy form, with no dependency beyond NumPy.

The model (:mod:`hoi_edge.model.classifier`) reports its learnt constants as :class:`ScoringParams`
and computes the same logits in torch (:func:`hoi_edge.model.classifier.clip_logits`); the runtime
glue (:mod:`hoi_edge.pipeline.postprocess`) scores with :func:`clip_logits` here. Keeping this module free of
OpenCV and of the model lets both import it without leaning on each other; a test checks the two
forms against each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class ScoringParams:
    """Everything the runtime needs to turn embeddings into HOI scores (no torch required)."""

    pair_scale: float
    pair_bias: float
    global_scale: float
    global_bias: float
    global_weight: float
    detector_score_power: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def clip_logits(embeddings: np.ndarray, text: np.ndarray, scale: float, bias: float = 0.0) -> np.ndarray:
    """CLIP4HOI's logit of L2-normalised embeddings (..., E) against the text bank (C, E): the cosine
    similarity times a learnt temperature plus a learnt bias, (..., C)."""
    return scale * (embeddings @ text.T) + bias
