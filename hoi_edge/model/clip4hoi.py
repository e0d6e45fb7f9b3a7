"""CLIP4HOI assembled from its parts, plus the three export units the runtimes run.

Export units (static shapes, batch 1 on device):
  detector  : images (1,3,S,S)                         -> logits (1,Q,C+1), boxes (1,Q,4), features (1,Q,Dd)
  clip_image: images (1,3,R,R)                         -> global (1,E), patches (1,N,E)
  hoi_head  : features (1,K,Dd), boxes (1,K,4), valid (1,K), human (1,K), patches (1,N,E)
                                                      -> pair_embeddings (1,K*K,E)
Instance selection and score integration between/after them are NumPy
(:mod:`hoi_edge.postprocess`), shared by every backend.
"""

from __future__ import annotations

import torch
from torch import nn

from hoi_edge.config import ModelConfig
from hoi_edge.model.classifier import HOIClassifier
from hoi_edge.model.clip_encoders import ClipImageEncoder, build_clip
from hoi_edge.model.detector import DETR
from hoi_edge.model.hoi_decoder import HOIDecoder
from hoi_edge.model.interactor import HOInteractor, pair_feasibility
from hoi_edge.vocabulary import Vocabulary

EXPORT_UNITS = ("detector", "clip_image", "hoi_head")


class HOIHead(nn.Module):
    """Interactor + decoder: the trainable image-side part of CLIP4HOI."""

    def __init__(self, cfg: ModelConfig, clip_dim: int) -> None:
        super().__init__()
        h = cfg.hoi
        self.interactor = HOInteractor(cfg.detector.hidden_dim, h.dim)
        self.decoder = HOIDecoder(h.dim, clip_dim, h.num_heads, h.ffn_dim, h.num_decoder_layers)

    def forward(self, features: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor,
                human: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        tokens = self.interactor(features, boxes, valid)
        return self.decoder(tokens, pair_feasibility(valid, human), patches)


class CLIP4HOI(nn.Module):
    """Frozen DETR + frozen CLIP, trainable HO interactor, HOI decoder and prompt context."""

    def __init__(self, cfg: ModelConfig, vocab: Vocabulary) -> None:
        super().__init__()
        self.cfg = cfg
        self.detector = DETR(cfg.detector)
        self.clip = build_clip(cfg.clip)
        self.head = HOIHead(cfg, int(self.clip.text_projection.shape[-1]))
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

    def image_encoder(self) -> ClipImageEncoder:
        return ClipImageEncoder(self.clip.visual).train(self.clip.training)

    def export_unit(self, name: str) -> nn.Module:
        units = {"detector": self.detector, "clip_image": self.image_encoder(), "hoi_head": self.head}
        return units[name]

    def text_embeddings(self) -> torch.Tensor:
        return self.classifier.text_embeddings(self.clip)
