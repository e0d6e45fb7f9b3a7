"""``export --end-to-end``: one network per artifact (image in, triplets out) agrees with the three-unit pipeline.

Reference: the PyTorch three-unit pipeline fed the CLIP input the end-to-end graph makes from the letterboxed
pixels (:meth:`EndToEnd.clip_input`; the NumPy path letterboxes the original image for CLIP instead, a
difference by construction that ``test_clip_input_difference_is_reported`` measures). FP32 artifacts of every
target give the same top-10 triplets with scores within 1e-4 on all the photos; INT8 agreement is reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from export_cache import export_cached

from hoi_edge import HOIDetector
from hoi_edge.core.errors import ExportError
from hoi_edge.pipeline.end_to_end import network_pixels
from hoi_edge.pipeline.preprocess import load_image
from hoi_edge.runtime.manifest import Manifest
from hoi_edge.targets_registry import TARGETS
from targets.end_to_end import build_end_to_end
from targets.export import ExportConfig, check_config

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "end_to_end_executorch.py"
INT8_TARGETS = ("openvino", "executorch")


@pytest.fixture(scope="session")
def e2e_factory(request, tmp_path_factory, calibration):
    """End-to-end artifacts of a test model ('tiny', or 'tiny_fastvit' with a timm FastViT image tower)."""
    root = tmp_path_factory.mktemp("e2e")
    made: dict[tuple[str, str, str], Path] = {}

    def get(target: str, precision: str, model: str = "tiny") -> Path:
        if (target, precision, model) not in made:
            made[target, precision, model] = export_cached(ExportConfig(
                checkpoint=request.getfixturevalue(f"{model}_checkpoint"), target=target,
                out=root / f"{model}-{target}-{precision}", precision=precision,
                calibration=calibration if precision == "int8" else None, end_to_end=True), progress=False)
        return made[target, precision, model]

    return get


def same_clip_runner(model, detector):
    """``image -> Prediction`` of the PyTorch three-unit pipeline ``detector`` with the CLIP input the
    end-to-end graph of ``model`` makes from the app's pixels (letterboxed or stretched)."""
    net = build_end_to_end(model, detector.spec, detector.text_embeddings)
    spec = detector.spec

    def run(image: np.ndarray):
        pixels, hw = network_pixels(image, spec.detector_size, spec.detector_resize)
        with torch.no_grad():
            clip_in = net.clip_input(torch.from_numpy(pixels), torch.tensor(hw[0, 0]), torch.tensor(hw[0, 1])).numpy()
        direct = detector._clip_letterbox
        detector._clip_letterbox = lambda _image: clip_in
        try:
            return detector.run(image)
        finally:
            detector._clip_letterbox = direct

    return run


@pytest.fixture(scope="session")
def same_clip_reference(same_clip_reference_of):
    return same_clip_reference_of("tiny")


@pytest.fixture(scope="session")
def same_clip_reference_of(request):
    """``same_clip_reference_of(model)``: :func:`same_clip_runner` of a test model ('tiny' or 'tiny_fastvit')."""
    made: dict[str, object] = {}

    def get(model: str):
        if model not in made:
            made[model] = same_clip_runner(request.getfixturevalue(f"{model}_model"),
                                           request.getfixturevalue(f"{model}_detector"))
        return made[model]

    return get


def _compare(got, want, k: int = 10) -> dict[str, float]:
    top_g, top_w = got[:k], want[:k]
    overlap = len({(d.hoi, d.human_box, d.object_box) for d in top_g} & {(d.hoi, d.human_box, d.object_box)
                                                                          for d in top_w})
    hois = len({d.hoi for d in top_g} & {d.hoi for d in top_w}) / max(1, len({d.hoi for d in top_w}))
    mae = float(np.mean([abs(a.score - b.score) for a, b in zip(top_g, top_w)])) if top_w else float("nan")
    return {"exact": overlap, "hoi_overlap": hois, "score_mae": mae}


def assert_same_top10(art, reference, photos, label: str) -> int:
    """The end-to-end artifact's triplets equal the reference's on every photo (same count, same top-10 classes,
    scores within 1e-4, boxes within 0.5 px, same kept instances); returns how many photos had triplets."""
    with_triplets = 0
    for path in photos:
        image = load_image(path)
        want, got = reference(image), art.run(image)
        assert len(got.detections) == len(want.detections), f"{label} on {path.name}"
        np.testing.assert_array_equal(got.instances.classes[got.instances.valid],
                                      want.instances.classes[want.instances.valid])
        np.testing.assert_allclose(got.instances.boxes, want.instances.boxes, atol=0.5)
        top_w, top_g = want.detections[:10], got.detections[:10]
        assert [d.hoi for d in top_g] == [d.hoi for d in top_w], f"{label} on {path.name}"
        np.testing.assert_allclose([d.score for d in top_g], [d.score for d in top_w], atol=1e-4)
        np.testing.assert_allclose([d.human_box + d.object_box for d in top_g],
                                   [d.human_box + d.object_box for d in top_w], atol=0.5)     # original pixels
        with_triplets += bool(top_w)
    return with_triplets


