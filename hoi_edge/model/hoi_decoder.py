"""HOI decoder: pair tokens (queries) cross-attend CLIP patch tokens (keys/values).

Pre-norm transformer decoder layers; self-attention among pairs only sees
feasible pairs (an additive -1e4 mask instead of -inf keeps an image with no
pairs free of NaNs). Output: pair embeddings in CLIP's joint space, L2-normalised.

Attention is written out (not ``nn.MultiheadAttention``) because the masks it
expands internally become zero-stride tensors that ExecuTorch's INT8 lowering rejects.
"""

from __future__ import annotations

import torch
from torch import nn

from hoi_edge.model.ops import l2_normalize

MASK_VALUE = -1e4


class Attention(nn.Module):
    """Multi-head attention with an optional additive key bias of shape (B, 1, 1, Lk)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, heads, N, D/heads), without size arithmetic (see :func:`hoi_edge.model.detector.attend`)."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor, key_bias: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._split(self.q(x)), self._split(self.k(context)), self._split(self.v(context))
        logits = (q @ k.transpose(-2, -1)) * self.scale
        if key_bias is not None:
            logits = logits + key_bias
        y = logits.softmax(-1) @ v
        return self.out(y.transpose(1, 2).flatten(2))


class HOIDecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.cross_attn = Attention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        q = self.norm1(x)
        x = x + self.self_attn(q, q, key_bias)
        x = x + self.cross_attn(self.norm2(x), memory)
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
        key_bias = ((~pair_mask).to(tokens.dtype) * MASK_VALUE)[:, None, None, :]
        x = tokens
        for layer in self.layers:
            x = layer(x, memory, key_bias)
        return l2_normalize(self.out_proj(self.norm(x)))
