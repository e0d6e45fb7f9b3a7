"""The edge preset's CLIP image towers (``ClipConfig.image_tower``): a timm tower's patch tokens, its
re-parameterised export form, ViT towers at another input size, and the facts a checkpoint must keep."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hoi_edge.core.errors import WeightsError
from hoi_edge.core.provenance import RANDOM_TEACHER, random_init_parts
from hoi_edge.model.clip_encoders import (
    build_clip,
    build_image_tower,
    export_image_encoder,
    image_encoder,
    tower_normalization,
)
from hoi_edge.model.config import (
    EDGE_TOWERS,
    TINY_CLIP_ARCHITECTURE,
    TINY_FASTVIT_TOWER,
    ClipConfig,
    ImageTowerConfig,
    clip4hoi_edge,
    clip4hoi_edge_tiny,
)
from hoi_edge.model.ops import l2_normalize

TINY_VIT_TOWER = {"embed_dim": 64, "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "patch_size": 16,
                                                  "head_width": 32}}


def test_timm_tower_global_embedding_is_the_mean_of_its_patch_tokens(tiny_fastvit_model):
    """The tower's own output (open_clip: pooled features through its projection) equals the encoder's global
    embedding, and that equals the mean of the per-location projections: the decoder's patches live in the
    space the global score uses."""
    visual = tiny_fastvit_model.clip.visual
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        glob, patches = image_encoder(visual)(images)
        own = l2_normalize(visual(images))
        tokens = visual.trunk.forward_features(images).flatten(2).transpose(1, 2)
        for proj in image_encoder(visual).projections:
            tokens = proj(tokens)
    np.testing.assert_allclose(glob.numpy(), own.numpy(), atol=1e-5)
    np.testing.assert_allclose(glob.numpy(), l2_normalize(tokens.mean(1)).numpy(), atol=1e-5)
    assert patches.shape == (2, 4, 64)                # 64 px at stride 32: a 2x2 grid


def test_reparameterised_export_form_keeps_the_outputs(tiny_fastvit_model):
    """Export folds the MobileOne/RepMixer branches and their batch norms (timm's reparameterize_model) on a copy:
    fewer modules and batch norms (the MLPs' conv+BN pairs stay, every runtime folds those), the same outputs,
    the training model untouched."""
    def count(module, kind=torch.nn.Module) -> int:
        return sum(isinstance(m, kind) for m in module.modules())

    visual = tiny_fastvit_model.clip.visual
    before = count(visual), count(visual, torch.nn.BatchNorm2d)
    exported = export_image_encoder(visual)
    assert count(exported.visual) < before[0] and count(exported.visual, torch.nn.BatchNorm2d) < before[1] / 2
    assert (count(visual), count(visual, torch.nn.BatchNorm2d)) == before
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for want, got in zip(image_encoder(visual)(images), exported(images)):
            np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    assert tiny_fastvit_model.export_unit("clip_image").visual is not visual


def test_vit_tower_at_another_input_size_resamples_its_position_embeddings(tmp_path):
    """A ViT tower's weights at 64 px load into the tower at 96 px (6x6 patches instead of 4x4): the position
    embeddings are resampled, as open_clip does for tags."""
    small = build_image_tower(ImageTowerConfig(architecture=TINY_VIT_TOWER), 64)
    path = tmp_path / "tower.pt"
    torch.save({f"visual.{k}": v for k, v in small.state_dict().items()}, path)
    big = build_image_tower(ImageTowerConfig(architecture=TINY_VIT_TOWER, image_size=96, pretrained=str(path)), 64)
    assert big.positional_embedding.shape == (37, 64) and small.positional_embedding.shape == (17, 64)
    torch.testing.assert_close(big.conv1.weight, small.conv1.weight)
    with torch.no_grad():
        glob, patches = image_encoder(big)(torch.rand(1, 3, 96, 96))
    assert patches.shape == (1, 36, 64)


def test_tower_must_fit_the_text_space_and_give_patch_tokens():
    with pytest.raises(WeightsError, match="outputs 64-d embeddings but the text tower's joint space is 512-d"):
        build_clip(ClipConfig(model_name="t", pretrained=None, architecture={**TINY_CLIP_ARCHITECTURE, "embed_dim": 512},
                              image_tower=ImageTowerConfig(architecture=TINY_VIT_TOWER)))
    token_pool = {"embed_dim": 64, "vision_cfg": {**TINY_FASTVIT_TOWER["vision_cfg"], "timm_pool": "max"}}
    with pytest.raises(WeightsError, match="only an average-pooled trunk"):
        build_image_tower(ImageTowerConfig(architecture=token_pool), 64)


def test_presets_record_what_a_checkpoint_needs_to_rebuild_the_tower():
    """The activation and normalisation of every candidate are explicit or come from its tag's metadata (offline):
    a checkpoint that drops the tag (load_model) rebuilds the same tower."""
    assert tower_normalization(EDGE_TOWERS["mobileclip2-s0"]) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    vit = dataclasses.replace(EDGE_TOWERS["vit-b-32"], mean=None, std=None)
    assert tower_normalization(vit)[0] == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert tower_normalization(ImageTowerConfig(model_name="ViT-B-32")) is None
    for tower in EDGE_TOWERS.values():
        assert tower.model_name.startswith("MobileCLIP") or tower.quick_gelu is True


def test_random_init_parts_name_the_tower_and_a_random_teacher():
    cfg = clip4hoi_edge_tiny()
    assert "clip image tower" in random_init_parts(cfg)
    cfg.clip.image_tower.distilled_from = "teacher.pt (sha256 0123)"
    assert not any("tower" in p for p in random_init_parts(cfg))
    cfg.clip.image_tower.distilled_from += f"; {RANDOM_TEACHER}: detector, clip"
    assert "clip image tower (distilled from a random-init teacher)" in random_init_parts(cfg)
    assert not any("tower" in p for p in random_init_parts(clip4hoi_edge()))    # its tower names real weights