# the tiny model, and the tiny model with a FastViT image tower (the MobileCLIP candidates' kind), on every target;
# ExecuTorch's lowering of the second (another CPU-minute) runs where HOI_EDGE_SLOW_EXPORTS=1
BY_HAND = pytest.mark.skipif(not os.environ.get("HOI_EDGE_SLOW_EXPORTS"),
                             reason="a CPU-minute more; set HOI_EDGE_SLOW_EXPORTS=1 to run it")
E2E = [(t, "tiny") for t in TARGETS] + [
    pytest.param(t, "tiny_fastvit", marks=[BY_HAND] if t == "executorch" else []) for t in TARGETS]


@pytest.mark.slow
@pytest.mark.parametrize("target, model", E2E)
def test_fp32_end_to_end_matches_three_unit_pipeline(e2e_factory, same_clip_reference_of, photos, target, model):
    folder = e2e_factory(target, "fp32", model)
    manifest = Manifest.read(folder)
    assert manifest.layout == "end-to-end" and list(manifest.units) == ["end_to_end"]
    assert manifest.io_contract["input_names"] == ["image", "image_size"]
    assert manifest.io_contract["resize"] == "letterbox"
    art = HOIDetector.from_artifact(folder)          # not told the layout
    assert art.end_to_end and not art.pipelinable
    assert assert_same_top10(art, same_clip_reference_of(model), photos, f"{model} {target}") == len(photos) >= 10


@pytest.fixture(scope="module")
def nanodet_e2e(tmp_path_factory, nanodet_checkpoint):
    root = tmp_path_factory.mktemp("nanodet-e2e")
    made: dict[str, Path] = {}

    def get(target: str) -> Path:
        if target not in made:
            made[target] = export_cached(ExportConfig(checkpoint=nanodet_checkpoint, target=target,
                                                        out=root / target, end_to_end=True), progress=False)
        return made[target]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("target", ["openvino", "onnx"])    # ExecuTorch: checked by hand (its lowering is 150 s)
def test_fp32_nanodet_end_to_end_matches_three_unit_pipeline(nanodet_e2e, nanodet_model, nanodet_reference, photos,
                                                               target):
    """The real NanoDet-g in one network: stretched input, BGR in the graph, the best 100 candidates, static
    class-wise NMS; the same instances and triplets as the three-unit pipeline."""
    folder = nanodet_e2e(target)
    assert Manifest.read(folder).io_contract["resize"] == "stretch"
    art = HOIDetector.from_artifact(folder)
    found = assert_same_top10(art, same_clip_runner(nanodet_model, nanodet_reference), photos, f"nanodet {target}")
    assert found >= 5, f"only {found} photos with triplets: too little to compare"


@pytest.mark.slow
@pytest.mark.parametrize("target", INT8_TARGETS)
def test_int8_end_to_end_agreement_is_reported(e2e_factory, same_clip_reference, photos, target, capsys):
    """Reported, loosely bounded: the tiny random model's near-tied scores reorder under INT8."""
    art = HOIDetector.from_artifact(e2e_factory(target, "int8"))
    stats = [_compare(art.predict(p), same_clip_reference(load_image(p)).detections) for p in photos]
    hoi = float(np.mean([s["hoi_overlap"] for s in stats]))
    mae = float(np.mean([s["score_mae"] for s in stats]))
    with capsys.disabled():
        print(f"\n{target}/int8 end-to-end vs PyTorch on {len(stats)} photos: top-10 HOI-class overlap {hoi:.3f}, "
              f"top-10 score MAE {mae:.5f}")
    assert hoi >= 0.3 and mae < 0.05


