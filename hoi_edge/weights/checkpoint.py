"""hoi-edge checkpoints: model config + vocabulary + weights in one file, written atomically.

Training checkpoints may leave out the frozen detector and CLIP weights
(``include_frozen=False``); they are then re-loaded from the sources named in
the config (an open_clip tag or file; a detector name or file, see model/detectors.py) when the model is built.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from hoi_edge.core.atomic import atomic_output
from hoi_edge.core.errors import WeightsError
from hoi_edge.core.hashing import file_sha256  # noqa: F401  (re-exported: callers import it from here)
from hoi_edge.data.vocabulary import Vocabulary, load_vocabulary
from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.model.clip_encoders import quick_gelu, tower_normalization
from hoi_edge.model.config import ModelConfig
from hoi_edge.model.detectors import family
from hoi_edge.model.weights import check_state, load_strict

FORMAT = "hoi-edge/clip4hoi"
FORMAT_VERSION = 1
FROZEN_PREFIXES = ("detector.", "clip.")


def build_model(cfg: ModelConfig, vocab: Vocabulary) -> CLIP4HOI:
    """Construct CLIP4HOI and load the pretrained detector/CLIP weights the config names (the detector's
    loader comes from its family: DETR official names/files, NanoDet npm/TF.js/official files)."""
    model = CLIP4HOI(cfg, vocab)
    if cfg.detector.weights:
        family(cfg.detector).load_weights(model.detector, cfg.detector.weights)
    return model


def frozen_sources_named(cfg: ModelConfig) -> bool:
    """Whether the detector and CLIP weights can be rebuilt from the config (a tag or file each), not only from a
    checkpoint."""
    tower = cfg.clip.image_tower
    return bool(cfg.clip.pretrained and cfg.detector.weights and (not tower.replaces_own or tower.pretrained))


def save_checkpoint(model: CLIP4HOI, path: str | Path, include_frozen: bool = True,
                    extra: dict[str, Any] | None = None) -> Path:
    """``include_frozen=False`` writes a slim file (head + prompts); loading it re-reads the detector/CLIP from their source."""
    path = Path(path)
    if not include_frozen and not frozen_sources_named(model.cfg):
        raise WeightsError(f"cannot write {path} without the frozen detector/CLIP weights: the model config names no "
                           "tag or file to reload them from (they are random or unnamed), so loading would "
                           "silently re-initialise them")
    state = {k: v for k, v in model.state_dict().items() if include_frozen or not k.startswith(FROZEN_PREFIXES)}
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "config": model.cfg.to_dict(),
        "vocabulary": model.vocab.to_dict(), "includes_frozen": include_frozen,
        "state_dict": state, "extra": extra or {},
    }
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"checkpoint {path} is corrupt or not a PyTorch file: {load_error_reason(exc)}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise WeightsError(f"{path} is not a hoi-edge checkpoint (expected format '{FORMAT}')")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise WeightsError(f"checkpoint {path} has format version {data['format_version']}; upgrade hoi-edge")
    return data


def load_error_reason(exc: Exception) -> str:
    """torch.load's error without its advice to retry with ``weights_only=False``: that runs arbitrary
    code from the file, which is unsafe advice for a file whose origin is unknown."""
    text = str(exc)
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f" ({found.group(1)})" if found else ""
        return (f"it holds Python objects{what} that a hoi-edge checkpoint never contains; they are not "
                "unpickled, since that could run code from the file")
    if "PytorchStreamReader" in text:
        return text.split(". ")[0].replace("PytorchStreamReader failed", "failed") + " (truncated or damaged?)"
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def load_model(path: str | Path, vocabulary: str | Path | Vocabulary | None = None) -> CLIP4HOI:
    """Rebuild the model a checkpoint describes; ``vocabulary`` swaps the classes (zero-shot re-targeting)."""
    data = read_checkpoint(path)
    cfg = ModelConfig.from_dict(data["config"])
    if data["includes_frozen"]:
        cfg.clip.quick_gelu = quick_gelu(cfg.clip)  # decided by the tag, which is dropped on the next lines
        tower = cfg.clip.image_tower
        if tower.replaces_own:                      # the tower's activation and input normalisation too
            tower.quick_gelu = quick_gelu(tower)
            tower.mean, tower.std = tower_normalization(tower) or (tower.mean, tower.std)
            tower.pretrained = None
        cfg.clip.pretrained, cfg.detector.weights = None, None  # every weight comes from the file
    vocab = Vocabulary.from_dict(data["vocabulary"], source=str(path))
    model = build_model(cfg, vocab)
    state = data["state_dict"]
    if data["includes_frozen"]:
        load_strict(model, state, str(path))
    else:
        own = {k: v for k, v in model.state_dict().items() if not k.startswith(FROZEN_PREFIXES)}
        check_state(own, state, str(path))
        model.load_state_dict(state, strict=False)
    model.cfg = ModelConfig.from_dict(data["config"])
    if vocabulary is not None:
        model.classifier.set_vocabulary(vocabulary if isinstance(vocabulary, Vocabulary) else load_vocabulary(vocabulary))
    return model.eval()
