"""The export contract every target follows: unit names, input/output names, static example shapes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.model.detectors import family
from hoi_edge.pipeline.detector import PipelineSpec


@dataclass(frozen=True)
class UnitContract:
    name: str
    inputs: dict[str, tuple[int, ...]]
    outputs: tuple[str, ...]

    def random_example(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Shape-correct tracing inputs; masks are ones so every path is live."""
        g = torch.Generator().manual_seed(seed)
        out = []
        for name, shape in self.inputs.items():
            if name in ("valid", "human"):
                out.append(torch.ones(shape))
            elif name == "boxes":
                xy = torch.rand(*shape[:-1], 2, generator=g) * 0.5
                out.append(torch.cat([xy, xy + 0.1 + torch.rand(*shape[:-1], 2, generator=g) * 0.4], -1))
            else:
                out.append(torch.randn(*shape, generator=g))
        return tuple(out)


def unit_contracts(model: CLIP4HOI, spec: PipelineSpec) -> dict[str, UnitContract]:
    k, d = spec.max_instances, model.detector_feature_dim     # the family's per-candidate feature width
    with torch.no_grad():
        _, patches = model.image_encoder()(torch.zeros(1, 3, spec.clip_size, spec.clip_size))
    n, e = patches.shape[1:]
    return {
        "detector": UnitContract("detector", {"images": (1, 3, spec.detector_size, spec.detector_size)},
                                 family(model.cfg.detector).output_names),
        "clip_image": UnitContract("clip_image", {"images": (1, 3, spec.clip_size, spec.clip_size)},
                                   ("global_embedding", "patches")),
        "hoi_head": UnitContract("hoi_head", {"features": (1, k, d), "boxes": (1, k, 4), "valid": (1, k),
                                              "human": (1, k), "patches": (1, n, e)}, ("pair_embeddings",)),
    }


def as_tensors(sample: tuple[np.ndarray, ...]) -> tuple[torch.Tensor, ...]:
    """Fresh copies: a NumPy ``x[None]`` has a zero stride (kept by ``torch.tensor``) that ExecuTorch rejects."""
    return tuple(torch.from_numpy(np.array(a, dtype=np.float32, order="C")) for a in sample)
