"""DETR detector: boxes, class logits and per-query features for the HO interactor.

The module tree mirrors facebookresearch/detr so that the official COCO
checkpoints (``detr-r50-e632da11.pth``) load with ``load_state_dict`` as they
are: ``backbone.0.body.*`` (torchvision ResNet with frozen BN),
``transformer.{encoder,decoder}.layers.N.*`` (attention as ``in_proj_weight``/``in_proj_bias``/
``out_proj``, the names and shapes of ``nn.MultiheadAttention``), ``query_embed``, ``input_proj``,
``class_embed`` and ``bbox_embed.layers.N``. Inputs are fixed-size squares
(letterboxed by :mod:`hoi_edge.pipeline.preprocess`), which keeps every export static.

Attention is written out with plain matmul/softmax (``nn.MultiheadAttention`` adds mask
handling, ``expand`` and packed-weight slicing that ExecuTorch's XNNPACK backend cannot take, so
DETR's transformer used to run in portable kernels). :meth:`DETR.export_module` gives the
network the targets export: frozen batch norms folded into the convolutions, each attention's
packed projection split into three linear layers with constant weights. Its outputs equal the
eager module's to float rounding.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops.misc import FrozenBatchNorm2d

from hoi_edge.model.config import DetectorConfig
from hoi_edge.model.ops import attend

_RESNETS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}
BACKBONE_STRIDE = 32


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


def sine_position_embedding(height: int, width: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
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


class MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention(d, heads, batch_first=True)`` without masks or dropout, written out.

    Same parameters (``in_proj_weight`` (3D, D), ``in_proj_bias`` (3D), ``out_proj``), same random
    initialisation and outputs, so official DETR state dicts load unchanged.
    """

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)      # nn.MultiheadAttention._reset_parameters
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        wq, wk, wv = self.in_proj_weight.split(self.embed_dim)
        bq, bk, bv = self.in_proj_bias.split(self.embed_dim)
        q, k, v = F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)
        return self.out_proj(attend(q, k, v, self.num_heads, (self.embed_dim // self.num_heads) ** -0.5))


class SplitAttention(nn.Module):
    """Export form of :class:`MultiheadAttention`: q/k/v as three ``nn.Linear`` with constant weights
    (a slice of a packed parameter is a computed tensor to the exporters, not a weight)."""

    def __init__(self, packed: MultiheadAttention) -> None:
        super().__init__()
        d = packed.embed_dim
        self.num_heads, self.scale = packed.num_heads, (d // packed.num_heads) ** -0.5
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d, d) for _ in range(3))
        with torch.no_grad():
            for i, proj in enumerate((self.q_proj, self.k_proj, self.v_proj)):
                proj.weight.copy_(packed.in_proj_weight[i * d:(i + 1) * d])
                proj.bias.copy_(packed.in_proj_bias[i * d:(i + 1) * d])
        self.out_proj = packed.out_proj

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return self.out_proj(attend(self.q_proj(query), self.k_proj(key), self.v_proj(value), self.num_heads,
                                    self.scale))


def fold_frozen_batchnorm(module: nn.Module) -> int:
    """Fold every FrozenBatchNorm2d that directly follows a bias-free Conv2d (in registration order, as in
    torchvision's ResNet) into that convolution, in place; returns the number folded."""
    folded = 0
    for parent in list(module.modules()):
        previous = None                   # a conv and its norm are siblings
        for name, child in list(parent.named_children()):
            if isinstance(child, FrozenBatchNorm2d) and previous is not None:
                conv_parent, conv_name, conv = previous
                scale = child.weight * (child.running_var + child.eps).rsqrt()
                fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                  conv.dilation, conv.groups, bias=True)
                with torch.no_grad():
                    fused.weight.copy_(conv.weight * scale[:, None, None, None])
                    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
                    fused.bias.copy_((bias - child.running_mean) * scale + child.bias)
                setattr(conv_parent, conv_name, fused)
                setattr(parent, name, nn.Identity())
                folded += 1
                previous = None
            elif isinstance(child, nn.Conv2d):
                previous = (parent, name, child)
            elif not list(child.children()):
                previous = None
    return folded


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d, heads)
        self.linear1, self.linear2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = src + pos
        src = self.norm1(src + self.self_attn(q, q, src))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d, heads)
        self.multihead_attn = MultiheadAttention(d, heads)
        self.linear1, self.linear2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, q, tgt))
        tgt = self.norm2(tgt + self.multihead_attn(tgt + query_pos, memory + pos, memory))
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
        # zeros that depend on the input: a decoder input made of constants alone turns the first layer's
        # self-attention into a constant subgraph, and OpenVINO's CPU plugin (2026.4, FP16-compressed IR)
        # lets a later in-place op overwrite that folded constant, so every call returned different outputs
        tgt = torch.zeros_like(query_pos) + memory[:, :1, :] * 0.0
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
        # the configured input size's embedding, precomputed (not in the state dict): exported graphs carry it
        # as a constant instead of recomputing arange/sin/cos on every call
        side = -(-cfg.image_size // BACKBONE_STRIDE)
        self.register_buffer("pos_embed", sine_position_embedding(side, side, cfg.hidden_dim), persistent=False)

    def position_embedding(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        if self.pos_embed.shape[0] == h * w and h == w:
            return self.pos_embed
        return sine_position_embedding(h, w, self.cfg.hidden_dim, device)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat = self.input_proj(self.backbone[0](images))
        b, d, h, w = feat.shape
        src = feat.flatten(2).transpose(1, 2)
        pos = _batched(self.position_embedding(h, w, images.device), b)
        query_pos = _batched(self.query_embed.weight, b)
        hs = self.transformer(src, pos, query_pos)
        return self.class_embed(hs), self.bbox_embed(hs).sigmoid(), hs

    def export_module(self) -> "DETR":
        """A copy for the exporters with the same outputs: batch norms folded into the convolutions,
        attention projections split into constant-weight linears."""
        module = copy.deepcopy(self).eval()
        fold_frozen_batchnorm(module.backbone)
        for parent in list(module.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, MultiheadAttention):
                    setattr(parent, name, SplitAttention(child))
        # the folded convs and split linears are new parameters: keep the source's frozen state, or distillation
        # would train every DETR weight instead of only the quantizers of a frozen detector
        module.requires_grad_(any(p.requires_grad for p in self.parameters()))
        return module


def _batched(x: torch.Tensor, b: int) -> torch.Tensor:
    """(N, D) -> (b, N, D); batch 1 (every export) without ``repeat``/``expand``, which XNNPACK does not take."""
    x = x.unsqueeze(0)
    return x if b == 1 else x.repeat(b, 1, 1)
