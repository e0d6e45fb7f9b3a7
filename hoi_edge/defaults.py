"""The default model behind ``hoi-edge detect IMAGE`` when no ``--model`` is given.

Resolution, first hit wins:

1. ``$HOI_EDGE_MODEL``: a checkpoint path.
2. The cached default checkpoint in ``$HOI_EDGE_HOME`` (default ``~/.cache/hoi-edge``).
3. CLIP4HOI-base from its real pretrained sources — open_clip ``ViT-B-16`` / ``openai``
   and the official DETR-R50 COCO checkpoint — downloaded once, then cached (needs internet).
4. Offline with nothing cached: the embedded *tiny* configuration with seeded random
   weights. It runs the whole pipeline (every part, every tensor contract) but its
   scores mean nothing; a warning says so. See README, "Weights".
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import torch

from hoi_edge.checkpoint import build_model, save_checkpoint
from hoi_edge.config import ModelConfig, clip4hoi_base, clip4hoi_tiny
from hoi_edge.errors import WeightsError
from hoi_edge.vocabulary import load_vocabulary

PRETRAINED_NAME = "clip4hoi-base-zeroshot.pt"
RANDOM_NAME = "clip4hoi-tiny-random.pt"
RANDOM_SEED = 0
OFFLINE_MARKER = "download-failed"
RETRY_AFTER_S = 3600   # a failed download is not retried on every command (each try can take a minute)


def cache_dir() -> Path:
    return Path(os.environ.get("HOI_EDGE_HOME", Path.home() / ".cache" / "hoi-edge"))


def pretrained_config() -> ModelConfig:
    cfg = clip4hoi_base()
    cfg.detector.weights = "detr-r50"
    cfg.clip.pretrained = "openai"
    return cfg


def checkpoint_from_weights(clip_weights: str | None, detector_weights: str | None) -> Path:
    """CLIP4HOI-base from local weight files (offline machines); cached per file identity."""
    cfg = pretrained_config()
    if clip_weights:
        cfg.clip.pretrained = str(Path(clip_weights).resolve())
    if detector_weights:
        cfg.detector.weights = str(Path(detector_weights).resolve())
    key = hashlib.sha256(repr((cfg.clip.pretrained, cfg.detector.weights, _mtime(clip_weights),
                               _mtime(detector_weights))).encode()).hexdigest()[:12]
    path = cache_dir() / f"clip4hoi-base-{key}.pt"
    if not path.is_file():
        save_checkpoint(build_model(cfg, load_vocabulary("hico")), path, include_frozen=False)
    return path


def weight_hosts_unreachable() -> str | None:
    """Why the weight hosts cannot be reached, or None. A DNS failure answers at once, whereas
    huggingface_hub would retry with back-off for about a minute before giving up."""
    if os.environ.get("HF_HUB_OFFLINE"):
        return None           # the user relies on a local Hugging Face cache: let open_clip look there
    hosts = (urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co",
             "dl.fbaipublicfiles.com")
    for host in hosts:
        try:
            socket.getaddrinfo(host, 443)
        except OSError as exc:
            return f"cannot resolve {host} ({exc}); offline? pass --clip-weights / --detector-weights"
    return None


def _mtime(path: str | None) -> float:
    return Path(path).stat().st_mtime if path and Path(path).exists() else 0.0


def default_checkpoint(allow_download: bool = True, clip_weights: str | None = None,
                       detector_weights: str | None = None) -> Path:
    """Path of the default checkpoint, creating and caching it on first use."""
    if clip_weights or detector_weights:
        return checkpoint_from_weights(clip_weights, detector_weights)
    env = os.environ.get("HOI_EDGE_MODEL")
    if env:
        if not Path(env).is_file():
            raise WeightsError(f"HOI_EDGE_MODEL points to a missing checkpoint: {env}")
        return Path(env)
    pretrained = cache_dir() / PRETRAINED_NAME
    if pretrained.is_file():
        return pretrained
    marker = cache_dir() / OFFLINE_MARKER
    recently_failed = marker.is_file() and time.time() - marker.stat().st_mtime < RETRY_AFTER_S
    if allow_download and not recently_failed:
        try:
            unreachable = weight_hosts_unreachable()
            if unreachable:
                raise WeightsError(unreachable)
            model = build_model(pretrained_config(), load_vocabulary("hico"))
        except WeightsError as exc:
            cache_dir().mkdir(parents=True, exist_ok=True)
            marker.write_text(str(exc))
            print(f"hoi-edge: pretrained weights unavailable ({exc})", file=sys.stderr)
        else:
            # untrained head on real CLIP + DETR: zero-shot through the prompts and the global CLIP score
            return save_checkpoint(model, pretrained, include_frozen=False)
    return random_tiny_checkpoint()


def random_tiny_checkpoint() -> Path:
    """The offline fallback: seeded, so every machine gets the same weights and the same outputs."""
    path = cache_dir() / RANDOM_NAME
    print("hoi-edge: WARNING using the random-init tiny model (no pretrained weights offline); "
          "its HOI scores are not meaningful", file=sys.stderr)
    if not path.is_file():
        torch.manual_seed(RANDOM_SEED)
        save_checkpoint(build_model(clip4hoi_tiny(), load_vocabulary("hico")), path)
    return path
