"""HOI decoder: pair tokens (queries) cross-attend CLIP patch tokens (keys/values).

Pre-norm transformer decoder layers; self-attention among pairs only sees
feasible pairs (an additive -1e4 mask instead of -inf keeps an image with no
pairs free of NaNs). Output: pair embeddings in CLIP's joint space, L2-normalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASK_VALUE = -1e4


class HOIDecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        q = self.norm1(x)
        x = x + self.self_attn(q, q, q, key_padding_mask=key_bias, need_weights=False)[0]
        q = self.norm2(x)
        x = x + self.cross_attn(q, memory, memory, need_weights=False)[0]
        return x + self.ffn(self.norm3(x))


class HOIDecoder(nn.Module):
    """(pair tokens (B,P,D), pair mask (B,P) bool, patches (B,N,E)) -> pair embeddings (B,P,E)."""

    def __init__(self, dim: int, clip_dim: int, heads: int, ffn: int, num_layers: int) -> None:
        super().__init__()
        self.memory_proj = nn.Sequential(nn.Linear(clip_dim, dim), nn.LayerNorm(dim))
        self.layers = nn.ModuleList(HOIDecoderLayer(dim, heads, ffn) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)
        self.out_proj = nn.Linear(dim, clip_dim)

    def forward(self, tokens: torch.Tensor, pair_mask: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        memory = self.memory_proj(patches)
        key_bias = (~pair_mask).to(tokens.dtype) * MASK_VALUE
        x = tokens
        for layer in self.layers:
            x = layer(x, memory, key_bias)
        return F.normalize(self.out_proj(self.norm(x)), dim=-1)
