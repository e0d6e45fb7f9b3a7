"""DETR detector: boxes, class logits and per-query features for the HO interactor.

The module tree mirrors facebookresearch/detr so that the official COCO
checkpoints (``detr-r50-e632da11.pth``) load with ``load_state_dict`` as they
are: ``backbone.0.body.*`` (torchvision ResNet with frozen BN),
``transformer.{encoder,decoder}.layers.N.*``, ``query_embed``, ``input_proj``,
``class_embed`` and ``bbox_embed.layers.N``. Inputs are fixed-size squares
(letterboxed by :mod:`hoi_edge.preprocess`), which keeps every export static.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops.misc import FrozenBatchNorm2d

from hoi_edge.config import DetectorConfig

_RESNETS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}


class Backbone(nn.Module):
    """ResNet body returning the stride-32 feature map (DETR's ``layer4`` output)."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        block_name, layers = _RESNETS.get(cfg.backbone, (cfg.block, cfg.layers))
        block = resnet.BasicBlock if block_name == "basic" else resnet.Bottleneck
        net = resnet.ResNet(block, list(layers), norm_layer=FrozenBatchNorm2d)
        self.body = IntermediateLayerGetter(net, return_layers={"layer4": "0"})
        self.num_channels = 512 * block.expansion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)["0"]


def sine_position_embedding(height: int, width: int, dim: int, device: torch.device) -> torch.Tensor:
    """DETR's normalised sine embedding for an unpadded (H, W) grid, shape (H*W, dim)."""
    half = dim // 2
    eps, scale = 1e-6, 2 * math.pi
    # repeat, not expand: zero-stride views break ExecuTorch's INT8 lowering
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)[:, None].repeat(1, width)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)[None, :].repeat(height, 1)
    y = y / (height + eps) * scale
    x = x / (width + eps) * scale
    dim_t = torch.arange(half, dtype=torch.float32, device=device)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=3).flatten(2)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=3).flatten(2)
    return torch.cat((py, px), dim=2).flatten(0, 1)


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = src + pos
        src = self.norm1(src + self.self_attn(q, q, src, need_weights=False)[0])
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, q, tgt, need_weights=False)[0])
        tgt = self.norm2(tgt + self.multihead_attn(tgt + query_pos, memory + pos, memory, need_weights=False)[0])
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class _Stack(nn.Module):
    def __init__(self, layers: list[nn.Module], norm: nn.Module | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm


class Transformer(nn.Module):
    """Post-norm encoder-decoder of DETR; returns the last decoder layer's normalised output."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        d, h, f = cfg.hidden_dim, cfg.num_heads, cfg.ffn_dim
        self.encoder = _Stack([EncoderLayer(d, h, f) for _ in range(cfg.num_encoder_layers)])
        self.decoder = _Stack([DecoderLayer(d, h, f) for _ in range(cfg.num_decoder_layers)], nn.LayerNorm(d))

    def forward(self, src: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        memory = src
        for layer in self.encoder.layers:
            memory = layer(memory, pos)
        tgt = torch.zeros_like(query_pos)
        for layer in self.decoder.layers:
            tgt = layer(tgt, memory, pos, query_pos)
        return self.decoder.norm(tgt)


class MLP(nn.Module):
    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:] + [out_dim]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class DETR(nn.Module):
    """image (B,3,S,S) normalised -> logits (B,Q,C+1), boxes (B,Q,4) cxcywh in [0,1], features (B,Q,D)."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = nn.ModuleList([Backbone(cfg)])
        self.input_proj = nn.Conv2d(self.backbone[0].num_channels, cfg.hidden_dim, kernel_size=1)
        self.query_embed = nn.Embedding(cfg.num_queries, cfg.hidden_dim)
        self.transformer = Transformer(cfg)
        self.class_embed = nn.Linear(cfg.hidden_dim, cfg.num_classes + 1)
        self.bbox_embed = MLP(cfg.hidden_dim, cfg.hidden_dim, 4, 3)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat = self.input_proj(self.backbone[0](images))
        b, d, h, w = feat.shape
        src = feat.flatten(2).transpose(1, 2)
        pos = sine_position_embedding(h, w, d, images.device).unsqueeze(0).repeat(b, 1, 1)
        query_pos = self.query_embed.weight.unsqueeze(0).repeat(b, 1, 1)
        hs = self.transformer(src, pos, query_pos)
        return self.class_embed(hs), self.bbox_embed(hs).sigmoid(), hs
