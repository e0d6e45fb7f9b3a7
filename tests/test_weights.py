"""Local weight files for the frozen parts: the offline path users take with --clip-weights / --detector-weights."""

from __future__ import annotations

import pytest
import torch

from hoi_edge.core.errors import WeightsError
from hoi_edge.model.clip_encoders import build_clip, quick_gelu
from hoi_edge.model.config import ClipConfig, DetectorConfig, clip4hoi_base, clip4hoi_tiny
from hoi_edge.model.detector import DETR
from hoi_edge.model.weights import load_detector_weights


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _tiny_clip(**overrides) -> ClipConfig:
    cfg = clip4hoi_tiny().clip
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def test_openai_weights_get_quick_gelu():
    """OpenAI CLIP was trained with QuickGELU; open_clip only warns when it is missing."""
    assert quick_gelu(ClipConfig(model_name="ViT-B-16", pretrained="openai")) is True
    assert quick_gelu(ClipConfig(model_name="ViT-B-16", pretrained="laion2b_s34b_b88k")) is False
    assert quick_gelu(clip4hoi_base().clip) is True
    base_from_file = clip4hoi_base().clip
    base_from_file.pretrained = "/weights/open_clip_pytorch_model.bin"
    assert quick_gelu(base_from_file) is True          # the base preset is OpenAI ViT-B/16 however it is loaded
    model = build_clip(_tiny_clip(quick_gelu=True))
    assert type(model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    model = build_clip(_tiny_clip())
    assert type(model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "GELU"


def test_clip_state_dict_file_loads(tmp_path):
    torch.manual_seed(1)
    source = build_clip(_tiny_clip())
    torch.save({"state_dict": {"module." + k: v for k, v in source.state_dict().items()}}, tmp_path / "clip.pt")
    assert _same_state(build_clip(_tiny_clip(pretrained=str(tmp_path / "clip.pt"))), source)


def test_openai_torchscript_release_file_loads(tmp_path):
    """OpenAI ships ViT-B-16.pt as a TorchScript archive, which torch.load(weights_only=True) refuses."""
    torch.manual_seed(2)
    source = build_clip(_tiny_clip())
    torch.jit.script(source).save(str(tmp_path / "ViT-tiny.pt"))
    assert _same_state(build_clip(_tiny_clip(pretrained=str(tmp_path / "ViT-tiny.pt"))), source)


def test_bad_clip_weight_files_are_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="CLIP weights file not found: .*absent.bin"):
        build_clip(_tiny_clip(pretrained=str(tmp_path / "absent.bin")))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a checkpoint" * 8)
    with pytest.raises(WeightsError, match="junk.bin is corrupt or not a CLIP checkpoint"):
        build_clip(_tiny_clip(pretrained=str(junk)))
    torch.save({"visual.proj": torch.zeros(2, 2)}, tmp_path / "other.bin")
    with pytest.raises(WeightsError, match="other.bin do not fit the configured architecture"):
        build_clip(_tiny_clip(pretrained=str(tmp_path / "other.bin")))


def test_detector_weight_file_loads_and_bad_files_are_clear_errors(tmp_path):
    cfg = clip4hoi_tiny().detector
    torch.manual_seed(3)
    source = DETR(cfg)
    torch.save({"model": source.state_dict(), "epoch": 299}, tmp_path / "detr.pth")   # the official layout
    target = DETR(cfg)
    load_detector_weights(target, str(tmp_path / "detr.pth"))
    assert _same_state(target, source)
    with pytest.raises(WeightsError, match="detector weights file not found: .*nope.pth"):
        load_detector_weights(DETR(cfg), str(tmp_path / "nope.pth"))
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage")
    with pytest.raises(WeightsError, match="junk.pth is corrupt"):
        load_detector_weights(DETR(cfg), str(tmp_path / "junk.pth"))
    with pytest.raises(WeightsError, match="do not fit the model"):
        load_detector_weights(DETR(DetectorConfig(backbone="resnet18")), str(tmp_path / "detr.pth"))


def test_the_same_model_saves_to_the_same_bytes(tmp_path, tiny_model):
    """Checkpoints are reproducible (manifests and bake compare their sha256): the temp name a save goes
    through must not end up inside the file."""
    from hoi_edge.core.hashing import file_sha256
    from hoi_edge.weights.checkpoint import save_checkpoint

    a = save_checkpoint(tiny_model, tmp_path / "a" / "tiny.pt")
    b = save_checkpoint(tiny_model, tmp_path / "b" / "other-name.pt")
    assert file_sha256(a) == file_sha256(b)
