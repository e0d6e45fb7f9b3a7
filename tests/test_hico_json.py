"""One HICO-JSON reader and one image lister: training, evaluation, calibration and validation read the
same files the same way."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compress.calibration import CalibrationConfig, list_images
from hoi_edge.core.errors import InputFileError
from hoi_edge.data.hico_json import read_hico_json
from hoi_edge.eval import load_groundtruth
from hoi_edge.validate.dataset import load_dataset
from train.dataset import load_annotations

ENTRY = {"boxes_h": [[0, 0, 10, 10]], "boxes_o": [[5, 5, 20, 20]], "hoi": [3], "object": [1], "verb": [2]}
READERS = {"train": load_annotations, "eval": load_groundtruth,
           "calibration": lambda p: list_images(CalibrationConfig(p)), "reader": read_hico_json}


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("doc, message", [
    ({"annotation": [{**ENTRY, "boxes_o": [[20, 5, 5, 20]]}], "filenames": ["a.jpg"]}, "x1 <= x2"),
    ({"annotation": [{**ENTRY, "verb": [1.5]}], "filenames": ["a.jpg"]}, "verb must be a list of integers"),
    ({"annotation": [ENTRY], "filenames": ["a.jpg"], "size": [[0, 3]]}, "size [0, 3] is not [width, height]"),
    ({"annotation": [ENTRY, ENTRY], "filenames": ["a.jpg", "a.jpg"]}, "duplicate image file names"),
    ({"images": [{"file_name": "", **ENTRY}]}, "image 0 has no file name"),
])
def test_every_reader_rejects_the_same_files(tmp_path, reader, doc, message):
    path = _write(tmp_path, doc)
    with pytest.raises(InputFileError) as err:
        READERS[reader](path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_train_and_eval_read_the_same_pairs(shared_data):
    path = shared_data / "hicodet" / "real_test_images" / "annotations.json"
    train, gt = load_annotations(path), load_groundtruth(path)
    assert tuple(a.filename for a in train) == gt.filenames
    for i, ann in enumerate(train):
        rows = gt.image == i
        np.testing.assert_array_equal(ann.hoi, gt.hoi[rows])
        np.testing.assert_array_equal(ann.boxes_h, gt.boxes_h[rows].astype(np.float32))
        np.testing.assert_array_equal(ann.boxes_o, gt.boxes_o[rows].astype(np.float32))
    assert len(list_images(CalibrationConfig(path))) == len(load_dataset(path)) == 2


def test_calib_and_data_select_the_same_images_from_a_folder(tmp_path, shared_data):
    photos = sorted((shared_data / "photos").iterdir())[:3]
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a.JPG").write_bytes(photos[0].read_bytes())
    (tmp_path / "sub" / "b.png").write_bytes(photos[1].read_bytes())
    (tmp_path / ".hidden" / "c.jpg").write_bytes(photos[2].read_bytes())
    (tmp_path / ".d.jpg").write_bytes(photos[2].read_bytes())
    (tmp_path / "folder.jpg").mkdir()                      # a folder with an image suffix is not an image
    (tmp_path / "notes.txt").write_text("x")
    calib = sorted(list_images(CalibrationConfig(tmp_path, max_images=100)))
    assert calib == list(load_dataset(tmp_path).paths) == [tmp_path / "a.JPG", tmp_path / "sub" / "b.png"]