@pytest.mark.slow
def test_int8_end_to_end_keeps_every_units_fp_layers(e2e_factory, artifact_factory):
    """The one INT8 network keeps in FP exactly the weighted layers the three INT8 units keep (DETR's class and
    box heads, the HOI decoder's projection into CLIP space), plus its own resampling and text-bank scoring;
    the loose agreement bound above cannot see a sensitive layer quantized."""
    import re

    from compress.openvino_layers import float_weight_layers
    from compress.quantize import SENSITIVE_PATTERNS
    from hoi_edge.core.units import EXPORT_UNITS

    units = artifact_factory("openvino", "int8")
    per_unit = {u: float_weight_layers(units / f"{u}.xml") for u in EXPORT_UNITS}
    e2e = float_weight_layers(e2e_factory("openvino", "int8") / "end_to_end.xml")
    print(f"\nFP layers: three units {per_unit}; end-to-end {e2e}")
    assert per_unit["detector"] and per_unit["hoi_head"]
    own = [n for n in e2e if any(re.fullmatch(p, n) for p in SENSITIVE_PATTERNS["end_to_end"])]
    assert own, e2e                                           # the resampling and the scorer stay FP
    # __module.detector.class_embed/aten::linear/MatMul -> the unit's own __module.class_embed/aten::linear/MatMul
    in_units = sorted("__module." + n.split(".", 2)[2] for n in e2e if n not in own)
    assert in_units == sorted(n for names in per_unit.values() for n in names), (in_units, per_unit)


