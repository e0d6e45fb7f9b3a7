"""Every target's artifact runs end to end and agrees with the PyTorch reference on real photos; the first two
tests also for the tiny model with a timm FastViT image tower (the MobileCLIP edge candidates' kind, projected per
location and re-parameterised on export).

Tolerances: FP32 artifacts reproduce each unit's outputs within 1e-3 (absolute)
and the final HOI scores within 1e-4, with the same top-10 classes and boxes within 0.5 px. FP16 and
INT8 artifacts are held to their final detections (FINAL_TOLERANCE below): the top-10 triplets, the
boxes of the matched ones and their scores, compared by code written in the test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from detection_agreement import FINAL_TOLERANCE, agreement

from compress.onnx_qdq import optimized_op_counts
from hoi_edge import HOIDetector
from hoi_edge.core.errors import ArtifactError
from hoi_edge.core.units import EXPORT_UNITS
from hoi_edge.pipeline.preprocess import load_image
from hoi_edge.runtime.manifest import Manifest
from hoi_edge.targets_registry import TARGETS

FP32 = [(t.name, "fp32") for t in TARGETS.values()]
LOW = [(t.name, p) for t in TARGETS.values() for p in t.precisions if p != "fp32"]
IMAGES = ("zidane.jpg", "bus.jpg", "skimage_astronaut.png")
MODELS = ("tiny", "tiny_fastvit")      # tests/export/conftest.py: artifact_factory's and reference_of's models
# INT8 of the FastViT tower on OpenVINO and ONNX Runtime runs here (its per-channel activation quantizers once
# made an ONNX artifact that failed at run time); ExecuTorch's (PT2E + XNNPACK lowering, 2 CPU-minutes more) where
# HOI_EDGE_SLOW_EXPORTS=1; the default edge tower is a ViT, which the tiny model's rows cover
BY_HAND = pytest.mark.skipif(not os.environ.get("HOI_EDGE_SLOW_EXPORTS"),
                             reason="CPU-minutes more; set HOI_EDGE_SLOW_EXPORTS=1 to run it")
REDUCED = [(t, p, "tiny") for t, p in LOW] + [
    pytest.param(t, "int8", "tiny_fastvit", marks=[BY_HAND] if t == "executorch" else []) for t in TARGETS]


def _unit_pairs(reference: HOIDetector, artifact: HOIDetector, image):
    """(unit, reference output, artifact output) for each network, both fed the reference's unit inputs."""
    inputs = _unit_outputs(reference, image)
    for unit in EXPORT_UNITS:
        want = getattr(reference.runner, unit)(*inputs[unit][0])
        have = getattr(artifact.runner, unit)(*inputs[unit][0])
        want = (want,) if isinstance(want, np.ndarray) else want
        have = (have,) if isinstance(have, np.ndarray) else have
        for w, h in zip(want, have, strict=True):
            yield unit, w, h


def _unit_outputs(detector: HOIDetector, image) -> dict[str, list[np.ndarray]]:
    from compress.calibration import RecordingRunner

    rec = RecordingRunner(detector.runner)
    detector.runner = rec
    try:
        detector.run(image)
    finally:
        detector.runner = rec.runner
    return rec.samples


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("target, precision", FP32)
def test_fp32_artifact_matches_pytorch(artifact_factory, reference_of, shared_data, target, precision, model):
    reference = reference_of(model)
    art = HOIDetector.from_artifact(artifact_factory(target, precision, model))
    assert art.backend in {"openvino", "onnxruntime", "executorch"}
    for name in IMAGES:
        image = load_image(shared_data / "photos" / name)
        ref, got = reference.run(image), art.run(image)
        assert ref.detections, f"{model} on {name}: no triplet to compare"
        for unit, w, h in _unit_pairs(reference, art, image):
            np.testing.assert_allclose(h, w, atol=1e-3, err_msg=f"{target} {unit} on {name}")
        top_ref, top_got = ref.detections[:10], got.detections[:10]
        assert [d.hoi for d in top_got] == [d.hoi for d in top_ref]
        np.testing.assert_allclose([d.human_box + d.object_box for d in top_got],
                                   [d.human_box + d.object_box for d in top_ref], atol=0.5)   # pixels
        np.testing.assert_allclose([d.score for d in top_got], [d.score for d in top_ref], atol=1e-4)


