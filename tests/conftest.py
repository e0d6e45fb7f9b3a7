"""Shared fixtures: the ../shared data beside the repo and small random-init CLIP4HOI models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def photos(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "photos").glob("*.*"))


@pytest.fixture(scope="session")
def hico_images(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "hicodet" / "real_test_images").glob("*.jpg"))


def make_tiny_model(seed: int = 0):
    """Random-init tiny CLIP4HOI whose detector is biased to fire on person, cup, bicycle and horse.

    With uniform random logits no class would pass the person test; the bias
    makes every image yield humans and objects, so pairs and scores exist.
    """
    from hoi_edge.checkpoint import build_model
    from hoi_edge.config import clip4hoi_tiny
    from hoi_edge.model.coco import COCO91_NAMES
    from hoi_edge.vocabulary import load_vocabulary

    torch.manual_seed(seed)
    model = build_model(clip4hoi_tiny(), load_vocabulary("hico"))
    with torch.no_grad():
        # a random DETR gives near-identical queries: sharpen the query attention so they differ
        det = model.detector
        det.query_embed.weight.mul_(10.0)
        q_and_k = 2 * det.cfg.hidden_dim
        for layer in det.transformer.decoder.layers:
            layer.self_attn.in_proj_weight[:q_and_k].mul_(4.0)
            layer.multihead_attn.in_proj_weight[:q_and_k].mul_(4.0)
        det.bbox_embed.layers[-1].weight.mul_(8.0)
        det.class_embed.weight.mul_(4.0)
        det.class_embed.bias.fill_(-10.0)   # only the four classes below (and no-object) compete
        det.class_embed.bias[-1] = -1.0
        # centre the four class logits on the mean query feature, so each wins for some queries
        feats = torch.cat([det(_letterboxed(p, det.cfg.image_size))[2][0] for p in sorted(SHARED.glob("photos/*"))])
        mean_feat = feats.mean(0)
        for name in ("person", "cup", "bicycle", "horse"):
            i = COCO91_NAMES.index(name)
            det.class_embed.bias[i] = -det.class_embed.weight[i] @ mean_feat + (1.0 if name == "person" else 0.0)
    return model.eval()


def _letterboxed(path: Path, size: int) -> torch.Tensor:
    from hoi_edge.preprocess import IMAGENET_MEAN, IMAGENET_STD, Letterbox, load_image

    return torch.from_numpy(Letterbox(size, IMAGENET_MEAN, IMAGENET_STD)(load_image(path)))


@pytest.fixture(scope="session")
def tiny_model():
    return make_tiny_model()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model) -> Path:
    from hoi_edge.checkpoint import save_checkpoint

    return save_checkpoint(tiny_model, tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="session")
def tiny_detector(tiny_checkpoint):
    from hoi_edge.pipeline import HOIDetector

    return HOIDetector.from_checkpoint(tiny_checkpoint)
