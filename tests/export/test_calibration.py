"""Calibration / validation image lists: folders and both HICO json layouts; missing images are named."""

from __future__ import annotations

import json
import shutil

import pytest

from compress.calibration import CalibrationConfig, list_images
from hoi_edge.core.errors import InputFileError

NAMES = {"HICO_test2015_00000001.jpg", "HICO_test2015_00003124.jpg"}


def test_hico_json_with_images_layout(shared_data):
    ann = shared_data / "hicodet" / "real_test_images" / "annotations.json"
    paths = list_images(CalibrationConfig(ann))
    assert {p.name for p in paths} == NAMES and all(p.is_file() for p in paths)


def test_fredzzhang_layout_with_images_elsewhere(shared_data, tmp_path):
    real = shared_data / "hicodet" / "real_test_images"
    entry = {"boxes_h": [[0, 0, 10, 10]], "boxes_o": [[5, 5, 20, 20]], "hoi": [0], "object": [4], "verb": [0]}
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps({"annotation": [entry, entry], "filenames": sorted(NAMES)}))
    paths = list_images(CalibrationConfig(ann, images_dir=real))
    assert {p.name for p in paths} == NAMES and all(p.parent == real for p in paths)


def test_missing_listed_image_is_named(shared_data, tmp_path):
    real = shared_data / "hicodet" / "real_test_images"
    shutil.copy(real / "annotations.json", tmp_path / "annotations.json")
    shutil.copy(real / "HICO_test2015_00000001.jpg", tmp_path)
    with pytest.raises(InputFileError, match=r"1 of the 2 calibration images .* missing: .*HICO_test2015_00003124"
                                             r"\.jpg \(pass --calib-images-dir"):
        list_images(CalibrationConfig(tmp_path / "annotations.json"))
    with pytest.raises(InputFileError, match=r"validation images .* missing: .*HICO_test2015_00003124\.jpg$"):
        list_images(CalibrationConfig(tmp_path / "annotations.json", role="validation"))


def test_json_that_is_not_hico(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"foo": 1}')
    with pytest.raises(InputFileError, match="expected keys 'annotation' \\+ 'filenames'"):
        list_images(CalibrationConfig(bad))


def test_a_folder_larger_than_the_sample_gives_a_seeded_random_subset(tmp_path):
    """--calib-size 300 on a large folder must not take the first 300 files by name (often one scene or one
    class): a seeded shuffle picks them, the same for the same seed and another for another seed."""
    names = [f"img_{i:03d}.jpg" for i in range(40)]
    for name in names:
        (tmp_path / name).write_bytes(b"")                         # listing only: nothing is decoded here
    picked = {seed: [p.name for p in list_images(CalibrationConfig(tmp_path, max_images=8, seed=seed))]
              for seed in (0, 1)}
    assert all(len(p) == 8 and len(set(p)) == 8 for p in picked.values())
    assert sorted(picked[0]) != names[:8] and sorted(picked[1]) != names[:8]
    assert [p.name for p in list_images(CalibrationConfig(tmp_path, max_images=8, seed=0))] == picked[0]
    assert set(picked[0]) != set(picked[1])