@pytest.fixture(scope="module")
def reference_detections(tiny_detector, photos) -> list:
    return [tiny_detector.predict(p) for p in photos]


@pytest.fixture(scope="module")
def references_of(reference_of, photos):
    """``references_of(model)``: the PyTorch detections of one of MODELS on every photo (computed once)."""
    made: dict[str, list] = {}

    def get(model: str) -> list:
        if model not in made:
            made[model] = [reference_of(model).predict(p) for p in photos]
        return made[model]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("target, precision, model", REDUCED)
def test_reduced_precision_artifact_stays_close(artifact_factory, references_of, photos, target, precision, model):
    """Final detections on every photo against PyTorch's: top-10 triplet overlap, matched box IoU, score error
    (INT8 also for the edge image tower)."""
    art = HOIDetector.from_artifact(artifact_factory(target, precision, model))
    got = agreement(references_of(model), [art.predict(p) for p in photos])
    assert not got.check(*FINAL_TOLERANCE[precision]), (got, got.check(*FINAL_TOLERANCE[precision]))


@pytest.mark.slow
def test_final_detection_check_fails_on_a_broken_artifact(artifact_factory, reference_detections, photos):
    """The tolerances above catch an artifact whose text bank is shuffled among each object's classes (both), or
    whose boxes are off by a tenth of the input (FP16's): the check is one that can fail."""
    art = HOIDetector.from_artifact(artifact_factory("openvino", "int8"))
    text = art.text_embeddings.copy()
    rng = np.random.default_rng(0)
    for obj in np.unique(art.vocab.hoi_object):
        idx = np.flatnonzero(art.vocab.hoi_object == obj)
        text[idx] = text[np.roll(idx, 1)] if idx.size > 1 else text[idx]
    shuffled = HOIDetector(art.runner, art.spec, art.vocab, text)
    got = agreement(reference_detections, [shuffled.predict(p) for p in photos])
    assert any("overlap" in p for p in got.check(*FINAL_TOLERANCE["int8"])), got
    assert any("overlap" in p for p in got.check(*FINAL_TOLERANCE["fp16"])), got

    class ShiftedBoxes:
        name = "shifted"

        def detector(self, images):
            logits, boxes, feats = art.runner.detector(images)
            return logits, boxes + np.float32(0.1) * (rng.random(boxes.shape) > 0.5), feats

        def clip_image(self, images):
            return art.runner.clip_image(images)

        def hoi_head(self, *inputs):
            return art.runner.hoi_head(*inputs)

    shifted = HOIDetector(ShiftedBoxes(), art.spec, art.vocab, art.text_embeddings)
    got = agreement(reference_detections, [shifted.predict(p) for p in photos])
    # the FP16 tolerance sees it in the box IoU; INT8's cannot on this model (its own boxes already move as much)
    assert any("box IoU" in p for p in got.check(*FINAL_TOLERANCE["fp16"])), got


@pytest.mark.slow
def test_int8_artifacts_are_really_quantized(artifact_factory):
    import onnx

    ov_int8, ov_fp32 = artifact_factory("openvino", "int8"), artifact_factory("openvino", "fp32")
    onnx_int8 = artifact_factory("onnx", "int8")
    for unit in EXPORT_UNITS:                 # every network, not only one
        xml = (ov_int8 / f"{unit}.xml").read_text()
        assert "FakeQuantize" in xml and "FakeQuantize" not in (ov_fp32 / f"{unit}.xml").read_text(), unit
        ops = [n.op_type for n in onnx.load(str(onnx_int8 / f"{unit}.onnx")).graph.node]
        assert ops.count("QuantizeLinear") >= 2 and ops.count("DequantizeLinear") >= 2, unit
    assert (artifact_factory("openvino", "fp16") / "clip_image.bin").stat().st_size < \
           0.6 * (ov_fp32 / "clip_image.bin").stat().st_size
    et_int8, et_fp32 = artifact_factory("executorch", "int8"), artifact_factory("executorch", "fp32")
    for unit in EXPORT_UNITS:        # INT8 weights: well under half the FP32 program
        assert (et_int8 / f"{unit}.pte").stat().st_size < 0.5 * (et_fp32 / f"{unit}.pte").stat().st_size, unit
    m = Manifest.read(ov_int8)
    assert m.precision == "int8" and ".*class_embed.*" in m.quantization["detector"]["ignored_patterns"]


