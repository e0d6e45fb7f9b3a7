"""`hoi-edge eval` (eval_command) end to end on the 2 real test images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hoi_edge.eval import Predictions, load_groundtruth, predictions_from_groundtruth, write_predictions
from hoi_edge.eval.cli import default_out_path, eval_command


@pytest.fixture()
def perfect_preds(tmp_path: Path, real2_gt_path: Path) -> Path:
    gt = load_groundtruth(real2_gt_path)
    path = tmp_path / "preds.jsonl"
    write_predictions(path, predictions_from_groundtruth(gt).to_image_detections(gt.filenames))
    return path


def test_cli_gt_as_predictions_writes_json(tmp_path: Path, real2_gt_path: Path, perfect_preds: Path) -> None:
    out = tmp_path / "result.json"
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(perfect_preds),
                                            "--out", str(out)])
    assert res.exit_code == 0, res.output
    # This GT file has no rare / non-rare lists: they come from the built-in HICO-DET
    # vocabulary; both of its classes are non-rare, so Rare stays n/a.
    assert "| Default | 100.00 | n/a | 100.00 | 100.00 |" in res.output
    assert "built-in HICO-DET vocabulary" in res.output
    data = json.loads(out.read_text())
    assert data["mAP_full"] == 100.0 and data["mean_recall"] == 100.0
    assert data["mAP_rare"] is None and data["mAP_non_rare"] == 100.0
    assert data["rare_source"] == "hico-vocabulary" and data["box_offset"] == 0.0
    assert data["num_classes_evaluated"] == 2 and data["num_detections"] == 3
    assert data["per_class_ap"][245] == 100.0 and data["per_class_ap"][0] is None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_writes_json_next_to_predictions_by_default(tmp_path: Path, real2_gt_path: Path,
                                                        perfect_preds: Path) -> None:
    expected = tmp_path / "preds.eval.json"
    assert default_out_path(perfect_preds) == expected
    assert default_out_path(Path("runs/x.v2.jsonl")) == Path("runs/x.v2.eval.json")
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(perfect_preds)])
    assert res.exit_code == 0, res.output
    assert f"Result written to {expected}." in res.output
    data = json.loads(expected.read_text())
    assert data["mAP_full"] == 100.0 and data["num_detections"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.eval.json", "preds.jsonl"]  # no temp file
    # Re-running replaces it; --out still wins.
    other = tmp_path / "sub.json"
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(perfect_preds),
                                            "--out", str(other)])
    assert res.exit_code == 0 and other.is_file()
    # --out must not overwrite the predictions.
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(perfect_preds),
                                            "--out", str(perfect_preds)])
    assert res.exit_code == 1 and "would overwrite the prediction file" in res.output
    assert perfect_preds.read_text().startswith('{"image"')


def test_cli_box_offset(tmp_path: Path, real2_gt_path: Path) -> None:
    gt = load_groundtruth(real2_gt_path)
    p = predictions_from_groundtruth(gt)
    shifted = Predictions.from_arrays(p.image, p.hoi, p.score, p.boxes_h - 1, p.boxes_o - 1)
    pred = tmp_path / "zero_based.jsonl"
    write_predictions(pred, shifted.to_image_detections(gt.filenames))
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(pred), "--box-offset", "1"])
    assert res.exit_code == 0, res.output
    assert "| Default | 100.00 |" in res.output and "shifted by +1" in res.output
    data = json.loads((tmp_path / "zero_based.eval.json").read_text())
    assert data["mAP_full"] == 100.0 and data["box_offset"] == 1.0
    # The offset really moves the boxes: a large one makes every detection miss.
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(pred), "--box-offset", "300"])
    assert res.exit_code == 0 and "| Default | 0.00 |" in res.output
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(pred), "--box-offset", "nan"])
    assert res.exit_code == 2 and "finite" in res.output


def test_cli_zero_shot_split_and_options(tmp_path: Path, real2_gt_path: Path, perfect_preds: Path,
                                         splits_path: Path) -> None:
    out = tmp_path / "r.json"
    res = CliRunner().invoke(eval_command, [
        "--gt", str(real2_gt_path), "--pred", str(perfect_preds), "--split", "RF-UC",
        "--splits", str(splits_path), "--setting", "known_object", "--top-k", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| Known-Object |" in res.output and "| RF-UC |" in res.output
    data = json.loads(out.read_text())
    assert data["zero_shot"]["split"] == "rf_uc" and data["zero_shot"]["num_unseen"] == 120
    # top-1 per image drops one of the two pairs of image 1: class 245 keeps 1 of 2 GT.
    assert data["num_detections"] == 2 and data["per_class_max_recall"][245] == 50.0


def test_cli_default_splits_file_next_to_gt(test_gt_path: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    res = CliRunner().invoke(eval_command, ["--gt", str(test_gt_path), "--pred", str(empty), "--split", "uo"])
    assert res.exit_code == 0, res.output
    assert "| UO | 0.00 | 0.00 | 0.00 |" in res.output
    assert json.loads((tmp_path / "empty.eval.json").read_text())["rare_source"] == "gt"


def test_cli_errors_are_one_line(tmp_path: Path, real2_gt_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "HICO_test2015_00000001.jpg", "detections": [{"hoi": 1}]}\n')
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(bad)])
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert res.output.strip().startswith("Error: prediction file") and "line 1" in res.output
    assert "missing key 'score'" in res.output

    res = CliRunner().invoke(eval_command, ["--gt", str(tmp_path / "gt.json"), "--pred", str(bad)])
    assert res.exit_code == 1 and "ground-truth file not found" in res.output

    # without --splits the built-in vocabulary's splits answer; a typo is caught first, with a suggestion
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(bad), "--split", "rf-cu"])
    assert res.exit_code == 1 and "no zero-shot split 'rf-cu'" in res.output and "did you mean 'rf_uc'?" in res.output

    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(bad), "--top-k", "0"])
    assert res.exit_code == 2  # click usage error


def test_cli_warns_when_predictions_cover_only_some_gt_images(tmp_path: Path, real2_gt_path: Path,
                                                              perfect_preds: Path) -> None:
    lines = perfect_preds.read_text().splitlines()
    assert len(lines) == 2                                       # one line per GT image, as written
    partial = tmp_path / "partial.jsonl"
    partial.write_text(lines[0] + "\n")
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(partial)])
    assert res.exit_code == 0 and "covers 1 of the 2 ground-truth images" in res.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(empty)])
    assert res.exit_code == 0 and "lists none of the 2 ground-truth images" in res.output
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(perfect_preds)])
    assert "warning" not in res.output


def test_split_without_splits_file_uses_the_vocabulary(tmp_path: Path, real2_gt_path: Path, perfect_preds: Path,
                                                       splits_path: Path) -> None:
    """No splits.json beside this GT: the built-in HICO-DET vocabulary's split answers, and says the same."""
    assert not (real2_gt_path.parent / "splits.json").exists()
    results = {}
    for extra in ([], ["--splits", str(splits_path)]):
        out = tmp_path / f"r{len(extra)}.json"
        res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(perfect_preds),
                                                "--split", "rf-uc", "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        results[len(extra)] = json.loads(out.read_text())["zero_shot"]
    assert results[0] == results[2] and results[0]["num_unseen"] == 120


