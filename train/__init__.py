"""Training for CLIP4HOI: HICO-DET-format data, zero-shot split filtering, target assignment,
losses and the training loop. The detector and both CLIP towers stay frozen; the HO
interactor, HOI decoder, prompt context and logit scales/biases are trained.

Names are imported lazily so ``hoi-edge --help`` does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HICODataset": "train.dataset", "Sample": "train.dataset",
    "filter_unseen": "train.dataset", "load_annotations": "train.dataset",
    "HOILoss": "train.losses", "binary_focal_loss_with_logits": "train.losses",
    "add_gt_instances": "train.targets", "image_targets": "train.targets", "pair_class_mask": "train.targets",
    "pair_targets": "train.targets",
    "TrainConfig": "train.trainer", "Trainer": "train.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'train' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