def assert_sample_agrees(folder: Path, images: list[Path], tmp_path: Path) -> None:
    """``samples/end_to_end_executorch.py``, run where importing hoi_edge fails, gives hoi_edge's triplets."""
    art = HOIDetector.from_artifact(folder)
    for path in images:
        out = tmp_path / f"{path.stem}.json"
        code = ("import sys, runpy; sys.modules['hoi_edge'] = None; sys.argv = sys.argv[1:]; "
                "runpy.run_path(sys.argv[0], run_name='__main__')")      # importing hoi_edge would fail
        proc = subprocess.run([sys.executable, "-c", code, str(SAMPLE), str(folder), str(path), "--json", str(out)],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows = json.loads(out.read_text())
        want = art.predict(path)
        assert rows and len(rows) == len(want)
        assert [r["hoi"] for r in rows] == [d.hoi for d in want]
        np.testing.assert_allclose([r["score"] for r in rows], [d.score for d in want], atol=1e-6)
        np.testing.assert_allclose([r["human_box"] + r["object_box"] for r in rows],
                                   [d.human_box + d.object_box for d in want], atol=1e-3)


@pytest.mark.slow
def test_sample_runs_the_pte_without_hoi_edge(e2e_factory, photos, tmp_path):
    assert_sample_agrees(e2e_factory("executorch", "fp32"), photos[:3], tmp_path)


def test_sample_letterbox_is_the_contracts(photos) -> None:
    """The sample's letterbox (what an app copies) and hoi_edge's are the same function of the image."""
    import runpy

    sample = runpy.run_path(str(SAMPLE))
    for path in photos[:4]:
        image = load_image(path)
        for size in (128, 640):
            for resize in ("letterbox", "stretch"):
                for a, b in zip(sample["letterbox"](image, size, resize), network_pixels(image, size, resize),
                                strict=True):
                    np.testing.assert_array_equal(a, b)
                    assert a.flags["C_CONTIGUOUS"], "ExecuTorch reads the raw buffer: strides are ignored"


def test_graph_normalisation_matches_the_numpy_letterbox(tiny_model, tiny_detector, photos) -> None:
    """The graph's detector input from the app's pixels equals the NumPy pipeline's Letterbox output exactly."""
    net = build_end_to_end(tiny_model, tiny_detector.spec, tiny_detector.text_embeddings)
    for path in photos[:4]:
        image = load_image(path)
        pixels, hw = network_pixels(image, tiny_detector.spec.detector_size)
        with torch.no_grad():
            got = net.detector_input(torch.from_numpy(pixels), torch.tensor(hw[0, 0]), torch.tensor(hw[0, 1]))
        np.testing.assert_array_equal(got.numpy(), tiny_detector._det_letterbox(image))


def test_graph_input_matches_the_numpy_stretch_for_nanodet(nanodet_model, nanodet_reference, photos) -> None:
    """NanoDet: the app's stretched RGB pixels, reversed to BGR and normalised in the graph, equal the NumPy
    pipeline's detector input exactly."""
    spec = nanodet_reference.spec
    net = build_end_to_end(nanodet_model, spec, nanodet_reference.text_embeddings)
    for path in photos[:3]:
        image = load_image(path)
        pixels, hw = network_pixels(image, spec.detector_size, spec.detector_resize)
        with torch.no_grad():
            got = net.detector_input(torch.from_numpy(pixels), torch.tensor(hw[0, 0]), torch.tensor(hw[0, 1]))
        np.testing.assert_allclose(got.numpy(), nanodet_reference._det_letterbox(image), atol=1e-6)


def test_stretch_resample_undoes_the_stretch() -> None:
    """From a stretched S x S input to CLIP's letterboxed R x R: a square image is plain area resampling
    (:class:`Resample`); otherwise the content keeps its aspect, a flat colour stays that colour, and the
    rows/columns past the content are 0."""
    from hoi_edge.model.end_to_end import Resample, StretchResample

    s, r = 64, 24
    x = torch.rand(1, 3, s, s)
    net = StretchResample(s, r)
    torch.testing.assert_close(net(x, torch.tensor([[50.0]]), torch.tensor([[50.0]])), Resample(s, r)(x))
    flat = torch.full((1, 3, s, s), 0.7)
    out = net(flat, torch.tensor([[30.0]]), torch.tensor([[60.0]]))        # landscape 1:2 -> 12 rows of 24
    torch.testing.assert_close(out[..., :12, :], torch.full((1, 3, 12, r), 0.7))
    assert float(out[..., 12:, :].abs().max()) == 0.0
    tall = net(flat, torch.tensor([[90.0]]), torch.tensor([[30.0]]))        # portrait 3:1 -> 8 columns
    torch.testing.assert_close(tall[..., :, :8], torch.full((1, 3, r, 8), 0.7))
    assert float(tall[..., :, 8:].abs().max()) == 0.0


def test_clip_input_difference_is_reported(tiny_detector, same_clip_reference, photos, capsys) -> None:
    """How far the end-to-end CLIP input (resampled from the detector's letterbox) moves the top-10 from the
    three-unit pipeline's (the original image letterboxed for CLIP directly): reported, not a defect."""
    stats = [_compare(same_clip_reference(load_image(p)).detections, tiny_detector.predict(p)) for p in photos]
    with capsys.disabled():
        print(f"\nend-to-end CLIP input vs direct letterbox, PyTorch, {len(stats)} photos: top-10 HOI-class "
              f"overlap {np.mean([s['hoi_overlap'] for s in stats]):.3f}, "
              f"score MAE {np.mean([s['score_mae'] for s in stats]):.5f}")
    assert all(np.isfinite(s["score_mae"]) for s in stats)


def test_end_to_end_refuses_what_it_cannot_do(tiny_checkpoint, tmp_path, calibration) -> None:
    from compress.distill import DistillConfig

    with pytest.raises(ExportError, match="end-to-end"):
        check_config(ExportConfig(checkpoint=tiny_checkpoint, target="openvino", out=tmp_path / "a", precision="int8",
                                  calibration=calibration, distill=DistillConfig(steps=2), end_to_end=True))
    assert not (tmp_path / "a").exists()


KITCHEN = {"name": "ride-hold", "verbs": ["hold", "ride"], "objects": ["cup", "horse", "bicycle"],
           "hois": [["hold", "cup"], ["ride", "horse"], ["ride", "bicycle"], ["hold", "bicycle"]]}


@pytest.mark.slow
def test_bake_re_exports_the_one_network(e2e_factory, tiny_checkpoint, tiny_model, photos, tmp_path):
    """Re-baking an FP32 end-to-end artifact re-exports its network: the new vocabulary's classes come out, and
    they agree with PyTorch re-targeted to that vocabulary; INT8 is refused, leaving the folder as it was."""
    import shutil

    from compress.bake import rebake_artifact
    from hoi_edge.core.errors import ArtifactError
    from hoi_edge.runtime.manifest import hash_files
    from hoi_edge.runtime.torch_runner import detector_from_checkpoint

    vocab_file = tmp_path / "v.json"
    vocab_file.write_text(json.dumps(KITCHEN))
    folder = shutil.copytree(e2e_factory("openvino", "fp32"), tmp_path / "art")
    rebake_artifact(folder, tiny_checkpoint, vocab_file)
    art = HOIDetector.from_artifact(folder)
    assert art.vocab.name == "ride-hold" and art.text_embeddings.shape[0] == 4
    ref = detector_from_checkpoint(tiny_checkpoint, vocabulary=vocab_file)
    net = build_end_to_end(ref.runner.model, ref.spec, ref.text_embeddings)
    found = 0
    for path in photos[:4]:
        image = load_image(path)
        pixels, hw = network_pixels(image, ref.spec.detector_size)
        with torch.no_grad():
            clip_in = net.clip_input(torch.from_numpy(pixels), torch.tensor(hw[0, 0]), torch.tensor(hw[0, 1])).numpy()
        ref._clip_letterbox = lambda _image, c=clip_in: c
        want, got = ref.predict(image)[:10], art.predict(image)[:10]
        assert [d.hoi for d in got] == [d.hoi for d in want]
        np.testing.assert_allclose([d.score for d in got], [d.score for d in want], atol=1e-4)
        found += len(got)
    assert found > 0
    int8 = e2e_factory("openvino", "int8")
    before = hash_files(int8)
    with pytest.raises(ArtifactError, match="calibration"):
        rebake_artifact(int8, tiny_checkpoint, vocab_file)
    assert hash_files(int8) == before
