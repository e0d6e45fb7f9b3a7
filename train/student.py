"""``hoi-edge distill``: a small student CLIP4HOI (the edge preset) learns a full teacher's outputs on
unlabelled images, so that it can run at camera rate where the teacher cannot.

The student keeps its own detector (NanoDet-g, frozen unless detector distillation is on), a light CLIP image
tower and the slim HOI head, and takes the TEACHER's CLIP text tower, prompt context and logit scales, frozen
(:func:`make_student`): the text bank an artifact bakes is the teacher's, so the student must place its images
and pairs in the teacher's joint space. Each term below is a student-teacher distance, 0 when they agree:

- ``global``: 1 - cos(student, teacher global CLIP embedding): plain feature distillation of the embedding,
  which CLIP-KD finds recovers most of what its fuller recipes do.
- ``pair``: the teacher's pair logits on the STUDENT's own pairs. Each kept student instance is matched to the
  teacher detector candidate whose box overlaps it most (IoU >= ``match_iou``); the teacher's HOI head runs on
  those candidates (their features and boxes) and the teacher's patches; the distance is the Bernoulli KL
  divergence KL(teacher || student) per (pair, class) entry the object prior lets score, averaged.
- ``patch``: 1 - cos(P(student patch token), the teacher's patch tokens pooled onto the student's grid), with
  P a learned linear map (FitNets' regressor, identity at the start; trained here, never exported).
- ``detector`` (optional, weight 0 by default): the teacher's kept instances as soft targets for the student
  detector's candidates that overlap them: box L1 in the student's input coordinates and the BCE of the class
  probability. Needs a detector with per-class probabilities (NanoDet); the detector then trains too.

The same distances on held-out images (never trained on) are measured before the first step and after every
epoch, with two agreements (top-10 classes of the global scores, top-1 class of each matched pair): the log
and the command's last line show whether the student came closer to the teacher where it did not train.
Not to be confused with ``compress.distill``, which is quantization-aware distillation of one network
(``export --distill``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from hoi_edge.core.conventions import PROBABILITIES
from hoi_edge.core.errors import HOIEdgeError, WeightsError
from hoi_edge.core.geometry import pairwise_iou_continuous
from hoi_edge.core.hashing import file_sha256
from hoi_edge.core.provenance import RANDOM_TEACHER, random_init_parts
from hoi_edge.data.vocabulary import normalize_name
from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.model.clip_encoders import quick_gelu
from hoi_edge.model.config import ClipConfig, ModelConfig
from hoi_edge.pipeline.postprocess import LabelMap, head_inputs, pair_class_prior
from hoi_edge.pipeline.preprocess import boxes_to_pixels, pixels_to_boxes
from hoi_edge.runtime.torch_runner import pipeline_spec
from hoi_edge.weights.checkpoint import build_model, save_checkpoint
from train.forward import FrozenEncoder, FrozenOutputs
from train.loop import (
    RunConfig,
    json_lines_log,
    read_training_checkpoint,
    restore_training_state,
    save_training_checkpoint,
    step_bar,
    write_record,
)
from train.targets import query_boxes_xyxy
from train.unlabelled import UnlabelledImages

LOG_NAME = "distill_log.jsonl"
LAST_NAME = "last.pt"
TERMS = ("global", "pair", "patch", "detector")
TOP_K = 10                     # global-score agreement: overlap of the top-10 classes
# the classifier (prompt context, logit scales) is the teacher's and stays frozen; so does the text tower
TEXT_PREFIXES = ("clip.", "classifier.")
# HOIConfig fields that belong to the classifier and the scoring, copied from the teacher; the rest (head sizes,
# pair budget, detector thresholds) are the student's own
TEACHER_HOI_FIELDS = ("prefix_init", "conjunction_init", "init_logit_scale", "init_logit_bias", "global_weight",
                      "detector_score_power", "max_detections")


@dataclass
class StudentConfig(RunConfig):
    """Everything that decides a distillation run; saved in every checkpoint it writes (``extra['distill_config']``)."""

    epochs: int = 10
    lr: float = 3e-4
    weight_decay: float = 1e-4
    batch_size: int = 4
    seed: int = 0
    clip_grad_norm: float | None = 1.0
    max_steps_per_epoch: int | None = None   # cap for smoke runs
    global_weight: float = 1.0
    pair_weight: float = 1.0
    patch_weight: float = 1.0
    detector_weight: float = 0.0             # > 0: DETR -> NanoDet box and class distillation; the detector trains
    match_iou: float = 0.5                   # student instance <-> teacher candidate
    cache: bool = True                       # keep the frozen networks' per-image outputs in memory
    out: str = "student.pt"                  # the final student checkpoint
    run_dir: str = "student_run"             # last.pt (resumable) and the JSON-lines log
    resume: str | None = None                # a last.pt of this run to continue from
    device: str | None = None                # None: cuda when available

    def weights(self) -> dict[str, float]:
        return {"global": self.global_weight, "pair": self.pair_weight, "patch": self.patch_weight,
                "detector": self.detector_weight}


# ---------------------------------------------------------------------------------------------- the student


def teacher_record(teacher_path: Path, teacher: CLIP4HOI) -> str:
    """``distilled_from``: the teacher file and its hash, and whether the teacher itself had random parts."""
    parts = random_init_parts(teacher.cfg)
    text = f"{teacher_path.name} (sha256 {file_sha256(teacher_path)[:16]})"
    return text + (f"; {RANDOM_TEACHER}: {', '.join(parts)}" if parts else "")


def make_student(teacher: CLIP4HOI, cfg: ModelConfig, distilled_from: str) -> CLIP4HOI:
    """The student of ``cfg`` (its detector, image tower and HOI head sizes) with the teacher's text tower,
    prompt context, logit scales and vocabulary copied in; every copied weight is checked to fit."""
    t_clip = teacher.cfg.clip
    text = ClipConfig(model_name=t_clip.model_name, pretrained=None, architecture=copy.deepcopy(t_clip.architecture),
                      quick_gelu=quick_gelu(t_clip), image_tower=dataclasses.replace(cfg.clip.image_tower))
    if not text.image_tower.replaces_own:
        raise HOIEdgeError("the student needs its own image tower (clip.image_tower, as the clip4hoi-edge presets "
                           "have): the text tower is the teacher's")
    hoi = dataclasses.replace(cfg.hoi, **{f: getattr(teacher.cfg.hoi, f) for f in TEACHER_HOI_FIELDS})
    student_cfg = dataclasses.replace(cfg, clip=text, hoi=hoi)
    student = build_model(student_cfg, teacher.vocab)       # text tower built random: the teacher's is copied in
    ours, theirs = student.state_dict(), teacher.state_dict()
    copied = {k: theirs[k] for k in ours if k.startswith(TEXT_PREFIXES) and not k.startswith("clip.visual.")}
    wrong = [k for k, v in copied.items() if v.shape != ours[k].shape] + [k for k in copied if k not in theirs]
    if wrong:
        raise WeightsError(f"the student's text tower or prompts do not fit the teacher's ({wrong[:3]}): the student "
                           "preset must share the teacher's CLIP text tower")
    student.load_state_dict(copied, strict=False)
    student.cfg.clip.pretrained = t_clip.pretrained           # provenance: the text tower is the teacher's
    student.cfg.clip.image_tower.distilled_from = distilled_from
    return student


def set_trainable(student: CLIP4HOI, detector: bool) -> None:
    """Train the image tower and the HOI head (and the detector for detector distillation); the text tower and the
    classifier stay the teacher's."""
    student.requires_grad_(False)
    student.clip.visual.requires_grad_(True)
    student.head.requires_grad_(True)
    if detector:
        student.detector.requires_grad_(True)


