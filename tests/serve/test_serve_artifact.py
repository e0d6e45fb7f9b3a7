"""An exported artifact behind the server: it serves the artifact's detections; its vocabulary is fixed (and
the page says why) unless the checkpoint it came from is given, whose text encoder then re-bakes it live; an
invalid vocabulary is refused with exactly what ``hoi-edge bake`` says for it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from serve_helpers import QUICK_RECONNECT
from starlette.testclient import TestClient

from hoi_edge.serve.config import ServeConfig

BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory, tiny_checkpoint):
    from export_cache import export_cached

    from targets.export import ExportConfig

    out = tmp_path_factory.mktemp("serve-artifact") / "onnx-fp32"
    return export_cached(ExportConfig(checkpoint=str(tiny_checkpoint), target="onnx", out=out), progress=False)


def _png(image: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def test_an_artifact_is_served_and_rebaked_with_the_checkpoint_it_came_from(onnx_artifact, tiny_checkpoint,
                                                                            photo_rgb, tmp_path) -> None:
    from hoi_edge import HOIDetector
    from hoi_edge.cli import main
    from hoi_edge.serve.app import create_app

    image = photo_rgb[1]
    expected = [d.to_dict() for d in HOIDetector.from_artifact(onnx_artifact).run(image).detections]
    fixed = create_app(ServeConfig(artifact=str(onnx_artifact), reconnect=QUICK_RECONNECT))
    try:
        with TestClient(fixed, base_url=BASE) as c:
            vocab = c.get("/v1/vocabulary").json()
            refused = c.put("/v1/vocabulary", json={"text": "pet horse"})
            detected = c.post("/v1/detect", content=_png(image)).json()["detections"]
            backend = c.get("/v1/info").json()["backend"]
    finally:
        fixed.state.close()
    assert backend == "onnxruntime" and not vocab["editable"] and "--text-model" in vocab["reason"]
    assert refused.status_code == 409 and "--text-model" in refused.json()["error"]
    assert [d["hoi"] for d in detected] == [d["hoi"] for d in expected]
    np.testing.assert_allclose([d["score"] for d in detected], [d["score"] for d in expected], rtol=1e-6)

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "live", "verbs": ["ride"], "objects": ["spaceship"],
                               "hois": [["ride", "spaceship"]]}))
    bake = CliRunner().invoke(main, ["bake", "--artifact", str(onnx_artifact), "--model", str(tiny_checkpoint),
                                     "--vocab", str(bad)])
    assert bake.exit_code == 1 and "spaceship" in bake.output
    bake_message = bake.output.strip().removeprefix("Error: ").replace(str(bad), "vocabulary text")   # what it was read from

    live = create_app(ServeConfig(artifact=str(onnx_artifact), text_model=str(tiny_checkpoint),
                                  reconnect=QUICK_RECONNECT))
    try:
        with TestClient(live, base_url=BASE) as c:
            assert c.get("/v1/vocabulary").json()["editable"]
            invalid = c.put("/v1/vocabulary", json={"text": "ride spaceship"})
            ok = c.put("/v1/vocabulary", json={"text": "pet horse, ride bicycle"})
            after = c.post("/v1/detect", content=_png(image)).json()["detections"]
    finally:
        live.state.close()
    assert invalid.status_code == 400 and invalid.json()["error"] == bake_message
    assert ok.status_code == 200 and ok.json()["pairs"] == ["pet horse", "ride bicycle"]
    assert after and {d["hoi_name"] for d in after} <= {"pet horse", "ride bicycle"}


def test_a_text_model_that_is_not_the_artifacts_source_is_refused(onnx_artifact, tmp_path, tiny_model) -> None:
    import torch

    from hoi_edge.core.errors import ArtifactError
    from hoi_edge.serve.app import create_app
    from hoi_edge.weights.checkpoint import save_checkpoint

    with torch.no_grad():
        tiny_model.classifier.pair_logit_bias.add_(1.0)
        other = save_checkpoint(tiny_model, tmp_path / "other.pt")
        tiny_model.classifier.pair_logit_bias.sub_(1.0)
    with pytest.raises(ArtifactError, match="is not the checkpoint"):
        create_app(ServeConfig(artifact=str(onnx_artifact), text_model=str(other)))
