"""A detector family's weight releases are one place: registering a family with its sources makes them fetchable
(`hoi-edge weights fetch/list`), and its file recogniser is what `--detector-weights` sniffing asks."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from click.testing import CliRunner

from hoi_edge.cli import main
from hoi_edge.core.errors import WeightsError
from hoi_edge.model.detectors import (
    FAMILIES,
    WeightSource,
    family_of_weights_file,
    find_weight_source,
    register_family,
    unregister_family,
)
from hoi_edge.weights.fetch import cached, fetch


@pytest.fixture
def fake_family(tmp_path):
    """A 'yolox' family whose release is a file served from a file:// URL (no network), recognised by suffix."""
    release = tmp_path / "served" / "yolox-s.safetensors"
    release.parent.mkdir()
    release.write_bytes(b"weights of yolox-s")
    sha = hashlib.sha256(release.read_bytes()).hexdigest()
    source = WeightSource(name="yolox-s", aliases=("yolox",), description="YOLOX-S (fake)", license="Apache-2.0",
                          url=release.as_uri(), files={"yolox-s.safetensors": sha})
    fam = replace(FAMILIES["nanodet"], name="yolox", weight_sources=(source,),
                  recognizes_file=lambda path: path.suffix == ".safetensors")
    register_family(fam)
    yield fam, source, release
    unregister_family("yolox")


def test_a_registered_familys_release_is_listed_and_fetched(fake_family, tmp_path) -> None:
    fam, source, _ = fake_family
    cache = tmp_path / "cache"
    res = CliRunner().invoke(main, ["weights", "list", "--cache", str(cache)])
    assert res.exit_code == 0 and "yolox-s / yolox" in res.output and "not fetched" in res.output.splitlines()[-1]
    res = CliRunner().invoke(main, ["weights", "fetch", "YOLOX", "--cache", str(cache)])
    assert res.exit_code == 0, res.output
    assert f"yolox-s (yolox): {cache / 'yolox-s' / 'yolox-s.safetensors'} (sha256 verified)" in res.output
    assert cached(source, cache) == (cache / "yolox-s" / "yolox-s.safetensors",)
    assert find_weight_source("yolox") == (fam, source)
    res = CliRunner().invoke(main, ["weights", "fetch", "yolo", "--cache", str(cache)])
    assert res.exit_code == 2 and "did you mean 'yolox'?" in res.output


def test_a_release_whose_file_differs_is_refused_and_nothing_is_kept(fake_family, tmp_path) -> None:
    _, source, release = fake_family
    release.write_bytes(b"tampered")
    with pytest.raises(WeightsError, match="sha256 .* does not match the expected"):
        fetch(source, tmp_path / "cache")
    assert not (tmp_path / "cache" / "yolox-s" / "yolox-s.safetensors").exists()
    assert list((tmp_path / "cache" / "yolox-s").iterdir()) == []            # the temp folder is gone


def test_an_unreachable_url_is_one_clear_error(fake_family, tmp_path) -> None:
    _, source, _ = fake_family
    gone = replace(source, url=(tmp_path / "nowhere.bin").as_uri())
    with pytest.raises(WeightsError, match="cannot download yolox-s weights from file:.*offline\\?"):
        fetch(gone, tmp_path / "cache")


def test_the_registered_recogniser_claims_its_files(fake_family, tmp_path) -> None:
    assert family_of_weights_file(tmp_path / "mine.safetensors") == "yolox"
    assert family_of_weights_file(tmp_path / "other.pth") == "detr"


def test_unknown_release_names_the_known_ones() -> None:
    with pytest.raises(WeightsError, match="unknown weights 'detr-r18' \\(known: detr-r50, detr-r101, nanodet-g"):
        find_weight_source("detr-r18")


def test_every_built_in_release_records_its_hashes() -> None:
    for fam in FAMILIES.values():
        for src in fam.weight_sources:
            assert src.files and all(len(h) >= 8 for h in src.files.values()), src.name
            assert bool(src.npm) != bool(src.url), src.name