def test_unwritable_out_fails_before_evaluating(tmp_path: Path, real2_gt_path: Path, perfect_preds: Path,
                                                monkeypatch) -> None:
    import hoi_edge.eval.cli as cli

    def evaluate(*args, **kwargs):
        raise AssertionError("evaluated before checking --out")

    monkeypatch.setattr(cli, "evaluate", evaluate)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(perfect_preds),
                                            "--out", str(blocker / "r.json")])
    assert res.exit_code == 1 and f"cannot write --out {blocker / 'r.json'}" in res.output, res.output
    assert ".r." not in res.output                                # names the file asked for, not a temp file


def test_an_incomplete_last_line_is_left_out_with_a_warning(tmp_path: Path, real2_gt_path: Path,
                                                            perfect_preds: Path) -> None:
    """A run killed while writing its last line: the whole lines count, the cut one is named."""
    first, second = perfect_preds.read_text().splitlines()
    cut = tmp_path / "cut.jsonl"
    cut.write_text(first + "\n" + second[: len(second) // 2])
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(cut)])
    assert res.exit_code == 0, res.output
    assert "line 2, the last one, is incomplete" in res.output and "covers 1 of the 2" in res.output
    broken = tmp_path / "broken.jsonl"                           # a bad line that ends: still an error
    broken.write_text(second[: len(second) // 2] + "\n" + first + "\n")
    res = CliRunner().invoke(eval_command, ["--gt", str(real2_gt_path), "--pred", str(broken)])
    assert res.exit_code == 1 and "line 1: bad JSON" in res.output
