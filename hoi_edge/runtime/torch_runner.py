"""The full-precision PyTorch backend: the reference every artifact is compared with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hoi_edge.checkpoint import load_model
from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.model.spec import detector_class_names, pipeline_spec  # noqa: F401  (re-exported, historic home)
from hoi_edge.pipeline import HOIDetector
from hoi_edge.vocabulary import Vocabulary


class TorchRunner:
    name = "pytorch"

    def __init__(self, model: CLIP4HOI, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self._clip_image = model.image_encoder()

    def _t(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

    @torch.inference_mode()
    def detector(self, images: np.ndarray):
        return tuple(o.float().cpu().numpy() for o in self.model.detector(self._t(images)))

    @torch.inference_mode()
    def clip_image(self, images: np.ndarray):
        return tuple(o.float().cpu().numpy() for o in self._clip_image(self._t(images)))

    @torch.inference_mode()
    def hoi_head(self, features, boxes, valid, human, patches):
        out = self.model.head(self._t(features), self._t(boxes), self._t(valid), self._t(human), self._t(patches))
        return out.float().cpu().numpy()


def detector_from_checkpoint(path: str | Path, vocabulary: str | Path | Vocabulary | None = None,
                             device: str = "cpu") -> HOIDetector:
    """:meth:`HOIDetector.from_checkpoint`: a hoi-edge checkpoint (or 'default', the default model as in
    every command) on the PyTorch backend; a model with random-init parts says so on stderr."""
    from hoi_edge.defaults import resolve_checkpoint
    from hoi_edge.provenance import random_init_parts, warn_random_init

    path = resolve_checkpoint(path)
    model = load_model(path, vocabulary=vocabulary)
    warn_random_init(f"checkpoint {path}", random_init_parts(model.cfg))
    return detector_from_model(model, device=device)


@torch.inference_mode()
def detector_from_model(model: CLIP4HOI, device: str = "cpu") -> HOIDetector:
    runner = TorchRunner(model, device)
    text = model.text_embeddings().float().cpu().numpy()
    return HOIDetector(runner, pipeline_spec(model), model.vocab, text)
