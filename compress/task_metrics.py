"""Task metrics of the export units: what accuracy-aware INT8 keeps within ``max_drop`` of FP32, on every target.

Output cosine says little about what a user sees: a box edge moved by one GFL bin or a score pushed under the
pipeline's threshold costs a cosine of 1e-4 and a person. So each unit is held to the measure of its task,
each a value in [0, 1] where the FP32 network scores 1 against itself:

- ``detector``: box AP50 of the candidate's instances before the pipeline's cut (score >= 0.01, NMS) against
  the FP32 outputs' kept instances, all classes ranked together (:func:`hoi_edge.validate.box_ap.pooled_ap`:
  every instance weighs the same; COCO's mean over classes, which the docs' table reports, lets a class seen
  once on the validation set swing the metric by several points and misled NNCF's layer ranking);
- ``hoi_head``: pair-score agreement: per feasible (human, object) pair, the share of the FP32 pair scores'
  top-5 classes (pair embeddings against the artifact's baked text bank) that the candidate also ranks top-5;
- ``clip_image``, anything else: mean output cosine similarity.

Each metric scores a list of (sample, candidate outputs, FP32 outputs) and gives the value per item, which
NNCF's accuracy control uses to rank layers (``validation_fn``), and which the ExecuTorch revert loop
(:mod:`compress.pt2e`) uses the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from hoi_edge.core.similarity import mean_cosine

Outputs = Sequence[np.ndarray]
Item = tuple[tuple[np.ndarray, ...], list[np.ndarray]]      # (unit inputs, FP32 outputs)
TOP_CLASSES = 5


class TaskMetric:
    """Base: mean output cosine (CLIP). Subclasses override :meth:`score`."""

    name = "mean output cosine similarity to FP32"

    def score(self, samples: Sequence[tuple], outputs: Sequence[Outputs], references: Sequence[Outputs]
              ) -> tuple[float, list[float]]:
        per_item = [mean_cosine(list(o), list(r)) for o, r in zip(outputs, references, strict=True)]
        return float(np.mean(per_item)), per_item

    def validation_fn(self, run: Callable[[Any, tuple], Outputs]) -> Callable[[Any, Sequence[Item]], tuple]:
        """NNCF's ``validation_fn(model, items)``: ``run(model, sample)`` gives the model's outputs."""

        def validate(model: Any, items: Sequence[Item]) -> tuple[float, list[float]]:
            items = list(items)
            outputs = [run(model, sample) for sample, _ in items]
            return self.score([s for s, _ in items], outputs, [r for _, r in items])

        return validate

    def report(self, reached: float, max_drop: float) -> dict[str, Any]:
        """The manifest entry: what accuracy control reached on the validation set (FP32 scores 1)."""
        drop = 1.0 - reached
        return {"validation_metric": self.name, "validation_value": reached, "validation_drop": drop,
                "max_drop_met": bool(drop <= max_drop + 1e-9)}


@dataclass
class DetectorAP(TaskMetric):
    """Box AP50 before the cut against the FP32 outputs' kept instances, as a fraction (1 = FP32's own)."""

    spec: Any             # hoi_edge.pipeline.spec.PipelineSpec
    labels: Any           # hoi_edge.pipeline.postprocess.LabelMap

    name = "box AP50 before the cut against FP32, all classes ranked together (fraction)"

    def _boxes(self, outputs: Outputs, threshold: float | None = None):
        from hoi_edge.validate.box_ap import detector_instances

        size = self.spec.detector_size
        return detector_instances(self.spec, self.labels, outputs, (size, size), threshold)

    def score(self, samples, outputs, references) -> tuple[float, list[float]]:
        from hoi_edge.validate.box_ap import pooled_ap

        cands = [self._boxes(o) for o in outputs]
        refs = [self._boxes(r, self.spec.box_score_threshold) for r in references]

        def ap50(c, r) -> float:
            value = pooled_ap(c, r)
            return 1.0 if value is None else value     # nothing to find, nothing lost

        return ap50(cands, refs), [ap50([c], [r]) for c, r in zip(cands, refs)]


@dataclass
class PairAgreement(TaskMetric):
    """Top-5 class agreement of the pair scores (pair embeddings x text bank) over feasible pairs."""

    text_embeddings: np.ndarray         # (C, E) the artifact's baked bank

    name = f"pair-score top-{TOP_CLASSES} class agreement with FP32 over feasible pairs"

    def _top(self, emb: np.ndarray) -> np.ndarray:
        logits = emb.reshape(-1, emb.shape[-1]) @ self.text_embeddings.T          # the scale does not rank
        return np.argsort(-logits, axis=1, kind="stable")[:, :TOP_CLASSES]

    def score(self, samples, outputs, references) -> tuple[float, list[float]]:
        per_item, total, agreed = [], 0, 0.0
        for sample, out, ref in zip(samples, outputs, references, strict=True):
            valid, human = (np.asarray(sample[i]).reshape(-1) > 0.5 for i in (2, 3))
            k = valid.size
            feasible = ((valid & human)[:, None] & valid[None, :] & ~np.eye(k, dtype=bool)).reshape(-1)
            if not feasible.any():
                per_item.append(1.0)
                continue
            a, b = self._top(np.asarray(out[0]))[feasible], self._top(np.asarray(ref[0]))[feasible]
            share = np.array([len(set(x) & set(y)) / TOP_CLASSES for x, y in zip(a, b)])
            per_item.append(float(share.mean()))
            total, agreed = total + share.size, agreed + float(share.sum())
        return (agreed / total if total else 1.0), per_item


def metric_for(unit: str, metric: TaskMetric | None) -> TaskMetric:
    """``metric``, or the output cosine when the caller has no task metric for ``unit``."""
    return metric if metric is not None else TaskMetric()


def unit_metrics(spec: Any, labels: Any, text_embeddings: np.ndarray) -> dict[str, TaskMetric]:
    """The task metric of every export unit of a pipeline (``spec``, ``labels``) with its baked text bank."""
    return {"detector": DetectorAP(spec, labels), "hoi_head": PairAgreement(np.asarray(text_embeddings, np.float32)),
            "clip_image": TaskMetric()}