def _matmul_inputs(xml: Path) -> dict[str, list[str]]:
    import openvino as ov

    return {op.get_friendly_name(): [i.get_source_output().get_node().get_type_name() for i in op.inputs()]
            for op in ov.Core().read_model(str(xml)).get_ops() if op.get_type_name() == "MatMul"}


@pytest.mark.slow
def test_openvino_int8_keeps_the_sensitive_layers_in_fp(artifact_factory):
    """The ignored scope really matches: score/box heads and the decoder's projection into CLIP space keep FP32
    weight constants and unquantized inputs, while the other linear layers read FakeQuantize'd activations."""
    folder = artifact_factory("openvino", "int8")
    for unit, sensitive in (("detector", ("class_embed", "bbox_embed")), ("hoi_head", ("decoder.out_proj",))):
        matmuls = _matmul_inputs(folder / f"{unit}.xml")
        kept = {n: ins for n, ins in matmuls.items() if any(f"module.{s}" in n for s in sensitive)}
        assert len(kept) >= len(sensitive), (unit, list(matmuls))
        for name, ins in kept.items():
            assert "FakeQuantize" not in ins and "Constant" in ins, (name, ins)        # FP32 weights, FP inputs
        quantized = [n for n, ins in matmuls.items() if n not in kept and "FakeQuantize" in ins]
        # the rest is INT8, except what reads constants only (DETR's first decoder layer sees its zero target)
        assert len(quantized) >= 0.7 * (len(matmuls) - len(kept)), (unit, matmuls)


@pytest.mark.slow
def test_manifests_record_what_each_target_ran(artifact_factory):
    ov = Manifest.read(artifact_factory("openvino", "int8")).quantization
    onnx_q = Manifest.read(artifact_factory("onnx", "int8")).quantization
    et = Manifest.read(artifact_factory("executorch", "int8")).quantization
    for unit in EXPORT_UNITS:
        assert ov[unit]["method"] == "nncf.quantize" and ov[unit]["backend"] == "openvino"
        assert onnx_q[unit]["method"] == "nncf.quantize" and onnx_q[unit]["format"] == "QDQ"
        assert "max_drop" not in ov[unit] and "max_drop" not in onnx_q[unit]
        # one list of sensitive layers for every target: ExecuTorch keeps the modules the patterns name in FP
        assert et[unit]["method"].startswith("torchao pt2e") and et[unit]["ignored_patterns"] == ov[unit][
            "ignored_patterns"] == onnx_q[unit]["ignored_patterns"]
        assert "XNNPACKQuantizer" in et[unit]["quantizer"] and "preset" not in et[unit]
        assert ov[unit]["preset"] == "mixed" and ov[unit]["export_cpu"]["isa"]
    assert ov["hoi_head"]["ignored_patterns"] == [r".*decoder\.out_proj.*", r".*interactor\.geometry.*"]
    assert et["detector"]["fp_modules"] == ["class_embed", "bbox_embed", "bbox_embed.layers",
                                            "bbox_embed.layers.0", "bbox_embed.layers.1", "bbox_embed.layers.2"]
    assert any("class_embed" in n for n in et["detector"]["fp_layers"])
    assert Manifest.read(artifact_factory("openvino", "fp32")).quantization == {}


@pytest.mark.slow
def test_manifest_describes_the_artifact(artifact_factory, tiny_checkpoint):
    from hoi_edge.weights.checkpoint import file_sha256

    folder = artifact_factory("onnx", "fp32")
    m = Manifest.read(folder)
    assert m.target == "onnx" and set(m.units) == {"detector", "clip_image", "hoi_head"}
    assert m.units["detector"].inputs == {"images": [1, 3, 128, 128]}
    assert m.source_checkpoint["sha256"] == file_sha256(tiny_checkpoint)
    assert {"torch", "onnxruntime", "openvino", "executorch", "nncf"} <= set(m.versions)
    assert json.loads((folder / "vocabulary.json").read_text())["name"] == "hico-det"
    text = folder / "text_embeddings.npy"
    assert m.text_embeddings_sha256 == file_sha256(text)
    assert m.units["hoi_head"].output_shapes["pair_embeddings"][-1] == np.load(text).shape[1]
    assert m.units["detector"].output_shapes["boxes"][-1] == 4


