"""The whole CLIP4HOI pipeline as ONE static-shape network, for apps that cannot run hoi-edge's NumPy glue
(an ExecuTorch app on Android/iOS, a C++ service): letterboxed pixels in, HOI triplets out.

I/O contract (also written into every end-to-end artifact's manifest, ``io_contract``):

inputs
  ``image``       (1,3,S,S) float32, RGB, pixel values 0..255 (not normalised). Letterbox detectors (DETR): the
                  image resized by s = S / max(h, w) to (round(h*s), round(w*s)) (OpenCV INTER_AREA when
                  shrinking, INTER_LINEAR when enlarging) and placed at the top-left corner; the padding may
                  hold anything (the graph masks it, as the NumPy pipeline's zero padding after normalisation).
                  Stretch detectors (NanoDet): the image resized to S x S (INTER_LINEAR, aspect not kept);
                  the graph reverses the channels itself for a BGR network.
  ``image_size``  (1,2) float32: the original image's (height, width) in pixels.
outputs (N = max_detections rows, best first; rows at and after ``count`` are zeros)
  ``human_boxes``, ``object_boxes`` (1,N,4) float32, x1,y1,x2,y2 in ORIGINAL image pixels (the graph knows
  h and w, so the app maps nothing back); ``hoi`` (1,N) int64 class index into the vocabulary's ``hois``;
  ``scores``, ``human_scores``, ``object_scores`` (1,N) float32; ``count`` (1,) int64;
  ``instance_boxes`` (1,K,4), ``instance_scores`` (1,K), ``instance_classes`` (1,K) int64 (detector class id,
  -1 for an empty slot): the humans and objects the pairs were built from.

Inside: normalisation, the detector, instance selection (:func:`hoi_edge.model.graph_rules.select_instances`:
threshold, the best ``nms_candidates`` (NanoDet: 100 of its thousands of anchors), class-wise greedy NMS when
the spec has an NMS IoU — DETR's is 0.7 here, as in the NumPy path — top-K), the CLIP image input made from
the same pixels (area resampling S -> R, the CLIP normalisation),
the CLIP image encoder, the HOI head, scoring against the baked text bank (a constant), the object prior
and the top-N. The vocabulary (text bank, label map) is baked in: re-baking an end-to-end artifact
re-exports this network (``hoi-edge bake``).

One difference from the three-unit pipeline, by construction: the NumPy path letterboxes the original image
into CLIP's R x R input directly; here the CLIP input is resampled from the S x S detector input (the app
sends one image; from a stretched input, :class:`StretchResample` undoes the stretch). :func:`clip_input` is
that rule; the agreement tests feed it to the three-unit pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from hoi_edge.core.conventions import LETTERBOX, STRETCH
from hoi_edge.model import graph_rules as rules

if TYPE_CHECKING:       # the NumPy glue's types only: the model layer does not import the glue (OpenCV)
    from hoi_edge.pipeline.postprocess import LabelMap
    from hoi_edge.pipeline.spec import PipelineSpec

INPUTS = ("image", "image_size")
OUTPUTS = ("human_boxes", "object_boxes", "hoi", "scores", "human_scores", "object_scores", "count",
           "instance_boxes", "instance_scores", "instance_classes")


def area_matrix(src: int, dst: int) -> torch.Tensor:
    """(dst, src) weights of area resampling (each output pixel averages the input interval it covers, as
    OpenCV's INTER_AREA when shrinking); ``A @ X @ A.T`` resizes an (src, src) image to (dst, dst)."""
    step = src / dst
    out = np.zeros((dst, src), np.float64)
    for o in range(dst):
        lo, hi = o * step, (o + 1) * step
        for i in range(int(np.floor(lo)), min(src, int(np.ceil(hi)))):
            out[o, i] = max(0.0, min(hi, i + 1) - max(lo, i))
    return torch.from_numpy(out / out.sum(1, keepdims=True)).float()


def _channel(values: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(1, 3, 1, 1)


class Resample(nn.Module):
    """Area resampling of (1,3,S,S) to (1,3,R,R) as two constant MatMuls (a module, so INT8 export can name it
    and keep it in floating point).

    Both are ``linear`` layers (input @ constantᵀ; the rows by transposing around the second): XNNPACK
    delegates those, while a constant on the left (``A @ X``) stayed a portable ``mm``, ~0.4 s at 640 px."""

    def __init__(self, src: int, dst: int) -> None:
        super().__init__()
        self.register_buffer("weight", area_matrix(src, dst))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = nn.functional.linear(x, self.weight)                                 # (1,3,S,R)
        return nn.functional.linear(cols.transpose(-1, -2), self.weight).transpose(-1, -2)


class StretchResample(nn.Module):
    """A stretched (1,3,S,S) image (each axis resized to S, as NanoDet's input) -> CLIP's letterboxed (1,3,R,R):
    area resampling whose weights follow the original (height, width), so they are computed in the graph; rows
    and columns past the letterboxed content are 0. For a square image it is :class:`Resample`."""

    def __init__(self, src: int, dst: int) -> None:
        super().__init__()
        self.src, self.dst = src, dst
        self.register_buffer("out_index", torch.arange(dst, dtype=torch.float32)[:, None])
        self.register_buffer("in_index", torch.arange(src, dtype=torch.float32)[None, :])

    def weights(self, content: torch.Tensor) -> torch.Tensor:
        """(R,S): output pixel o < ``content`` ((1,1), the letterboxed length) averages the input interval
        [o, o+1) * S / content it covers (the inverse stretch); 0 past the content."""
        step = self.src / content
        lo = self.out_index * step
        hi = lo + step
        w = (torch.minimum(hi, self.in_index + 1.0) - torch.maximum(lo, self.in_index)).clamp(min=0.0)
        return w / w.sum(1, keepdim=True).clamp(min=1e-12) * (self.out_index < content).to(w.dtype)

    def forward(self, x: torch.Tensor, height: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
        scale = self.dst / torch.maximum(height, width)
        rows, cols = self.weights(torch.round(height * scale)), self.weights(torch.round(width * scale))
        return torch.matmul(torch.matmul(rows, x), cols.t())


class Scorer(nn.Module):
    """Scoring against the baked text bank (:func:`hoi_edge.model.graph_rules.score_pairs`): a module so that INT8
    export keeps it in floating point, as the three-unit layout's NumPy scoring is."""

    def __init__(self, text: np.ndarray, hoi_object: np.ndarray, params, max_detections: int) -> None:
        super().__init__()
        self.params, self.max_detections = params, max_detections
        self.register_buffer("text", torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32)))
        self.register_buffer("hoi_object", torch.from_numpy(np.asarray(hoi_object, dtype=np.int64)))

    def forward(self, pair_emb: torch.Tensor, global_emb: torch.Tensor, inst_scores: torch.Tensor,
                valid: torch.Tensor, human: torch.Tensor, objects: torch.Tensor) -> dict[str, torch.Tensor]:
        """Object prior, score integration and the top-N (:mod:`hoi_edge.model.graph_rules`)."""
        prior = rules.pair_class_prior(valid, human, objects, self.hoi_object)
        final = rules.score_pairs(pair_emb, global_emb, self.text, inst_scores, prior, self.params)
        return rules.top_detections(final, self.max_detections)


class Selector(nn.Module):
    """Instance selection (:func:`hoi_edge.model.graph_rules.select_instances`) as a module: INT8 export keeps it
    in floating point (its comparisons, running counts and gathers are not arithmetic to quantize)."""

    def __init__(self, spec: "PipelineSpec", relevant: np.ndarray) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("relevant", torch.from_numpy(relevant.astype(np.float32)))

    def forward(self, scores: torch.Tensor, boxes: torch.Tensor, features: torch.Tensor, height: torch.Tensor,
                width: torch.Tensor) -> dict[str, torch.Tensor]:
        s = self.spec
        return rules.select_instances(scores, boxes, features, self.relevant, height, width, s.detector_size,
                                      s.max_instances, s.box_score_threshold, s.nms_threshold,
                                      s.detector_score_kind, s.detector_resize, s.nms_candidates)


#: Submodules every INT8 export keeps in floating point (the three-unit layout runs them in FP32 NumPy).
FP_MODULES = (Resample, StretchResample, Scorer, Selector)


class EndToEnd(nn.Module):
    """(image (1,3,S,S) 0..255 RGB, image_size (1,2)) -> the fixed-size outputs listed in the module doc."""

    def __init__(self, detector: nn.Module, clip_image: nn.Module, head: nn.Module, spec: "PipelineSpec",
                 labels: "LabelMap", text: np.ndarray, hoi_object: np.ndarray) -> None:
        super().__init__()
        if spec.detector_resize not in (LETTERBOX, STRETCH) or spec.detector_channels not in ("rgb", "bgr"):
            raise ValueError(f"detector family {spec.detector_family!r}: no end-to-end input for "
                             f"{spec.detector_resize} / {spec.detector_channels}")
        self.detector, self.clip_image, self.head, self.spec = detector, clip_image, head, spec
        self.stretch, self.bgr = spec.detector_resize == STRETCH, spec.detector_channels == "bgr"
        s, r = spec.detector_size, spec.clip_size
        self.register_buffer("det_mean", _channel(spec.detector_mean))
        self.register_buffer("det_std", _channel(spec.detector_std))
        self.register_buffer("clip_mean", _channel(spec.clip_mean))
        self.register_buffer("clip_std", _channel(spec.clip_std))
        self.resample = StretchResample(s, r) if self.stretch else Resample(s, r)
        self.register_buffer("rows_s", torch.arange(s, dtype=torch.float32))
        self.register_buffer("rows_r", torch.arange(r, dtype=torch.float32))
        self.select = Selector(spec, labels.relevant())
        self.register_buffer("to_object", torch.from_numpy(labels.to_object.astype(np.int64)))
        self.scorer = Scorer(text, hoi_object, spec.scoring, spec.max_detections)
        self.person_class = int(labels.person_class)

    def content_mask(self, height: torch.Tensor, width: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """(1,1,L,L) 1 inside the letterboxed image content of an L x L input, 0 on the padding."""
        scale = rows.shape[0] / torch.maximum(height, width)
        nh, nw = torch.round(height * scale), torch.round(width * scale)
        return ((rows[:, None] < nh) & (rows[None, :] < nw)).to(torch.float32)[None, None]

    def detector_input(self, image: torch.Tensor, height: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
        """The detector's normalised input; twin of :class:`hoi_edge.pipeline.preprocess.Letterbox` (0 on the padding;
        a stretched input has none; BGR detectors get the channels reversed, by slices XNNPACK delegates)."""
        x = torch.cat([image[:, 2:3], image[:, 1:2], image[:, 0:1]], 1) if self.bgr else image
        x = (x / 255.0 - self.det_mean) / self.det_std
        return x if self.stretch else x * self.content_mask(height, width, self.rows_s)

    def clip_input(self, image: torch.Tensor, height: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
        """CLIP's (1,3,R,R) input from the same S x S pixels: CLIP's normalisation with the padding at 0 (CLIP's
        mean colour), area resampling to R x R, 0 outside the content (as the NumPy path's letterbox).

        Normalising before resampling equals normalising after (the weights sum to 1) and keeps per-channel
        ops away from the MatMul outputs, which OpenVINO's CPU plugin cannot fuse ('data.size() == OC')."""
        x = (image / 255.0 - self.clip_mean) / self.clip_std
        if self.stretch:                # the whole S x S input is content; the weights undo the stretch
            return self.resample(x, height, width)
        x = x * self.content_mask(height, width, self.rows_s)
        return self.resample(x) * self.content_mask(height, width, self.rows_r)

    def forward(self, image: torch.Tensor, image_size: torch.Tensor) -> tuple[torch.Tensor, ...]:
        spec = self.spec
        height, width = image_size[:, 0:1], image_size[:, 1:2]      # (1,1), not 0-d: XNNPACK lowers these
        scores, boxes, features = self.detector(self.detector_input(image, height, width))
        inst = self.select(scores[0], boxes[0], features[0], height, width)
        valid = inst["valid"].to(torch.float32)
        human = ((inst["classes"] == self.person_class) & inst["valid"]).to(torch.float32)
        objects = torch.where(inst["valid"], self.to_object[inst["classes"]], torch.full_like(inst["classes"], -1))
        global_emb, patches = self.clip_image(self.clip_input(image, height, width))
        side = torch.maximum(height, width)
        pair_emb = self.head(inst["features"][None], (inst["boxes"] / side)[None], valid[None], human[None], patches)
        top = self.scorer(pair_emb[0], global_emb[0], inst["scores"], valid, human, objects)
        k = spec.max_instances
        subject, obj = top["pair"] // k, top["pair"] % k
        real = top["real"].to(torch.float32)
        classes = torch.where(inst["valid"], inst["classes"], torch.full_like(inst["classes"], -1))
        return ((inst["boxes"][subject] * real[:, None])[None], (inst["boxes"][obj] * real[:, None])[None],
                top["hoi"][None], top["score"][None], (inst["scores"][subject] * real)[None],
                (inst["scores"][obj] * real)[None], top["count"], inst["boxes"][None], inst["scores"][None],
                classes[None])

