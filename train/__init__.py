"""Training for CLIP4HOI: HICO-DET-format data, zero-shot split filtering, target assignment,
losses and the training loop. The detector and both CLIP towers stay frozen; the HO
interactor, HOI decoder, prompt context and logit scales/biases are trained.
"""

from train.dataset import HICODataset, ImageAnnotation, Sample, filter_unseen, load_annotations
from train.losses import HOILoss, binary_focal_loss_with_logits
from train.targets import add_gt_instances, image_targets, pair_class_mask, pair_targets
from train.trainer import TrainConfig, Trainer

__all__ = [
    "HICODataset", "HOILoss", "ImageAnnotation", "Sample", "TrainConfig", "Trainer", "add_gt_instances",
    "binary_focal_loss_with_logits", "filter_unseen", "image_targets", "load_annotations", "pair_class_mask",
    "pair_targets",
]