@pytest.mark.slow
def test_baked_text_equals_live_text_encoder(artifact_factory, tiny_detector):
    emb = np.load(artifact_factory("openvino", "fp32") / "text_embeddings.npy")
    np.testing.assert_allclose(emb, tiny_detector.text_embeddings, atol=1e-6)


@pytest.mark.slow
def test_broken_artifacts_give_clear_errors(artifact_factory, tmp_path):
    import shutil

    src = artifact_factory("onnx", "fp32")
    broken = tmp_path / "broken"
    shutil.copytree(src, broken)
    (broken / "hoi_head.onnx").unlink()
    with pytest.raises(ArtifactError, match=r"incomplete: missing \['hoi_head.onnx'\]"):
        HOIDetector.from_artifact(broken)
    with pytest.raises(ArtifactError, match="not a hoi-edge artifact"):
        HOIDetector.from_artifact(tmp_path)
    shutil.copy(src / "hoi_head.onnx", broken / "hoi_head.onnx")
    (broken / "detector.onnx").write_bytes(b"not onnx")
    with pytest.raises(ArtifactError, match=r"detector.onnx does not match the manifest \(sha256 differs\)"):
        HOIDetector.from_artifact(broken)           # the per-file hash names it before any parser runs
    from hoi_edge.runtime.artifact import load_artifact

    with pytest.raises(ArtifactError, match="cannot load onnxruntime unit .*detector.onnx"):
        load_artifact(broken, verify=False)          # and without the hash check, the parser's error does
    art = HOIDetector.from_artifact(src)
    with pytest.raises(ArtifactError, match=r"input 'images' has shape \[1, 3, 64, 64\], but the artifact was exported for \[1, 3, 128, 128\]"):
        art.runner.detector(np.zeros((1, 3, 64, 64), np.float32))


# Artifact-graph checks that need the session's exported artifacts live here, beside the other users of
# artifact_factory, so a test run split by file (pytest-xdist --dist loadfile) exports each artifact once.
@pytest.mark.slow
def test_onnx_int8_artifact_runs_quantized_layers_as_integer_kernels(artifact_factory):
    folder = artifact_factory("onnx", "int8")
    recorded = Manifest.read(folder).quantization
    for unit in ("detector", "clip_image", "hoi_head"):
        counts = optimized_op_counts(folder / f"{unit}.onnx")
        graph = recorded[unit]["onnxruntime_graph"]
        assert graph["integer_ops"] == {k: counts[k] for k in graph["integer_ops"]}       # the manifest is true
        assert counts["QGemm"] + counts["MatMulIntegerToFloat"] > 0, (unit, counts)
        assert recorded[unit]["int32_biases"] > 0
    # the layers kept in FP on purpose were found in the ONNX graphs: DETR's class head + box MLP, CLIP's ln_post,
    # the decoder's out_proj (their patterns name torch modules, matched through the exporter's metadata)
    assert all(recorded[u]["ignored_nodes"] > 0 for u in ("detector", "clip_image", "hoi_head")), recorded
    assert optimized_op_counts(folder / "clip_image.onnx")["Gemm"] == 0


@pytest.mark.slow
def test_executorch_int8_detector_is_delegated_to_xnnpack(artifact_factory):
    delegation = Manifest.read(artifact_factory("executorch", "int8")).delegation
    for unit in ("detector", "clip_image"):     # DETR's transformer and CLIP's ViT layers run whole in XNNPACK
        d = delegation[unit]
        assert d["delegated_share"] >= 0.95, (unit, d)
        for op in ("addmm", "linear", "native_layer_norm", "expand_copy", "logical_not", "where", "any"):
            assert not any(op in name for name in d["portable_ops"]), (unit, op, d["portable_ops"])
    assert all(d["delegated_nodes"] > 0 for d in delegation.values())
    assert set(delegation) == {"detector", "clip_image", "hoi_head"}
    fp32 = Manifest.read(artifact_factory("executorch", "fp32")).delegation     # recorded at every precision
    assert set(fp32) == set(delegation) and fp32["detector"]["delegated_share"] >= 0.95, fp32
