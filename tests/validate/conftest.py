"""Artifacts and ground truth for the validator tests (OpenVINO and ONNX only: ExecuTorch export is slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_cache import export_cached
from validate_test_helpers import THREADS, damage_openvino_artifact, write_self_groundtruth

from targets.export import ExportConfig


@pytest.fixture(scope="session")
def hico_dir(shared_data) -> Path:
    return shared_data / "hicodet" / "real_test_images"


@pytest.fixture(scope="session")
def val_artifacts(tmp_path_factory, tiny_checkpoint) -> dict[str, Path]:
    """FP32 exports of the tiny checkpoint (they reproduce the reference) and a damaged OpenVINO copy."""
    root = tmp_path_factory.mktemp("val-artifacts")
    made = {t: export_cached(ExportConfig(checkpoint=tiny_checkpoint, target=t, out=root / f"{t}-fp32"),
                             progress=False) for t in ("openvino", "onnx")}
    made["damaged"] = damage_openvino_artifact(made["openvino"], root / "openvino-damaged", units=("hoi_head",))
    return made


@pytest.fixture(scope="session")
def self_gt(tmp_path_factory, tiny_checkpoint, hico_dir) -> Path:
    """HICO-format GT for the 2 real HICO images made of the reference's own best predictions
    (see validate_test_helpers.write_self_groundtruth): the reference scores 100 mAP on it.

    Made the way the CLI tests run the reference (a fresh worker process, CPU, ``THREADS`` threads), so a
    detection scoring right at the GT cut cannot flip between the two runs."""
    from hoi_edge.data.vocabulary import Vocabulary
    from hoi_edge.validate import RunSettings, load_dataset, reference_spec, run_backend

    ds = load_dataset(hico_dir / "annotations.json")
    run = run_backend(reference_spec(tiny_checkpoint, "cpu"), ds.paths,
                      RunSettings(warmup=0, threads=THREADS, progress=False))
    vocab = Vocabulary.from_dict(run.vocabulary)
    return write_self_groundtruth(run.predictions, ds.names, tmp_path_factory.mktemp("self-gt") / "annotations.json",
                                  object_of_hoi=vocab.hoi_object)
