"""Agreement of an artifact with the reference on the same images: the accuracy signal that
needs no labels, and the one that shows *where* quantization changed the output.

Per image, the reference's top-k triplets (HOI class, human box, object box) are matched
one-to-one to the artifact's top-k: same HOI class, and IoU >= 0.5 on both the human and the
object box (the HICO-DET matching rule, with the reference in the place of the GT).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from hoi_edge.eval import Predictions, pairwise_iou

TOP_K = 10
IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class ImageAgreement:
    image: str
    overlap: float | None     # matched / reference triplets; None ("n/a") when the reference found nothing
    matched: int
    reference: int
    candidate: int = 0        # the artifact's triplets in its top-k (extra ones show where the reference had none)


@dataclass(frozen=True)
class AgreementStats:
    """``topk_overlap``: mean, over the images where the reference found triplets, of the fraction of
    the reference's top-k the artifact also has in its top-k; ``None`` ("n/a") when the reference
    found nothing on any image: agreement with nothing is not evidence. ``score_mae`` / ``box_iou``:
    over all matched triplets (mean of the human and object IoU); ``None`` when nothing matched.
    ``extra_triplets``: the artifact's triplets on images where the reference had none."""

    top_k: int
    iou_threshold: float
    topk_overlap: float | None
    min_overlap: float | None
    worst_image: str | None
    score_mae: float | None
    box_iou: float | None
    matched: int
    reference_triplets: int
    images: int
    images_compared: int = 0
    extra_triplets: int = 0
    per_image: tuple[ImageAgreement, ...] = ()

    @property
    def comparable(self) -> bool:
        """Whether the reference found something to agree with on at least one image."""
        return self.topk_overlap is not None

    def to_dict(self, per_image: bool = True) -> dict[str, Any]:
        d = asdict(self)
        d["per_image"] = [asdict(a) for a in self.per_image] if per_image else None
        return d


def _top(p: Predictions, rows: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k best detections among ``rows`` (stable: equal scores keep run order)."""
    return rows[np.argsort(-p.score[rows], kind="stable")[:k]]


def match_triplets(ref_hoi: np.ndarray, ref_h: np.ndarray, ref_o: np.ndarray, cand_hoi: np.ndarray,
                   cand_h: np.ndarray, cand_o: np.ndarray,
                   iou_threshold: float = IOU_THRESHOLD) -> list[tuple[int, int, float, float]]:
    """Greedy one-to-one matching in reference rank order; each reference triplet takes the unused
    candidate of the same class whose worse box IoU is highest. Returns (ref, cand, iou_h, iou_o)."""
    if len(ref_hoi) == 0 or len(cand_hoi) == 0:
        return []
    iou_h, iou_o = pairwise_iou(ref_h, cand_h), pairwise_iou(ref_o, cand_o)
    ok = (ref_hoi[:, None] == cand_hoi[None, :]) & (iou_h >= iou_threshold) & (iou_o >= iou_threshold)
    quality = np.where(ok, np.minimum(iou_h, iou_o), -1.0)
    used = np.zeros(len(cand_hoi), dtype=bool)
    out = []
    for r in range(len(ref_hoi)):
        q = np.where(used, -1.0, quality[r])
        c = int(np.argmax(q))
        if q[c] >= 0:
            used[c] = True
            out.append((r, c, float(iou_h[r, c]), float(iou_o[r, c])))
    return out


def compare_predictions(reference: Predictions, candidate: Predictions, names: Sequence[str], k: int = TOP_K,
                        iou_threshold: float = IOU_THRESHOLD) -> AgreementStats:
    """Agreement of ``candidate`` with ``reference`` over images ``0..len(names)-1``."""
    per_image: list[ImageAgreement] = []
    score_err: list[float] = []
    ious: list[float] = []
    ref_by_image = _rows_by_image(reference, len(names))
    cand_by_image = _rows_by_image(candidate, len(names))
    for i, name in enumerate(names):
        r, c = _top(reference, ref_by_image[i], k), _top(candidate, cand_by_image[i], k)
        if len(r) == 0:
            per_image.append(ImageAgreement(name, None, 0, 0, len(c)))
            continue
        pairs = match_triplets(reference.hoi[r], reference.boxes_h[r], reference.boxes_o[r],
                               candidate.hoi[c], candidate.boxes_h[c], candidate.boxes_o[c], iou_threshold)
        for ri, ci, ih, io in pairs:
            score_err.append(abs(float(reference.score[r[ri]]) - float(candidate.score[c[ci]])))
            ious.append((ih + io) / 2.0)
        per_image.append(ImageAgreement(name, len(pairs) / len(r), len(pairs), len(r), len(c)))
    compared = [a for a in per_image if a.overlap is not None]
    worst = min(compared, key=lambda a: a.overlap) if compared else None
    return AgreementStats(
        top_k=k, iou_threshold=iou_threshold,
        topk_overlap=float(np.mean([a.overlap for a in compared])) if compared else None,
        min_overlap=worst.overlap if worst else None, worst_image=worst.image if worst else None,
        score_mae=float(np.mean(score_err)) if score_err else None,
        box_iou=float(np.mean(ious)) if ious else None, matched=len(score_err),
        reference_triplets=sum(a.reference for a in per_image), images=len(names), images_compared=len(compared),
        extra_triplets=sum(a.candidate for a in per_image if a.overlap is None), per_image=tuple(per_image),
    )


def _rows_by_image(p: Predictions, n: int) -> list[np.ndarray]:
    order = np.argsort(p.image, kind="stable")
    bounds = np.searchsorted(p.image[order], np.arange(n + 1))
    return [order[bounds[i]:bounds[i + 1]] for i in range(n)]
