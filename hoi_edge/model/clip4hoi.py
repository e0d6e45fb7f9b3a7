"""CLIP4HOI assembled from its parts, plus the three export units the runtimes run.

Export units (static shapes, batch 1 on device):
  detector  : images (1,3,S,S)                         -> scores (1,N,C'), boxes (1,N,4), features (1,N,Dd)
              (DETR: C+1 logits with no-object; NanoDet: C sigmoid probabilities; see model/detectors.py)
  clip_image: images (1,3,R,R)                         -> global (1,E), patches (1,N,E)
  hoi_head  : features (1,K,Dd), boxes (1,K,4), valid (1,K), human (1,K), patches (1,N,E)
                                                      -> pair_embeddings (1,K*K,E)
Instance selection and score integration between/after them are NumPy
(:mod:`hoi_edge.pipeline.postprocess`), shared by every backend.
"""

from __future__ import annotations

import torch
from torch import nn

from hoi_edge.core.units import EXPORT_UNITS  # noqa: F401  (re-exported: the unit names export_unit accepts)
from hoi_edge.data.vocabulary import Vocabulary
from hoi_edge.model.classifier import HOIClassifier
from hoi_edge.model.clip_encoders import build_clip, export_image_encoder, image_encoder
from hoi_edge.model.config import ModelConfig
from hoi_edge.model.detectors import build_detector, family
from hoi_edge.model.hoi_decoder import HOIDecoder
from hoi_edge.model.interactor import HOInteractor, pair_feasibility


class HOIHead(nn.Module):
    """Interactor + decoder: the trainable image-side part of CLIP4HOI."""

    def __init__(self, cfg: ModelConfig, clip_dim: int, feature_dim: int | None = None) -> None:
        super().__init__()
        h = cfg.hoi
        # the detector's per-candidate feature width (its family says; DETR: hidden_dim)
        self.interactor = HOInteractor(cfg.detector.hidden_dim if feature_dim is None else feature_dim, h.dim)
        self.decoder = HOIDecoder(h.dim, clip_dim, h.num_heads, h.ffn_dim, h.num_decoder_layers)

    def forward(self, features: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor,
                human: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        tokens = self.interactor(features, boxes, valid)
        return self.decoder(tokens, pair_feasibility(valid, human), patches)


class CLIP4HOI(nn.Module):
    """Frozen detector (DETR or NanoDet) + frozen CLIP, trainable HO interactor, HOI decoder and prompt context.

    The detector is built without weights here; :func:`hoi_edge.weights.checkpoint.build_model` loads what the config names.
    """

    def __init__(self, cfg: ModelConfig, vocab: Vocabulary) -> None:
        super().__init__()
        self.cfg = cfg
        self.detector = build_detector(cfg.detector, load=False)
        self.detector_feature_dim = family(cfg.detector).feature_dim(self.detector)
        self.clip = build_clip(cfg.clip)
        self.head = HOIHead(cfg, int(self.clip.text_projection.shape[-1]), self.detector_feature_dim)
        self.classifier = HOIClassifier(self.clip, cfg.hoi, vocab)
        self.freeze_pretrained()

    @property
    def vocab(self) -> Vocabulary:
        return self.classifier.vocab

    def freeze_pretrained(self) -> None:
        """The paper keeps the detector and both CLIP towers frozen."""
        for p in list(self.detector.parameters()) + list(self.clip.parameters()):
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "CLIP4HOI":
        super().train(mode)
        self.detector.eval()
        self.clip.eval()
        return self

    def image_encoder(self) -> nn.Module:
        """image -> (global, patches) through the CLIP image tower (a ViT's or a timm tower's encoder)."""
        return image_encoder(self.clip.visual).train(self.clip.training)

    def export_unit(self, name: str) -> nn.Module:
        """The network a target exports; a detector with ``export_module`` (DETR) gives an equivalent copy
        shaped for the runtimes (folded batch norms, split attention projections), a timm image tower a
        re-parameterised copy."""
        if name == "detector":
            export = getattr(self.detector, "export_module", None)
            return export() if export is not None else self.detector
        if name == "clip_image":
            return export_image_encoder(self.clip.visual).eval()
        units = {"hoi_head": self.head}
        return units[name]

    def text_embeddings(self) -> torch.Tensor:
        return self.classifier.text_embeddings(self.clip)
