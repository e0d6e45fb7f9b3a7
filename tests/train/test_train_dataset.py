"""HICO-DET-format dataset: the hand labels, the real HICO images, errors, and the zero-shot filter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hoi_edge.core.errors import InputFileError
from hoi_edge.data.vocabulary import load_vocabulary
from train.dataset import HICODataset, filter_unseen, find_data, load_annotations

REPO = Path(__file__).resolve().parents[2]
LABELS = REPO / "samples" / "labels" / "photos_hoi.json"


@pytest.fixture(scope="module")
def vocab():
    return load_vocabulary("hico")


@pytest.fixture(scope="module")
def full_test(shared_data):
    return load_annotations(shared_data / "hicodet" / "instances_test2015.json")


def test_hand_labels_load_and_fit_their_images(shared_data, vocab):
    ds = HICODataset(LABELS, shared_data / "photos")
    assert len(ds.all_annotations) == 7 and len(ds) == 6          # skimage_coffee.png has no pair
    ds.check_vocabulary(vocab.hoi_object)
    names = {}
    for i in range(len(ds)):
        sample = ds[i]
        h, w = sample.image.shape[:2]
        t = sample.target
        assert sample.image.dtype == np.uint8 and t.size == (w, h)
        for boxes in (t.boxes_h, t.boxes_o):
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        names[t.filename] = sorted(vocab.hoi_name(int(c)) for c in t.hoi)
    assert names["messi5.jpg"] == ["kick sports ball"]
    assert names["zidane.jpg"] == ["wear tie", "wear tie"]
    assert names["basketball1.png"] == ["catch sports ball", "hold sports ball"]


def test_real_hico_images_through_find_data(shared_data):
    folder = shared_data / "hicodet" / "real_test_images"
    ann_file, images = find_data(folder)
    assert ann_file.name == "annotations.json" and images == folder
    ds = HICODataset(ann_file, images)
    assert len(ds) == 2
    first = ds[0]
    assert first.target.filename == "HICO_test2015_00000001.jpg" and first.image.shape == (427, 640, 3)
    assert first.target.hoi.tolist() == [245, 245] and first.target.object.tolist() == [8, 8]
    np.testing.assert_allclose(first.target.boxes_h[0], [320, 306, 359, 349])


def test_hflip_mirrors_boxes(shared_data):
    ds = HICODataset(LABELS, shared_data / "photos", hflip=True)
    flipped = {}
    for epoch in range(4):
        ds.set_epoch(epoch)
        s = ds[3]                                                    # messi5.jpg, 548 wide
        flipped[bool(s.target.boxes_o[0, 0] != 337)] = s
    assert set(flipped) == {True, False}
    a, b = flipped[False], flipped[True]
    np.testing.assert_allclose(b.target.boxes_o[0], [548 - 388, 288, 548 - 337, 336])
    np.testing.assert_array_equal(b.image, a.image[:, ::-1])


def _write(tmp_path: Path, doc) -> Path:
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(doc))
    return p


def _entry(**over):
    e = {"boxes_h": [[0, 0, 10, 10]], "boxes_o": [[5, 5, 20, 20]], "hoi": [493], "object": [62], "verb": [36]}
    e.update(over)
    return e


@pytest.mark.parametrize("doc, message", [
    ({"annotation": [_entry()], "filenames": []}, "1 annotations but 0 filenames"),
    ({"annotation": [_entry(boxes_h=[[0, 0, 10]])], "filenames": ["a.jpg"]}, "annotation[0] (a.jpg) boxes_h"),
    ({"annotation": [_entry(hoi=[1, 2])], "filenames": ["a.jpg"]}, "equal length"),
    ({"annotation": [_entry(boxes_o=[[20, 5, 5, 20]])], "filenames": ["a.jpg"]}, "x1 <= x2"),
    ({"annotation": [{"boxes_h": []}], "filenames": ["a.jpg"]}, "lacks 'boxes_o', 'hoi', 'object'"),
    ({"images": [{"file_name": "a.jpg", "size_wh": [5], **_entry()}]}, "size [5]"),
    ({"something": 1}, "expected keys 'annotation'"),
])
def test_malformed_annotations_name_the_file(tmp_path, doc, message):
    p = _write(tmp_path, doc)
    with pytest.raises(InputFileError, match="ann.json") as err:
        load_annotations(p)
    assert message in str(err.value)


def test_missing_files_are_clear_errors(tmp_path, shared_data):
    with pytest.raises(InputFileError, match="annotation file not found: .*nope.json"):
        load_annotations(tmp_path / "nope.json")
    p = _write(tmp_path, {"annotation": [_entry()], "filenames": ["missing.jpg"]})
    with pytest.raises(InputFileError, match=r"1 image\(s\) of .*ann.json not found .*missing.jpg"):
        HICODataset(p, tmp_path)
    with pytest.raises(InputFileError, match="image folder not found"):
        HICODataset(p, tmp_path / "no_dir")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match="expected annotations.json or exactly one"):
        find_data(empty)
    wrong_size = _write(tmp_path, {"annotation": [_entry()], "filenames": ["messi5.jpg"], "size": [[100, 100]]})
    ds = HICODataset(wrong_size, shared_data / "photos")
    with pytest.raises(InputFileError, match="messi5.jpg is 548x342 but .*ann.json says 100x100"):
        ds[0]


def test_vocabulary_mismatch_is_reported(tmp_path, shared_data, vocab):
    p = _write(tmp_path, {"annotation": [_entry(object=[3])], "filenames": ["messi5.jpg"]})
    with pytest.raises(InputFileError, match="HOI class 493 with object 3"):
        HICODataset(p, shared_data / "photos").check_vocabulary(vocab.hoi_object)


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _expected_kept(annotations, unseen: set[int], pair_iou: float):
    """Independent reference: an entry goes when it is, or re-annotates, a pair with an unseen label."""
    kept, dropped = [], 0
    for ann in annotations:
        rows = [(tuple(ann.boxes_h[i].tolist()), tuple(ann.boxes_o[i].tolist()), int(ann.hoi[i]), int(ann.object[i]))
                for i in range(ann.num_pairs)]
        bad = [r for r in rows if r[2] in unseen]
        for r in rows:
            same = any(r[3] == u[3] and (r[:2] == u[:2] if pair_iou >= 1 else
                                         _iou(r[0], u[0]) >= pair_iou and _iou(r[1], u[1]) >= pair_iou) for u in bad)
            if same:
                dropped += 1
            else:
                kept.append((ann.filename, *r[:3]))
    return kept, dropped


@pytest.mark.parametrize("pair_iou", [0.7, 1.0])
def test_filter_unseen_on_full_test_set_rf_uc(full_test, vocab, pair_iou):
    unseen = set(vocab.unseen("rf-uc"))
    total = sum(a.num_pairs for a in full_test)
    carrying_unseen = sum(int(np.isin(a.hoi, list(unseen)).sum()) for a in full_test)
    assert (total, carrying_unseen) == (33405, 836)
    kept, dropped = _expected_kept(full_test, unseen, pair_iou)
    out = filter_unseen(full_test, unseen, pair_iou)
    got = [(a.filename, tuple(a.boxes_h[i].tolist()), tuple(a.boxes_o[i].tolist()), int(a.hoi[i]))
           for a in out for i in range(a.num_pairs)]
    assert sorted(got) == sorted(kept)                               # every seen-only pair stays, nothing else
    assert not any(h in unseen for *_, h in got)
    assert dropped == total - len(got)
    if pair_iou >= 1.0:
        assert dropped == carrying_unseen                            # HICO never repeats exact boxes
    else:
        assert dropped > carrying_unseen                             # re-annotations of unseen pairs go too
    assert all(a.num_pairs for a in out)
    assert len(out) == len({k[0] for k in kept})                     # images left without pairs are dropped


def test_filter_unseen_on_hand_labels_nf_uc(vocab):
    anns = load_annotations(LABELS)
    out = filter_unseen(anns, vocab.unseen("nf-uc"))                 # wear tie, hold sports ball, no_interaction bus
    left = {a.filename: sorted(vocab.hoi_name(int(c)) for c in a.hoi) for a in out}
    # basketball1's catch label shares its pair with the unseen 'hold sports ball': the pair goes entirely
    assert left == {"basketball2.png": ["throw sports ball"], "messi5.jpg": ["kick sports ball"]}
