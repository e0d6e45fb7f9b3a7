"""Reading GT, predictions and splits: formats, round trips and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eval_test_helpers import H1, H2, O1, O2, make_gt, make_preds

from hoi_edge.core.errors import HOIEdgeError, InputFileError
from hoi_edge.eval import (
    ImageDetections,
    evaluate,
    load_groundtruth,
    load_split,
    load_splits,
    normalise_split_name,
    predictions_from_groundtruth,
    read_predictions,
    write_predictions,
)

GOOD_DET = {"hoi": 0, "score": 0.5, "human_box": [0, 0, 9, 9], "object_box": [1, 1, 5.5, 5]}


def _line(image: str = "img0.jpg", **det_overrides: object) -> str:
    det = {**GOOD_DET, **det_overrides}
    det = {k: v for k, v in det.items() if v is not _DROP}
    return json.dumps({"image": image, "detections": [GOOD_DET, det]})


_DROP = object()


# --- predictions -------------------------------------------------------------------------

def test_write_then_read_round_trip(tmp_path: Path) -> None:
    gt = make_gt([(0, 0, H1, O1), (1, 2, H2, O2), (1, 1, H1, O2)], n_images=3)
    preds = make_preds([(1, 2, 0.25, H2, O2), (0, 0, 0.9, H1, O1), (1, 1, 1e-7, [0.5, 1, 2, 3.25], O2)])
    path = tmp_path / "preds.jsonl"
    assert write_predictions(path, preds.to_image_detections(gt.filenames)) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["preds.jsonl"]  # no temp file left behind
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["image"] == "img0.jpg"
    assert json.loads(lines[2]) == {"image": "img2.jpg", "detections": []}      # a line per image, even empty
    back = read_predictions(path, gt)
    key = lambda p: sorted(zip(p.image.tolist(), p.hoi.tolist(), p.score.tolist(),  # noqa: E731
                               map(tuple, p.boxes_h.tolist()), map(tuple, p.boxes_o.tolist())))
    assert key(back) == key(preds)
    assert back.source == str(path)


def test_writer_accepts_plain_lists_and_rejects_nan(tmp_path: Path) -> None:
    gt = make_gt([], n_images=2)
    rec = ImageDetections("img1.jpg", [2], [0.5], [[0, 0, 1, 1]], [[2, 2, 3, 3]])
    write_predictions(tmp_path / "p.jsonl", [rec, ImageDetections("img0.jpg", [], [], [], [])])
    back = read_predictions(tmp_path / "p.jsonl", gt)
    assert back.hoi.tolist() == [2] and back.image.tolist() == [1]
    with pytest.raises(ValueError):
        write_predictions(tmp_path / "bad.jsonl", [ImageDetections("img0.jpg", [0], [float("nan")],
                                                                   [[0, 0, 1, 1]], [[0, 0, 1, 1]])])
    assert not (tmp_path / "bad.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl"]


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    gt = make_gt([], n_images=2, num_classes=600)
    path = tmp_path / "p.jsonl"
    path.write_text("\n" + _line() + "\n\n" + _line("img0.jpg") + "\n")
    with pytest.raises(InputFileError, match=r"line 4: image 'img0.jpg' already listed on line 2"):
        read_predictions(path, gt)


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"image": "img1.jpg", "detections": [', "bad JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"image": "img1.jpg"}', "missing key 'detections'"),
        ('{"detections": []}', "missing key 'image'"),
        ('{"image": "img1.jpg", "detections": {}}', "'detections' must be a list"),
        ('{"image": 3, "detections": []}', "'image' must be a file name string"),
        (_line("nope.jpg"), "unknown image name 'nope.jpg'"),
        (_line("img1.jpg", score=_DROP), r"detections\[1\] is missing key 'score'"),
        (_line("img1.jpg", human_box=_DROP), r"detections\[1\] is missing key 'human_box'"),
        ('{"image": "img1.jpg", "detections": [7]}', r"detections\[0\] must be an object"),
        (_line("img1.jpg", human_box=[0, 0, 9]), r"detections\[1\]\.human_box must be 4 finite numbers"),
        (_line("img1.jpg", object_box=[0, 0, 9, "9"]), r"detections\[1\]\.object_box must be 4 finite numbers"),
        (_line("img1.jpg", object_box=[0, 0, 9, True]), r"detections\[1\]\.object_box must be 4"),
        (_line("img1.jpg", human_box=5), r"detections\[1\]\.human_box must be 4 finite numbers"),
        (_line("img1.jpg", hoi=600), r"detections\[1\]\.hoi = 600 is out of range .* 600 classes"),
        (_line("img1.jpg", hoi=-1), r"detections\[1\]\.hoi = -1 is out of range"),
        (_line("img1.jpg", hoi=3.0), r"detections\[1\]\.hoi must be an integer"),
        (_line("img1.jpg", hoi=10**30), r"detections\[1\]\.hoi = 1(0){30} is out of range"),
        (_line("img1.jpg", hoi=True), r"detections\[1\]\.hoi must be an integer, got True"),
        (_line("img1.jpg", score=True), r"detections\[1\]\.score must be a finite number"),
        (_line("img1.jpg", score="high"), r"detections\[1\]\.score must be a finite number"),
        (_line("img1.jpg").replace("0.5", "NaN", 1), r"detections\[0\]\.score must be a finite number"),
    ],
)
def test_malformed_prediction_lines_name_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    gt = make_gt([], n_images=2, num_classes=600)
    path = tmp_path / "preds.jsonl"
    path.write_text(_line("img0.jpg") + "\n" + bad_line + "\n")
    with pytest.raises(InputFileError, match=message) as info:
        read_predictions(path, gt)
    assert f"prediction file {path}, line 2: " in str(info.value)


def test_non_utf8_line_is_reported(tmp_path: Path) -> None:
    gt = make_gt([], n_images=2)
    path = tmp_path / "preds.jsonl"
    path.write_bytes(b'{"image": "img0.jpg", "detections": []}\n{"image": "\xff"}\n')
    with pytest.raises(InputFileError, match="line 2: not UTF-8"):
        read_predictions(path, gt)


def test_missing_prediction_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="prediction file not found: .*missing.jsonl"):
        read_predictions(tmp_path / "missing.jsonl", make_gt([]))


# --- ground truth ------------------------------------------------------------------------

def test_missing_gt_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"ground-truth file not found: .*nope\.json"):
        load_groundtruth(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"foo": 1}', "expected keys 'annotation' \\+ 'filenames'"),
        ('{"annotation": [{}], "filenames": ["a.jpg"]}', r"annotation\[0\] \(a.jpg\) lacks 'boxes_h'"),
        ('{"annotation": [], "filenames": ["a.jpg"]}', "0 annotations but 1 filenames"),
        ('{"annotation": [{"boxes_h": [[0,0,1,1]], "boxes_o": [], "hoi": [1], "object": [1]}],'
         ' "filenames": ["a.jpg"]}', "fields must be lists of equal length"),
        ('{"annotation": [{"boxes_h": [[0,0,1]], "boxes_o": [[0,0,1,1]], "hoi": [1], "object": [1]}],'
         ' "filenames": ["a.jpg"]}', r"boxes_h: \[0, 0, 1\] is not 4 numbers"),
        ('{"annotation": [{"boxes_h": [[0,0,1,1]], "boxes_o": [[0,0,1,1]], "hoi": [700], "object": [1]}],'
         ' "filenames": ["a.jpg"]}', "hoi 700 outside 0..599"),
        ('{"images": [{"file_name": "a.jpg", "boxes_h": [[0,0,1,1],[0,0,1,1]], "boxes_o": [[0,0,1,1],[0,0,1,1]],'
         ' "hoi": [1, 1], "object": [1, 2]}]}', "class 1 belongs to object"),
    ],
)
def test_malformed_gt_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "gt.json"
    path.write_text(content)
    with pytest.raises(InputFileError, match=message) as info:
        load_groundtruth(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, HOIEdgeError)


def test_real_two_image_annotations(real2_gt_path: Path) -> None:
    gt = load_groundtruth(real2_gt_path)
    assert gt.filenames == ("HICO_test2015_00000001.jpg", "HICO_test2015_00003124.jpg")
    assert gt.num_classes == 600 and gt.num_pairs == 3
    assert gt.hoi.tolist() == [245, 245, 89]
    assert gt.class_object[245] == 8 and gt.class_object[89] == 22
    assert gt.boxes_h[2].tolist() == [208.0, 43.0, 475.0, 418.0]
    assert gt.rare is None


def test_full_test_gt_structure(full_gt) -> None:
    assert full_gt.num_images == 9658 and full_gt.num_pairs == 33405
    assert np.all(full_gt.n_gt_per_class > 0)
    assert full_gt.num_images - np.unique(full_gt.image).size == 112  # images without pairs kept
    assert len(full_gt.rare) == 138 and len(full_gt.non_rare) == 462
    assert full_gt.image_id("HICO_test2015_00000001.jpg") == 0


def test_gt_file_with_custom_vocabulary(tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({
        "filenames": ["k1.jpg", "k2.jpg"],
        "correspondence": [[0, 0, 0], [1, 0, 1], [2, 1, 0]],
        "annotation": [
            {"boxes_h": [H1], "boxes_o": [O1], "hoi": [2], "object": [1], "verb": [0]},
            {"boxes_h": [], "boxes_o": [], "hoi": [], "object": [], "verb": []},
        ],
    }))
    gt = load_groundtruth(path)
    assert gt.num_classes == 3 and gt.class_object.tolist() == [0, 0, 1]
    res = evaluate(gt, predictions_from_groundtruth(gt))
    assert res.map_full == 100.0 and res.num_classes_evaluated == 1


# --- splits --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["rf-uc", "rf_uc", "RF-UC", " Rf UC "])
def test_split_names_are_normalised(splits_path: Path, name: str) -> None:
    assert normalise_split_name(name) == "rf_uc"
    split = load_split(splits_path, name)
    assert split.name == "rf_uc" and len(split.unseen) == 120


def test_split_errors(tmp_path: Path, splits_path: Path) -> None:
    with pytest.raises(InputFileError, match="no split 'xx' \\(available: rf_uc, nf_uc, uo, uv\\)"):
        load_split(splits_path, "xx")
    with pytest.raises(InputFileError, match="splits file not found"):
        load_splits(tmp_path / "none.json")
    bad = tmp_path / "s.json"
    bad.write_text('{"splits": {"a": {"unseen": [1, "x"]}}}')
    with pytest.raises(InputFileError, match="split 'a' needs an 'unseen' list"):
        load_splits(bad)