# ---------------------------------------------------------------------------------------------- the distances


def bernoulli_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """Element-wise KL(Bernoulli(sigmoid t) || Bernoulli(sigmoid s)): >= 0, 0 exactly when the logits agree."""
    p = torch.sigmoid(teacher_logits)
    return (p * (F.logsigmoid(teacher_logits) - F.logsigmoid(student_logits))
            + (1 - p) * (F.logsigmoid(-teacher_logits) - F.logsigmoid(-student_logits)))


def _grid(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, E) square-grid tokens -> (B, E, s, s)."""
    side = math.isqrt(tokens.shape[1])
    if side * side != tokens.shape[1]:
        raise HOIEdgeError(f"patch tokens ({tokens.shape[1]}) do not form a square grid")
    return tokens.transpose(1, 2).unflatten(2, (side, side))


def pool_to_grid(teacher: torch.Tensor, n: int) -> torch.Tensor:
    """The teacher's (B, Nt, E) patch tokens on the student's grid of ``n`` tokens: area-averaged when coarser,
    bilinear when finer; (B, n, E)."""
    side = math.isqrt(n)
    grid = _grid(teacher)
    grid = F.adaptive_avg_pool2d(grid, side) if side <= grid.shape[-1] else \
        F.interpolate(grid, size=(side, side), mode="bilinear", align_corners=False)
    return grid.flatten(2).transpose(1, 2)


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (1 - F.cosine_similarity(a, b, dim=-1)).mean()


# ---------------------------------------------------------------------------------------------- one batch


@dataclass
class ImageTargets:
    """What the frozen networks give for one image (NumPy; what ``cache`` keeps)."""

    clip_in: np.ndarray          # (1,3,R,R) the student's CLIP input
    det_in: np.ndarray           # (1,3,S,S) the student's detector input (for detector distillation)
    head: tuple[np.ndarray, ...]  # the student head's instance inputs (features, boxes, valid, human), batch 1
    prior: np.ndarray            # (K*K, C) bool: matched feasible pairs x object prior
    teacher_global: np.ndarray   # (E,)
    teacher_patches: np.ndarray  # (Nt, E)
    teacher_logits: np.ndarray   # (K*K, C) the teacher's pair logits on the student's pairs
    det_boxes: np.ndarray        # (M,4) the teacher's kept instances, cx,cy,w,h of the student's detector input
    det_pixels: np.ndarray       # (M,4) the same, x1,y1,x2,y2 image pixels
    det_classes: np.ndarray      # (M,) their student class ids
    det_scores: np.ndarray       # (M,)
    image_hw: tuple[int, int] = (0, 0)


class StudentTargets:
    """images -> :class:`ImageTargets`: the student's instances and the teacher's outputs on them (no gradients)."""

    def __init__(self, teacher: CLIP4HOI, student: CLIP4HOI, match_iou: float, detector: bool) -> None:
        self.teacher, self.student, self.match_iou, self.detector = teacher, student, match_iou, detector
        self.t_spec, self.s_spec = pipeline_spec(teacher), pipeline_spec(student)
        self.s_labels = LabelMap.build(self.s_spec.detector_classes, student.vocab)
        self.t_labels = LabelMap.build(self.t_spec.detector_classes, teacher.vocab)
        self.teacher_encoder = FrozenEncoder(teacher)
        self.det_transform, self.clip_transform = self.s_spec.detector_transform(), self.s_spec.clip_transform()
        s_names = [normalize_name(n) for n in self.s_spec.detector_classes]
        self.class_map = np.asarray([s_names.index(n) if (n := normalize_name(c)) in s_names and n != "n/a" else -1
                                     for c in self.t_spec.detector_classes], np.int64)
        with torch.no_grad():
            self.text = teacher.text_embeddings()

    @property
    def device(self) -> torch.device:
        return self.text.device

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray]) -> list[ImageTargets]:
        det_in = [self.det_transform(x) for x in images]
        clip_in = [self.clip_transform(x) for x in images]
        s_det = [o.float().cpu().numpy() for o in self.student.detector(torch.from_numpy(np.concatenate(det_in))
                                                                         .to(self.device))]
        teacher = self.teacher_encoder(images)
        out, head_t = [], []
        for b, (image, t) in enumerate(zip(images, teacher)):
            hw = tuple(image.shape[:2])
            inst = self.s_spec.select(*(o[b:b + 1] for o in s_det), self.s_labels, hw)
            t_boxes = query_boxes_xyxy(t.det_boxes, hw, self.t_spec.detector_size, self.t_spec.detector_resize)
            iou = pairwise_iou_continuous(inst.boxes, t_boxes)
            best = iou.argmax(1)
            matched = inst.valid & (iou[np.arange(best.size), best] >= self.match_iou)
            side = float(max(hw))
            head_t.append((t.det_features[best][None], (t_boxes[best] / side)[None].astype(np.float32),
                           matched[None].astype(np.float32), inst.human[None].astype(np.float32)))
            prior = pair_class_prior(dataclasses.replace(inst, valid=matched), self.student.vocab.hoi_object)
            kept_det_in = det_in[b] if self.detector else np.zeros(0, np.float32)     # 2 MB an image: only if used
            out.append(ImageTargets(clip_in[b], kept_det_in, head_inputs(inst, hw), prior, t.clip_global,
                                    t.clip_patches, np.empty(0, np.float32), *self._detector_targets(t, hw), hw))
        logits = self._teacher_logits(head_t, teacher)
        return [dataclasses.replace(o, teacher_logits=lg) for o, lg in zip(out, logits)]

    def _teacher_logits(self, head_t: list[tuple[np.ndarray, ...]], teacher: list[FrozenOutputs]) -> np.ndarray:
        def stack(i: int) -> torch.Tensor:
            return torch.from_numpy(np.concatenate([h[i] for h in head_t])).to(self.device)

        patches = torch.from_numpy(np.stack([t.clip_patches for t in teacher])).to(self.device)
        pair_emb = self.teacher.head(stack(0), stack(1), stack(2), stack(3), patches)
        glob = torch.from_numpy(np.stack([t.clip_global for t in teacher])).to(self.device)
        return self.teacher.classifier.logits(pair_emb, glob, self.text)[0].float().cpu().numpy()

    def _detector_targets(self, t: FrozenOutputs, hw: tuple[int, int]) -> tuple[np.ndarray, ...]:
        if not self.detector:
            return np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), \
                np.zeros(0, np.float32)
        kept = self.t_spec.select(t.det_scores[None], t.det_boxes[None], t.det_features[None], self.t_labels, hw)
        classes = self.class_map[kept.classes]
        keep = kept.valid & (classes >= 0)
        boxes = pixels_to_boxes(kept.boxes[keep], hw, self.s_spec.detector_size, self.s_spec.detector_resize)
        return boxes, kept.boxes[keep], classes[keep], kept.scores[keep].astype(np.float32)


class StudentLoss(nn.Module):
    """The distances of one batch (:class:`ImageTargets` list) with gradients into the student; holds the learned
    patch projection P."""

    def __init__(self, student: CLIP4HOI, text: torch.Tensor, weights: Mapping[str, float], match_iou: float) -> None:
        super().__init__()
        self.student, self.weights, self.match_iou = student, dict(weights), match_iou
        self.spec = pipeline_spec(student)
        self.register_buffer("text", text, persistent=False)
        dim = text.shape[-1]
        self.patch_proj = nn.Linear(dim, dim)
        with torch.no_grad():
            self.patch_proj.weight.copy_(torch.eye(dim))
            self.patch_proj.bias.zero_()
        self.encoder = student.image_encoder()

    def forward(self, batch: Sequence[ImageTargets]) -> dict[str, torch.Tensor]:
        dev = self.text.device

        def t(arrays: Sequence[np.ndarray], concat: bool = False) -> torch.Tensor:
            return torch.from_numpy(np.concatenate(arrays) if concat else np.stack(arrays)).to(dev)

        glob, patches = self.encoder(t([b.clip_in for b in batch], concat=True))
        head = [t([b.head[i] for b in batch], concat=True) for i in range(4)]
        pair_emb = self.student.head(*head, patches)
        pair_logits, global_logits = self.student.classifier.logits(pair_emb, glob, self.text)
        prior = t([b.prior for b in batch])
        teacher_global = t([b.teacher_global for b in batch])
        kl = bernoulli_kl(t([b.teacher_logits for b in batch]), pair_logits)
        zero = glob.sum() * 0.0
        terms = {
            "global": cosine_distance(glob, teacher_global),
            "pair": kl[prior].mean() if prior.any() else zero,
            "patch": cosine_distance(self.patch_proj(patches),
                                     pool_to_grid(t([b.teacher_patches for b in batch]), patches.shape[1])),
            "detector": self._detector(batch) if self.weights["detector"] > 0 else zero,
        }
        terms["loss"] = sum(self.weights[k] * terms[k] for k in TERMS)
        with torch.no_grad():
            teacher_logits = teacher_global @ self.text.t()
            terms["agree_global"] = topk_overlap(global_logits.detach(), teacher_logits, TOP_K)
            terms["agree_pair"] = top1_agreement(pair_logits.detach(), t([b.teacher_logits for b in batch]), prior)
            terms["pairs"] = prior.any(-1).sum().float()
        return terms

    def _detector(self, batch: Sequence[ImageTargets]) -> torch.Tensor:
        """Teacher instances as soft targets of the student candidates whose boxes overlap them (IoU >= match_iou):
        L1 on the boxes, BCE on every class probability of all candidates (0 where no teacher instance)."""
        dev = self.text.device
        det_in = torch.from_numpy(np.concatenate([b.det_in for b in batch])).to(dev)
        scores, boxes, _ = self.student.detector(det_in)
        losses = []
        for i, b in enumerate(batch):
            target = torch.zeros_like(scores[i])
            l1 = scores.new_zeros(())
            if len(b.det_boxes):
                pred = boxes_to_pixels(boxes[i].detach().cpu().numpy(), b.image_hw, self.spec.detector_size,
                                       self.spec.detector_resize)
                iou = pairwise_iou_continuous(pred, b.det_pixels)
                cand, inst = np.nonzero(iou >= self.match_iou)
                if cand.size:
                    target[cand, b.det_classes[inst]] = torch.from_numpy(b.det_scores[inst]).to(dev)
                    l1 = (boxes[i][cand] - torch.from_numpy(b.det_boxes[inst]).to(dev)).abs().sum(-1).mean()
            losses.append(F.binary_cross_entropy(scores[i].clamp(1e-6, 1 - 1e-6), target) + l1)
        return torch.stack(losses).mean()


def topk_overlap(student: torch.Tensor, teacher: torch.Tensor, k: int) -> torch.Tensor:
    """Mean fraction of the teacher's top-k classes among the student's top-k, per row of (B, C) scores."""
    k = min(k, student.shape[-1])
    s, t = student.topk(k, -1).indices, teacher.topk(k, -1).indices
    return (s[..., :, None] == t[..., None, :]).any(-1).float().mean()


def top1_agreement(student: torch.Tensor, teacher: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Over the pairs with an allowed class: how often student and teacher rank the same allowed class first."""
    pairs = prior.any(-1)
    if not pairs.any():
        return student.new_tensor(float("nan"))
    low = torch.finfo(student.dtype).min
    s = student.masked_fill(~prior, low).argmax(-1)
    t = teacher.masked_fill(~prior, low).argmax(-1)
    return (s == t)[pairs].float().mean()


