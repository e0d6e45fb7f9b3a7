"""The default model behind ``hoi-edge detect IMAGE`` when no ``--model`` is given.

Resolution, first hit wins:

1. ``$HOI_EDGE_MODEL``: a checkpoint path.
2. The cached default checkpoint in ``$HOI_EDGE_HOME`` (default ``~/.cache/hoi-edge``).
3. CLIP4HOI-base from its real pretrained sources — open_clip ``ViT-B-16`` / ``openai``
   and the official DETR-R50 COCO checkpoint — downloaded once, then cached (needs internet).
4. Offline: real NanoDet-g COCO weights (fetched once through npm, which is reachable where weight
   hubs are not) with the tiny *random* CLIP and HOI head (preset ``clip4hoi-nanodet-tiny``): the
   boxes are real, the HOI scores mean nothing; a warning says which part is which.
5. Offline without npm: the embedded *tiny* configuration with seeded random weights. It runs
   the whole pipeline (every part, every tensor contract) but finds nothing meaningful; a warning
   says so. See docs/weights.md.

:func:`resolve_checkpoint` is the one function that turns what a user names (``default`` or a
path) into a checkpoint file; every command's ``--model`` goes through it.
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

from hoi_edge.core.errors import WeightsError
from hoi_edge.core.paths import cache_dir  # noqa: F401  (re-exported: its historic home)
from hoi_edge.core.provenance import warn_random_init
from hoi_edge.data.vocabulary import load_vocabulary
from hoi_edge.model.config import ModelConfig, clip4hoi_base, clip4hoi_nanodet_tiny, clip4hoi_tiny
from hoi_edge.model.detectors import FAMILIES, family_of_weights_file
from hoi_edge.weights.checkpoint import build_model, save_checkpoint

PRETRAINED_NAME = "clip4hoi-base-zeroshot.pt"
RANDOM_NAME = "clip4hoi-tiny-random.pt"
NANODET_NAME = "clip4hoi-nanodet-tiny.pt"
DEFAULT_NAME = "default"
NANODET_WARNING = ("hoi-edge: WARNING offline default model — detector: NanoDet-g COCO weights (real); "
                   "CLIP and HOI head: random — HOI scores are not meaningful")
RANDOM_WARNING = ("hoi-edge: WARNING using the random-init tiny model (no pretrained weights offline, and the NanoDet "
                  "weights could not be fetched through npm): detector, CLIP and HOI head are all random; "
                  "its HOI scores are not meaningful")
RANDOM_SEED = 0
OFFLINE_MARKER = "download-failed"
NANODET_MARKER = "nanodet-fetch-failed"
RETRY_AFTER_S = 3600   # a failed download is not retried on every command (each try can take a minute)


def pretrained_config() -> ModelConfig:
    cfg = clip4hoi_base()
    cfg.detector.weights = "detr-r50"
    cfg.clip.pretrained = "openai"
    return cfg


def resolve_checkpoint(name_or_path: str | Path | None = DEFAULT_NAME, clip_weights: str | None = None,
                       detector_weights: str | None = None) -> Path:
    """The checkpoint file a ``--model`` value means: ``default`` (or None) -> :func:`default_checkpoint`,
    anything else must be an existing checkpoint file. Every command resolves ``--model`` here."""
    if name_or_path is None or str(name_or_path) == DEFAULT_NAME:
        return default_checkpoint(clip_weights=clip_weights, detector_weights=detector_weights)
    path = Path(name_or_path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path} (give a hoi-edge checkpoint .pt, or 'default')")
    return path


def checkpoint_from_weights(clip_weights: str | None, detector_weights: str | None) -> Path:
    """CLIP4HOI-base from local weight files (offline machines), its detector of the family that recognises the
    detector file (:func:`hoi_edge.model.detectors.family_of_weights_file`); cached per file identity. CLIP comes
    from ``clip_weights`` or the ``openai`` tag (downloads)."""
    cfg = pretrained_config()
    if clip_weights:
        cfg.clip.pretrained = str(Path(clip_weights).resolve())
    if detector_weights:
        cfg.detector = FAMILIES[family_of_weights_file(detector_weights)].default_config()
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


def offline_reason(cfg: ModelConfig | None = None) -> str | None:
    """Why the pretrained weights (of ``cfg``, default the pretrained default model) cannot be downloaded
    now, or None: a download failure remembered less than RETRY_AFTER_S ago, or weight hosts that do not
    resolve. Fast (no huggingface_hub retries); ``detect``, ``export`` and ``train`` all ask it."""
    if cfg is not None:
        tags = [cfg.clip.pretrained, cfg.clip.image_tower.pretrained,
                cfg.detector.weights if cfg.detector.family == "detr" else None]
        if not any(t and not Path(t).exists() for t in tags):
            return None                   # local files or nothing to fetch from the weight hosts
    marker = cache_dir() / OFFLINE_MARKER
    if _recent(marker):
        return f"a download failed less than an hour ago ({marker.read_text().strip()})"
    return weight_hosts_unreachable()


def _recent(marker: Path) -> bool:
    """Whether a failure marker was written less than RETRY_AFTER_S ago."""
    return marker.is_file() and time.time() - marker.stat().st_mtime < RETRY_AFTER_S


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
    if allow_download and not _recent(marker):
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
    return offline_checkpoint()


def offline_checkpoint() -> Path:
    """Real NanoDet-g (npm, fetched once) + tiny random CLIP and HOI head; without npm, the all-random tiny model."""
    path = cache_dir() / NANODET_NAME
    if not path.is_file():
        marker = cache_dir() / NANODET_MARKER
        if _recent(marker):                     # npm failed within the hour: do not wait on it again
            print(f"hoi-edge: NanoDet weights unavailable ({marker.read_text().strip()}; not retried before "
                  f"{RETRY_AFTER_S // 60} minutes have passed, or delete {marker})", file=sys.stderr)
            return random_tiny_checkpoint()
        try:
            torch.manual_seed(RANDOM_SEED)      # the random parts are seeded: every machine gets the same model
            model = build_model(clip4hoi_nanodet_tiny(), load_vocabulary("hico"))
        except WeightsError as exc:
            cache_dir().mkdir(parents=True, exist_ok=True)
            marker.write_text(str(exc))
            print(f"hoi-edge: NanoDet weights unavailable ({exc})", file=sys.stderr)
            return random_tiny_checkpoint()
        save_checkpoint(model, path)            # whole: the random CLIP cannot be rebuilt from a name
    warn_random_init(str(path), ["clip", "hoi head"], NANODET_WARNING)
    return path


def random_tiny_checkpoint() -> Path:
    """The last fallback (no npm): seeded, so every machine gets the same weights and the same outputs."""
    path = cache_dir() / RANDOM_NAME
    warn_random_init(str(path), ["detector", "clip", "hoi head"], RANDOM_WARNING)
    if not path.is_file():
        torch.manual_seed(RANDOM_SEED)
        save_checkpoint(build_model(clip4hoi_tiny(), load_vocabulary("hico")), path)
    return path
