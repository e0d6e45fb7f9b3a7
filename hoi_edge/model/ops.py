"""Small tensor ops written to export cleanly to OpenVINO, ONNX and ExecuTorch."""

from __future__ import annotations

import torch


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize`` without its internal expand (exports cleanly to every runtime)."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True).clamp_min(eps * eps))


class DecomposedLayerNorm(torch.nn.Module):
    """``nn.LayerNorm`` over the last dim as mean / sub / mul / rsqrt / add (same parameters, same outputs
    to float rounding). ExecuTorch's XNNPACK backend has no layer-norm op, so ``native_layer_norm`` runs in
    portable kernels between delegate calls; these elementwise ops are all delegated. ExecuTorch only:
    OpenVINO and ONNX Runtime fuse the plain LayerNorm into their own kernels."""

    def __init__(self, norm: torch.nn.LayerNorm) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - _mean_last(x)
        y = centred * torch.rsqrt(_mean_last(centred * centred) + self.eps)
        return y * self.weight + self.bias if self.weight is not None else y


def _mean_last(x: torch.Tensor) -> torch.Tensor:
    """Mean over the last dim as a 4-D global average pool (keepdim), the only ``mean`` XNNPACK delegates."""
    lead = x.shape[:-1]
    rows = 1
    for n in lead:
        rows *= n
    return x.reshape(1, rows, x.shape[-1], 1).mean((2, 3), keepdim=True).reshape(*lead, 1)


def decompose_layer_norms(module: torch.nn.Module) -> int:
    """Replace every ``nn.LayerNorm`` over one last dim in ``module`` (in place) by :class:`DecomposedLayerNorm`."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.LayerNorm) and len(child.normalized_shape) == 1:
                setattr(parent, name, DecomposedLayerNorm(child))
                count += 1
    return count


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    """Scaled dot-product attention over projected (B, L, D) tensors, heads folded into the batch of
    3-D ``bmm`` calls (a 4-D ``@`` lowers to ``expand`` + ``bmm``, and ``expand`` is not delegated).

    No arithmetic on tensor sizes (``unflatten``/``flatten`` with -1, ``scale`` from the module): traced by
    ``openvino.convert_model`` (distillation), size arithmetic becomes ops that NNCF's hooks count, which
    shifts its quantizers onto the wrong ops of the converted IR."""

    def split(x: torch.Tensor) -> torch.Tensor:                  # (B, L, D) -> (B*heads, L, D/heads)
        return x.unflatten(-1, (heads, -1)).transpose(1, 2).flatten(0, 1)

    logits = torch.bmm(split(q) * scale, split(k).transpose(1, 2))
    y = torch.bmm(logits.softmax(-1), split(v))
    return y.unflatten(0, (-1, heads)).transpose(1, 2).flatten(2)


class WrittenOutAttention(torch.nn.Module):
    """Export form of an unmasked ``nn.MultiheadAttention`` (open_clip's ViT blocks): q/k/v as three
    ``nn.Linear`` and :func:`attend`, same call signature and outputs. ExecuTorch only: exported, the fused
    op brings its mask handling (``any``/``eq``/``logical_not``/``where``/``full_like``) and 4-D ``expand``
    copies, which XNNPACK does not take, so every ViT layer was cut into several delegate calls with
    portable kernels between them."""

    def __init__(self, mha: torch.nn.MultiheadAttention) -> None:
        super().__init__()
        if not mha._qkv_same_embed_dim or mha.in_proj_bias is None or mha.bias_k is not None:
            raise ValueError("only packed, biased nn.MultiheadAttention without add_bias_kv can be written out")
        d, self.heads, self.batch_first = mha.embed_dim, mha.num_heads, mha.batch_first
        self.scale = (d // mha.num_heads) ** -0.5
        self.q_proj, self.k_proj, self.v_proj = (torch.nn.Linear(d, d) for _ in range(3))
        with torch.no_grad():
            for i, proj in enumerate((self.q_proj, self.k_proj, self.v_proj)):
                proj.weight.copy_(mha.in_proj_weight[i * d:(i + 1) * d])
                proj.bias.copy_(mha.in_proj_bias[i * d:(i + 1) * d])
        self.out_proj = mha.out_proj

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, need_weights: bool = False,
                attn_mask: torch.Tensor | None = None, **_unused) -> tuple[torch.Tensor, None]:
        if attn_mask is not None or need_weights:
            raise ValueError("the written-out attention takes no mask and returns no weights")
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        y = self.out_proj(attend(self.q_proj(query), self.k_proj(key), self.v_proj(value), self.heads, self.scale))
        return (y if self.batch_first else y.transpose(0, 1)), None


def write_out_attention(module: torch.nn.Module) -> int:
    """Replace every ``nn.MultiheadAttention`` in ``module`` (in place) by :class:`WrittenOutAttention`;
    returns how many. Call it on a copy: the replacements own new q/k/v weights."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.MultiheadAttention):
                setattr(parent, name, WrittenOutAttention(child))
                count += 1
    return count
