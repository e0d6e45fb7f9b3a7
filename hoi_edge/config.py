"""Model configuration as dataclasses: one per part, saved inside every checkpoint.

Presets: ``clip4hoi_base`` is the paper's design (DETR-R50 + CLIP ViT-B/16);
``clip4hoi_tiny`` keeps every part and tensor contract but with tiny widths,
for tests and CI on two CPU cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Mapping, TypeVar

from hoi_edge.errors import WeightsError

T = TypeVar("T")


@dataclass
class DetectorConfig:
    """DETR (Carion et al. 2020) with a torchvision ResNet body and the official state-dict layout."""

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
    image_size: int = 640                 # square letterboxed input
    weights: str | None = None            # 'detr-r50' / 'detr-r101' (official, downloads) or a local .pth


@dataclass
class ClipConfig:
    """An open_clip ViT: a registered model name, or an inline architecture for tiny models."""

    model_name: str = "ViT-B-16"
    pretrained: str | None = "openai"     # open_clip tag or a local file; None = random init
    architecture: dict[str, Any] | None = None  # inline open_clip model config (tiny test models)
    # QuickGELU (OpenAI's activation) vs GELU. None = what open_clip's registry says for the pretrained tag;
    # OpenAI weights need True, or every feature comes out subtly wrong.
    quick_gelu: bool | None = None


@dataclass
class HOIConfig:
    """Interactor, decoder and classifier sizes plus the score-integration constants."""

    dim: int = 256
    num_decoder_layers: int = 2
    num_heads: int = 8
    ffn_dim: int = 1024
    max_instances: int = 16               # K instances kept after the detector -> K*K candidate pairs
    box_score_threshold: float = 0.2
    nms_threshold: float = 0.7
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
        if is_dataclass(default) and isinstance(value, Mapping):
            value = _build(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


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


PRESETS = {"clip4hoi-base": clip4hoi_base, "clip4hoi-tiny": clip4hoi_tiny}
