"""CLIP4HOI / UPT losses: binary focal loss on pairwise logits plus BCE on the global image logits.

Both are sums over the entries that get a loss, divided by the number of positives among
them (DETR/UPT normalisation: the loss scale does not depend on how many negatives an image has).

Zero-shot: unseen classes are masked out of *both* terms (GEN-VLKT/HOICLIP train the classifier on
seen classes only). Their prompts still pass through the text encoder, and the shared prompt
context still moves, but no unseen class is ever a positive or a negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def binary_focal_loss_with_logits(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.5,
                                  gamma: float = 0.2, reduction: str = "sum") -> torch.Tensor:
    """Focal loss (Lin et al. 2017) for sigmoid outputs; ``alpha`` weighs positives, ``1 - alpha`` negatives."""
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    loss = alpha_t * (1 - p_t).clamp(min=0).pow(gamma) * ce
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    return loss


@dataclass
class HOILoss:
    """``loss = focal(pairwise) + global_weight * BCE(global)``; UPT's focal defaults (alpha 0.5, gamma 0.2)."""

    alpha: float = 0.5
    gamma: float = 0.2
    global_weight: float = 1.0

    def __call__(self, pair_logits: torch.Tensor, global_logits: torch.Tensor, pair_targets: torch.Tensor,
                 pair_mask: torch.Tensor, image_targets: torch.Tensor, class_mask: torch.Tensor,
                 normalizers: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """pair_* (B,P,C), global/image (B,C), class_mask (C,) bool (seen classes) -> loss terms (scalars).

        ``normalizers`` (2,): the pairwise and global positive counts to divide by instead of this
        batch's own; the trainer passes those of the whole optimizer step (all micro-batches and
        ranks), so the sum of the micro-batch losses is the loss of the global batch.
        """
        pl, pt = pair_logits.float()[pair_mask], pair_targets[pair_mask]
        n_pair = pt.sum()
        gmask = class_mask.unsqueeze(0).expand_as(global_logits)
        gl, gt = global_logits.float()[gmask], image_targets[gmask]
        n_global = gt.sum()
        den_pair, den_global = (n_pair, n_global) if normalizers is None else (normalizers[0], normalizers[1])
        pair = binary_focal_loss_with_logits(pl, pt, self.alpha, self.gamma) / den_pair.clamp(min=1)
        glob = F.binary_cross_entropy_with_logits(gl, gt, reduction="sum") / den_global.clamp(min=1)
        return {"loss": pair + self.global_weight * glob, "loss_pair": pair, "loss_global": glob,
                "n_pos": n_pair.detach(), "n_entries": torch.tensor(float(pl.numel()))}
