"""hoi-edge checkpoints: model config + vocabulary + weights in one file, written atomically.

Training checkpoints may leave out the frozen detector and CLIP weights
(``include_frozen=False``); they are then re-loaded from the sources named in
the config (an open_clip tag or file; a detector name or file, see model/detectors.py) when the model is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hoi_edge.core.atomic import atomic_output
from hoi_edge.core.errors import WeightsError
from hoi_edge.core.formats import check_format
from hoi_edge.core.hashing import file_sha256  # noqa: F401  (re-exported: callers import it from here)
from hoi_edge.data.vocabulary import Vocabulary, load_vocabulary
from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.model.clip_encoders import quick_gelu, tower_normalization
from hoi_edge.model.config import ModelConfig
from hoi_edge.model.detectors import family
from hoi_edge.model.weights import check_state, load_strict, safe_torch_load

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
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        # through a handle: torch.save names the archive after a path's stem, and the temp name is random, so
        # the same model would give different bytes (and sha256s, which manifests and bake compare) every save
        torch.save(payload, handle)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    data = safe_torch_load(path, "checkpoint")
    if not isinstance(data, dict):
        raise WeightsError(f"{path} is not a hoi-edge checkpoint (it holds a {type(data).__name__})")
    check_format(data, path, FORMAT, FORMAT_VERSION, "checkpoint", WeightsError)
    _check_structure(path, data)
    return data


#: What each part of a checkpoint must be (its reader relies on it): a damaged or hand-made file is named.
_PARTS = {"config": dict, "vocabulary": dict, "includes_frozen": bool, "state_dict": dict}


def _check_structure(path: Path, data: dict[str, Any]) -> None:
    for key, kind in _PARTS.items():
        if not isinstance(data.get(key), kind):
            got = "missing" if key not in data else f"a {type(data[key]).__name__}"
            raise WeightsError(f"checkpoint {path}: '{key}' must be a {kind.__name__}, got {got}")
    if not isinstance(data.get("extra", {}), dict):
        raise WeightsError(f"checkpoint {path}: 'extra' must be a dict")
    bad = next((k for k, v in data["state_dict"].items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))),
               None)
    if bad is not None:
        raise WeightsError(f"checkpoint {path}: state_dict entry {bad!r} is not a named tensor")


def _config(path: str | Path, data: dict[str, Any]) -> ModelConfig:
    """The checkpoint's model config; a damaged one is named with its file."""
    try:
        return ModelConfig.from_dict(data["config"])
    except WeightsError as exc:
        raise WeightsError(f"checkpoint {path}: {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise WeightsError(f"checkpoint {path}: malformed model config ({type(exc).__name__}: {exc})") from None


def load_model(path: str | Path, vocabulary: str | Path | Vocabulary | None = None) -> CLIP4HOI:
    """Rebuild the model a checkpoint describes; ``vocabulary`` swaps the classes (zero-shot re-targeting)."""
    data = read_checkpoint(path)
    cfg = _config(path, data)
    if data["includes_frozen"]:
        cfg.clip.quick_gelu = quick_gelu(cfg.clip)  # decided by the tag, which is dropped on the next lines
        tower = cfg.clip.image_tower
        if tower.replaces_own:                      # the tower's activation and input normalisation too
            tower.quick_gelu = quick_gelu(tower)
            tower.mean, tower.std = tower_normalization(tower) or (tower.mean, tower.std)
            tower.pretrained = None
        cfg.clip.pretrained, cfg.detector.weights = None, None  # every weight comes from the file
    vocab = Vocabulary.from_dict(data["vocabulary"], source=str(path))
    try:
        model = build_model(cfg, vocab)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RuntimeError) as exc:
        if isinstance(exc, WeightsError):
            raise
        raise WeightsError(f"checkpoint {path}: its model config does not build a model "
                           f"({type(exc).__name__}: {str(exc)[:200]})") from None
    state = data["state_dict"]
    if data["includes_frozen"]:
        load_strict(model, state, str(path))
    else:
        own = {k: v for k, v in model.state_dict().items() if not k.startswith(FROZEN_PREFIXES)}
        check_state(own, state, str(path))
        model.load_state_dict(state, strict=False)
    model.cfg = _config(path, data)
    if vocabulary is not None:
        model.classifier.set_vocabulary(vocabulary if isinstance(vocabulary, Vocabulary) else load_vocabulary(vocabulary))
    return model.eval()