# ---------------------------------------------------------------------------------------------- the loop


class StudentDistiller:
    """``StudentDistiller(teacher, student, images, cfg, heldout).fit()``: train the student toward the teacher.

    ``teacher_path`` is recorded (and checked on resume); ``notify`` receives one-line notices (default stderr).
    """

    def __init__(self, teacher: CLIP4HOI, student: CLIP4HOI, images: UnlabelledImages, cfg: StudentConfig,
                 teacher_path: Path, heldout: UnlabelledImages | None = None,
                 notify: Callable[[str], None] | None = None) -> None:
        if cfg.batch_size < 1 or cfg.epochs < 0:
            raise HOIEdgeError("batch_size must be >= 1 and epochs >= 0")
        if cfg.detector_weight > 0 and pipeline_spec(student).detector_score_kind != PROBABILITIES:
            raise HOIEdgeError("detector distillation needs a student detector with per-class probabilities "
                               "(NanoDet); this student's is DETR")
        self.cfg, self.images, self.heldout = cfg, images, heldout
        self.notify = notify or (lambda msg: tqdm.write(msg, file=sys.stderr))
        self.device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch.manual_seed(cfg.seed)
        self.teacher = teacher.to(self.device).eval().requires_grad_(False)
        self.student = student.to(self.device)
        set_trainable(self.student, detector=cfg.detector_weight > 0)
        self.targets = StudentTargets(self.teacher, self.student, cfg.match_iou, cfg.detector_weight > 0)
        self.loss = StudentLoss(self.student, self.targets.text, cfg.weights(), cfg.match_iou).to(self.device)
        self.params = [p for p in self.loss.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.teacher_sha = file_sha256(teacher_path)
        self.teacher_path = teacher_path
        self.run_dir = Path(cfg.run_dir)
        self.epoch, self.step = 0, 0
        self.history: list[dict[str, Any]] = []      # held-out measurements, initial first
        self._cache: dict[tuple[str, int], ImageTargets] = {}
        if cfg.resume:
            self._resume(Path(cfg.resume))

    # ------------------------------------------------------------------ checkpoints
    def _resume(self, path: Path) -> None:
        data, extra = read_training_checkpoint(path)
        if extra.get("teacher_sha256") != self.teacher_sha:
            raise HOIEdgeError(f"{path} was distilled from another teacher than {self.teacher_path}")
        restore_training_state(self.student, self.optimizer, data, path)
        try:
            self.loss.patch_proj.load_state_dict(extra["patch_projection"])
        except (KeyError, RuntimeError) as exc:
            raise WeightsError(f"{path}: no usable patch projection state ({exc})") from exc
        self.epoch, self.step = int(extra["epoch"]), int(extra.get("step", 0))
        self.history = list(extra.get("heldout") or [])

    def _extra(self) -> dict[str, Any]:
        return {"distill_config": self.cfg.to_dict(), "teacher": str(self.teacher_path),
                "teacher_sha256": self.teacher_sha, "heldout": self.history}

    def save_last(self) -> Path:
        return save_training_checkpoint(self.student, self.run_dir / LAST_NAME, self.optimizer, self.epoch,
                                        self.step, patch_projection=self.loss.patch_proj.state_dict(),
                                        **self._extra())

    def save_student(self) -> Path:
        """The deliverable: the student alone (no optimizer), with the teacher and held-out record in ``extra``."""
        return save_checkpoint(self.student, self.cfg.out, extra={"distillation": self._extra()})

    # ------------------------------------------------------------------ data
    def _targets(self, images: UnlabelledImages, indices: Sequence[int], key: str) -> list[ImageTargets]:
        """The batch's frozen outputs, from the cache where this image was seen before."""
        todo = [i for i in indices if (key, i) not in self._cache]
        made = dict(zip(todo, self.targets([images[i] for i in todo]))) if todo else {}
        if self.cfg.cache:
            self._cache.update({(key, i): v for i, v in made.items()})
        return [self._cache[key, i] if (key, i) in self._cache else made[i] for i in indices]

    # ------------------------------------------------------------------ loop
    def fit(self) -> list[dict[str, Any]]:
        """Distil from ``self.epoch`` to ``cfg.epochs``; returns the step records (also in the JSON-lines log)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        records: list[dict[str, Any]] = []
        with json_lines_log(self.run_dir / LOG_NAME, resumed_at=self.step if self.cfg.resume else None) as log:
            if self.heldout is not None and not self.history:
                self._measure_heldout(log)
            while self.epoch < self.cfg.epochs:
                records += self._epoch(log)
                self.epoch += 1
                if self.heldout is not None:
                    self._measure_heldout(log)
                self.save_last()
        self.student.eval()
        return records

    def _epoch(self, log) -> list[dict[str, Any]]:
        cfg = self.cfg
        order = np.random.default_rng((cfg.seed, self.epoch)).permutation(len(self.images))
        steps = math.ceil(len(order) / cfg.batch_size)
        if cfg.max_steps_per_epoch:
            steps = min(steps, cfg.max_steps_per_epoch)
        self.student.train()
        records = []
        bar = step_bar(steps, f"distill epoch {self.epoch + 1}/{cfg.epochs}")
        try:
            for k in range(steps):
                batch = self._targets(self.images, order[k * cfg.batch_size:(k + 1) * cfg.batch_size].tolist(), "train")
                terms = self.loss(batch)
                if not torch.isfinite(terms["loss"]):
                    raise HOIEdgeError(f"distillation loss is {float(terms['loss'])} at epoch {self.epoch + 1}, step "
                                       f"{self.step + 1}; lower --lr")
                self.optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                if cfg.clip_grad_norm:
                    torch.nn.utils.clip_grad_norm_(self.params, cfg.clip_grad_norm)
                self.optimizer.step()
                self.step += 1
                rec = {"epoch": self.epoch + 1, "step": self.step, **_floats(terms)}
                records.append(rec)
                write_record(log, rec)
                bar.set_postfix(loss=f"{rec['loss']:.4f}")
                bar.update()
        finally:
            bar.close()
        return records

    @torch.no_grad()
    def evaluate(self, images: UnlabelledImages, key: str = "heldout") -> dict[str, float]:
        """The distances and agreements on ``images``, averaged over images (no gradient, no update)."""
        was = self.student.training
        self.student.eval()
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        try:
            for start in range(0, len(images), self.cfg.batch_size):
                idx = list(range(start, min(start + self.cfg.batch_size, len(images))))
                for k, v in _floats(self.loss(self._targets(images, idx, key))).items():
                    if math.isfinite(v):
                        sums[k] = sums.get(k, 0.0) + v * len(idx)
                        counts[k] = counts.get(k, 0.0) + len(idx)
        finally:
            self.student.train(was)
        return {k: sums[k] / counts[k] for k in sums}

    def _measure_heldout(self, log) -> None:
        metrics = self.evaluate(self.heldout)
        entry = {"epoch": self.epoch, "step": self.step, "heldout": metrics}
        self.history.append(entry)
        write_record(log, entry)
        first = self.history[0]["heldout"]["loss"]
        self.notify(f"held-out distance after epoch {self.epoch}: {metrics['loss']:.4f}"
                    + (f" ({first / metrics['loss']:.2f}x lower than at the start)" if self.epoch else " (start)"))

    def improvement(self) -> float | None:
        """Held-out distance at the start / now (None without held-out images)."""
        if len(self.history) < 1:
            return None
        return self.history[0]["heldout"]["loss"] / max(self.history[-1]["heldout"]["loss"], 1e-12)


def _floats(terms: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in terms.items()}
