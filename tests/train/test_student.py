"""``hoi-edge distill`` on the tiny configuration: the edge student (real NanoDet-g, tiny ViT/32-like tower, tiny
head) learns a random teacher (real NanoDet-g, tiny CLIP and head: ``nanodet_checkpoint``) on the photos, and
comes >= 2x closer to it on frames of a video it never saw (vtest.avi: pedestrians, unlike the photos).

The teacher is random (no trained CLIP4HOI exists offline), so these tests prove the mechanics (every distance
is computed, falls where the student did not train, resumes, exports), not the accuracy of a real student.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hoi_edge import HOIDetector
from hoi_edge.cli import main
from hoi_edge.core.errors import HOIEdgeError
from hoi_edge.core.provenance import random_init_parts
from hoi_edge.model.config import clip4hoi_edge_tiny, clip4hoi_nanodet_tiny
from hoi_edge.runtime.torch_runner import detector_from_model
from hoi_edge.weights.checkpoint import load_model
from train.student import LOG_NAME, StudentConfig, StudentDistiller, bernoulli_kl, make_student, pool_to_grid
from train.unlabelled import unlabelled_images

EPOCHS = 4                    # the first run stops after EPOCHS - 1, a resumed run finishes the last one
STEPS_PER_EPOCH = 4           # 8 photos, batches of 2


def _distill(*args: str):
    return CliRunner().invoke(main, ["distill", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, nanodet_checkpoint, shared_data):
    """(student.pt, the command's arguments, the first run's result, the resumed run's result)."""
    out = tmp_path_factory.mktemp("distill") / "student.pt"
    common = ("--teacher", nanodet_checkpoint, "--student", "clip4hoi-edge-tiny", "--images", shared_data / "photos",
              "--max-images", 8, "--heldout", shared_data / "videos" / "vtest.avi", "--heldout-images", 4,
              "--batch-size", 2, "--lr", "1e-3", "--out", out)
    first = _distill(*common, "--epochs", EPOCHS - 1)
    resumed = _distill(*common, "--epochs", EPOCHS, "--resume", out.parent / "student_run" / "last.pt")
    return out, common, first, resumed


@pytest.mark.slow
def test_distillation_lowers_the_heldout_distance_twofold(distilled):
    """The resumed run reports the distance from the start of the whole run (the history travels in last.pt)."""
    out, _, first, result = distilled
    assert first.exit_code == 0 and result.exit_code == 0, first.output + result.output
    ratio = float(re.search(r"held-out distance [\d.]+ -> [\d.]+ \(([\d.]+)x lower\)", result.output).group(1))
    assert ratio >= 2.0, result.output
    log = [json.loads(line) for line in (out.parent / "student_run" / LOG_NAME).read_text().splitlines()]
    heldout = [r["heldout"] for r in log if "heldout" in r]
    steps = [r for r in log if "step" in r and "heldout" not in r]
    assert len(heldout) == EPOCHS + 1 and len(steps) == EPOCHS * STEPS_PER_EPOCH
    first, last = heldout[0], heldout[-1]
    assert first["pairs"] > 0 and last["pairs"] == first["pairs"]               # pair distances were measured
    for term in ("global", "patch"):                                            # each active distance fell
        assert last[term] < first[term], (term, first, last)
    assert last["agree_global"] > first["agree_global"]
    assert first["loss"] == pytest.approx(first["global"] + first["pair"] + first["patch"], rel=1e-6)


@pytest.mark.slow
def test_student_is_a_checkpoint_with_the_teachers_text_side(distilled, nanodet_checkpoint, photos):
    out, *_ = distilled
    student, teacher = load_model(out), load_model(nanodet_checkpoint)
    assert student.cfg.clip.image_tower.architecture and student.cfg.detector.family == "nanodet"
    torch.testing.assert_close(student.text_embeddings(), teacher.text_embeddings())   # the same text bank
    assert "clip image tower (distilled from a random-init teacher)" in random_init_parts(student.cfg)
    assert nanodet_checkpoint.name in student.cfg.clip.image_tower.distilled_from
    assert detector_from_model(student).run(photos[0]).instances.valid.any()


@pytest.mark.slow
def test_resume_continues_the_run(distilled):
    out, common, first, result = distilled
    assert f"distilled to epoch {EPOCHS - 1}/{EPOCHS - 1} ({STEPS_PER_EPOCH * (EPOCHS - 1)} steps" in first.output
    assert f"distilled to epoch {EPOCHS}/{EPOCHS} ({STEPS_PER_EPOCH * EPOCHS} steps" in result.output
    log = (out.parent / "student_run" / LOG_NAME).read_text().splitlines()
    last = STEPS_PER_EPOCH * EPOCHS
    assert [json.loads(line)["step"] for line in log][-5:] == [last - 3, last - 2, last - 1, last, last]
    done = _distill(*common, "--epochs", EPOCHS, "--resume", out.parent / "student_run" / "last.pt")
    assert "nothing to do" in done.output


@pytest.mark.slow
def test_distilled_student_exports_like_any_checkpoint(distilled, photos, tmp_path):
    from targets.export import ExportConfig, export_artifact

    out, *_ = distilled
    folder = export_artifact(ExportConfig(checkpoint=out, target="onnx", out=tmp_path / "onnx"), progress=False)
    reference, artifact = HOIDetector.from_checkpoint(out), HOIDetector.from_artifact(folder)
    for path in photos[:3]:
        want, got = reference.run(path), artifact.run(path)
        assert want.detections and [d.hoi for d in got.detections[:10]] == [d.hoi for d in want.detections[:10]]
        np.testing.assert_allclose([d.score for d in got.detections[:10]], [d.score for d in want.detections[:10]],
                                   atol=1e-4)


def test_distill_refuses_bad_inputs(tmp_path, nanodet_checkpoint, shared_data):
    photos = shared_data / "photos"
    result = _distill("--teacher", nanodet_checkpoint, "--student", "clip4hoi-edge-tiny", "--images", photos,
                      "--heldout", photos, "--out", tmp_path / "s.pt")
    assert result.exit_code != 0 and "--heldout shares images with --images" in result.output
    result = _distill("--teacher", nanodet_checkpoint, "--images", tmp_path / "nowhere", "--out", tmp_path / "s.pt")
    assert result.exit_code != 0 and "--images not found" in result.output
    teacher = load_model(nanodet_checkpoint)
    with pytest.raises(HOIEdgeError, match="needs its own image tower"):
        make_student(teacher, clip4hoi_nanodet_tiny(), "t")


def test_detector_distillation_trains_the_student_detector(tiny_checkpoint, shared_data, tmp_path):
    """With a DETR teacher (the tiny model) and --detector-weight, the NanoDet student's weights move and every
    distance is finite; a few steps only."""
    teacher = load_model(tiny_checkpoint)
    torch.manual_seed(0)
    student = make_student(teacher, clip4hoi_edge_tiny(), "tiny")
    before = [p.detach().clone() for p in student.detector.parameters()]
    cfg = StudentConfig(epochs=1, batch_size=2, detector_weight=1.0, match_iou=0.3, lr=1e-3,
                        out=str(tmp_path / "s.pt"), run_dir=str(tmp_path / "run"), device="cpu")
    images = unlabelled_images(shared_data / "photos", max_images=4)
    records = StudentDistiller(teacher, student, images, cfg, tiny_checkpoint).fit()
    assert len(records) == 2 and all(np.isfinite(r["loss"]) and r["detector"] > 0 for r in records)
    assert any(not torch.equal(a, b) for a, b in zip(before, student.detector.parameters()))


def test_distances_are_zero_exactly_when_student_and_teacher_agree():
    logits = torch.randn(3, 5) * 4
    assert bernoulli_kl(logits, logits).abs().max() < 1e-6
    assert (bernoulli_kl(logits, logits + 1.0) > 0).all()
    grid = torch.arange(16.0).reshape(1, 4, 4).permute(1, 2, 0).reshape(1, 16, 1)     # (B, 4x4 tokens, E=1)
    np.testing.assert_allclose(pool_to_grid(grid, 4).flatten().numpy(), [2.5, 4.5, 10.5, 12.5])
