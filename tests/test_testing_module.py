"""hoi_edge.testing: the tiny model says clearly where it looked for the shared photos; the planted runner
refuses outputs of the wrong shape."""

from __future__ import annotations

import numpy as np
import pytest

from hoi_edge.core.errors import InputFileError
from hoi_edge.testing import SHARED_ENV, PlantedRunner, SharedDataMissing, make_tiny_model, shared_data_dir


def test_tiny_model_without_shared_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(SHARED_ENV, str(tmp_path / "nowhere"))
    assert shared_data_dir() == tmp_path / "nowhere"
    with pytest.raises(SharedDataMissing, match=f"{tmp_path / 'nowhere' / 'photos'} does not exist.*{SHARED_ENV}"):
        make_tiny_model()
    assert issubclass(SharedDataMissing, InputFileError)      # the CLI's one-line error handling applies


def test_shared_dir_accepts_the_shared_folder_or_its_data_folder(tmp_path, monkeypatch):
    (tmp_path / "data" / "photos").mkdir(parents=True)
    monkeypatch.setenv(SHARED_ENV, str(tmp_path))
    assert shared_data_dir() == tmp_path / "data"
    monkeypatch.setenv(SHARED_ENV, str(tmp_path / "data"))
    assert shared_data_dir() == tmp_path / "data"


def test_planted_runner_checks_its_outputs():
    with pytest.raises(ValueError, match="logits"):
        PlantedRunner(np.zeros((3, 2)), np.zeros((2, 4)), np.zeros(4), {})
    runner = PlantedRunner(np.zeros((2, 3)), np.full((2, 4), 0.5), np.ones(4), {(0, 1): np.arange(4.0)})
    logits, boxes, feats = runner.detector(np.zeros((1, 3, 8, 8), np.float32))
    assert logits.shape == (1, 2, 3) and boxes.shape == (1, 2, 4) and np.array_equal(feats[0], np.eye(2))
    # instance slots in reverse query order: the head still finds pair (query 0, query 1) by its features
    out = runner.hoi_head(feats[:, ::-1], np.zeros((1, 2, 4)), np.ones((1, 2)), np.ones((1, 2)), np.zeros((1, 4, 4)))
    assert np.array_equal(out[0, 1 * 2 + 0], np.arange(4.0)) and not out[0, 0 * 2 + 1].any()
