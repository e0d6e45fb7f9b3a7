"""``hoi-edge serve``'s app in-process (Starlette's TestClient, httpx underneath): the /v1 API, KServe v2 over
JSON, the guard (API key, Host, upload size), and no request value reaching the filesystem."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from starlette.testclient import TestClient

from hoi_edge.core.errors import InputFileError, VocabularyError
from hoi_edge.serve.config import ServeConfig, check_exposure, read_key_file

BASE = "http://127.0.0.1:8000"
KEY = "k" * 24


def _client(app) -> TestClient:
    return TestClient(app, base_url=BASE, raise_server_exceptions=True)


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


@pytest.fixture(scope="module")
def app(tiny_checkpoint):
    """One app for the tests that change nothing (those that do make their own)."""
    from serve_helpers import tiny_config

    from hoi_edge.serve.app import create_app

    app = create_app(tiny_config(tiny_checkpoint))
    yield app
    app.state.close()


def test_detect_answers_the_evaluators_json_for_an_upload(app, photos) -> None:
    from hoi_edge.pipeline.preprocess import load_image

    image = load_image(photos[0])
    expected = [d.to_dict() for d in app.state.engine.detector.run(image).detections]
    assert expected, "the tiny model finds triplets on every photo"
    with _client(app) as c:
        multipart = c.post("/v1/detect", files={"image": ("a/b/../photo.png", _png(image), "image/png")})
        raw = c.post("/v1/detect", content=_png(image), headers={"content-type": "image/png"})
    assert multipart.status_code == 200, multipart.text
    body = multipart.json()
    assert body["image"] == "photo.png"                       # the name is echoed, without any folder part
    assert [_rounded(d) for d in body["detections"]] == [_rounded(d) for d in expected]
    assert raw.json()["detections"] == body["detections"] and raw.json()["image"] == "upload"


def _rounded(d: dict) -> dict:
    return {k: (np.float32(v).tolist() if isinstance(v, float) else
                [float(np.float32(x)) for x in v] if isinstance(v, (list, tuple)) else v) for k, v in d.items()}


def test_a_corrupt_image_is_a_400_with_the_reason_and_no_image_a_400_too(app) -> None:
    with _client(app) as c:
        bad = c.post("/v1/detect", files={"image": ("broken.jpg", b"\xff\xd8\xff not really a jpeg", "image/jpeg")})
        empty = c.post("/v1/detect", content=b"")
        wrong_field = c.post("/v1/detect", files={"file": ("x.jpg", b"123", "image/jpeg")})
    assert bad.status_code == 400
    assert bad.json()["error"] == "cannot decode the upload 'broken.jpg': not a supported image file or corrupt"
    assert empty.status_code == 400 and "no image" in empty.json()["error"]
    assert wrong_field.status_code == 400 and "'image'" in wrong_field.json()["error"]


def test_an_oversized_upload_is_a_413_declared_or_streamed(make_app) -> None:
    app = make_app(max_upload_bytes=4096)
    with _client(app) as c:
        declared = c.post("/v1/detect", content=b"\0" * 5000)
        streamed = c.post("/v1/detect", content=iter([b"\0" * 3000, b"\0" * 3000]))   # chunked: no Content-Length
        fine = c.post("/v1/detect", content=b"\0" * 4000)
    assert declared.status_code == 413 and "4096" in declared.json()["error"]
    assert streamed.status_code == 413
    assert fine.status_code == 400                         # under the limit: it reaches the decoder


def test_with_a_key_every_route_but_the_page_needs_it(make_app) -> None:
    app = make_app(api_key=KEY)
    with _client(app) as c:
        assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200
        for path in ("/healthz", "/metrics", "/v1/streams", "/v1/info", "/v2/health/ready", "/v2/models/hoi-edge",
                     "/openapi.json"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert c.post("/v1/detect", content=b"x").status_code == 401
        assert c.get("/healthz", headers={"authorization": "Bearer " + "k" * 23 + "x"}).status_code == 401
        assert c.get("/healthz", headers={"authorization": f"Bearer {KEY}"}).status_code == 200
        assert c.get("/healthz", headers={"x-api-key": KEY}).status_code == 200
        assert c.get("/healthz", headers={"cookie": f"theme=dark; hoi_edge_key={KEY}"}).status_code == 200


def test_a_loopback_server_refuses_other_host_headers(app) -> None:
    with _client(app) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"host": "localhost:8000"}).status_code == 200
        r = c.get("/healthz", headers={"host": "attacker.example:8000"})
    assert r.status_code == 400 and "loopback" in r.json()["error"]


def test_exposure_needs_a_key_of_some_length(tmp_path) -> None:
    check_exposure("127.0.0.1", None)
    check_exposure("::1", None)
    check_exposure("0.0.0.0", KEY)
    for host in ("0.0.0.0", "192.168.1.5", "myhost"):
        with pytest.raises(InputFileError, match="--api-key"):
            ServeConfig(host=host).check()
    with pytest.raises(InputFileError, match="at least 16"):
        check_exposure("0.0.0.0", "short")
    key_file = tmp_path / "key"
    key_file.write_text(f"{KEY}\n")
    assert read_key_file(key_file) == KEY
    key_file.write_text("\n")
    with pytest.raises(InputFileError, match="first line is empty"):
        read_key_file(key_file)


@pytest.mark.parametrize("source", ["/etc/passwd", "../shared/data/videos/vtest.avi", "camera:0", "0",
                                    "file:///etc/passwd", "concat:/etc/passwd|/etc/hosts", "rtsp:/etc/passwd"])
def test_no_request_value_reaches_the_filesystem(app, source, monkeypatch) -> None:
    """A source added over the API is a network URL or nothing: paths, cameras and other schemes are refused
    before anything is opened (``Path.exists`` and OpenCV are made to fail the test if they are reached)."""
    import hoi_edge.data.sources as sources

    def reached(*a, **k):
        raise AssertionError(f"the filesystem or a capture was reached for {source!r}")

    monkeypatch.setattr(sources.Path, "exists", reached)
    monkeypatch.setattr(sources, "open_capture", reached)
    with _client(app) as c:
        r = c.post("/v1/streams", json={"source": source})
        assert r.status_code == 400, r.text
        assert c.get("/v1/streams").json() == []
        for stream_id in ("../../etc/passwd", "s0", "%2e%2e"):
            assert c.get(f"/v1/streams/{stream_id}").status_code == 404
        assert c.get("/static/..%2fapp.py").status_code == 404
        assert c.get("/static/../app.py").status_code in (404, 400)


def test_the_vocabulary_is_rebaked_live_and_a_bad_one_refused_with_bakes_message(make_app, tmp_path) -> None:
    from compress.bake import check_vocabulary

    app = make_app()
    engine = app.state.engine
    with _client(app) as c:
        before = c.get("/v1/vocabulary").json()
        assert before["name"] == "hico-det" and before["editable"] and len(before["pairs"]) == 600
        r = c.put("/v1/vocabulary", json={"text": "pet horse\nride bicycle, sip from cup"})
        assert r.status_code == 200, r.text
        assert r.json()["pairs"] == ["pet horse", "ride bicycle", "sip from cup"] and r.json()["name"] == "live"
        assert engine.detector.vocab.verbs == ("pet", "ride", "sip_from")
        assert engine.detector.text_embeddings.shape[0] == 3

        bad_file = tmp_path / "bad.json"
        bad_file.write_text(json.dumps({"name": "live", "verbs": ["ride"], "objects": ["spaceship"],
                                        "hois": [["ride", "spaceship"]]}))
        with pytest.raises(VocabularyError) as bake_error:       # what 'hoi-edge bake --vocab bad.json' checks
            check_vocabulary(engine.detector.spec.detector_classes, bad_file)
        refused = c.put("/v1/vocabulary", json={"text": "ride spaceship"})
        assert refused.status_code == 400
        # bake's message, which names the file it read the vocabulary from; the page's has no file to name
        assert refused.json()["error"] == str(bake_error.value).replace(str(bad_file), "vocabulary text")
        assert "spaceship" in refused.json()["error"]
        assert c.get("/v1/vocabulary").json()["pairs"] == ["pet horse", "ride bicycle", "sip from cup"]   # unchanged
        assert c.put("/v1/vocabulary", json={"text": "hold"}).status_code == 400
        assert c.put("/v1/vocabulary", content="pet horse", headers={"content-type": "text/plain"}).status_code == 422
        metrics = c.get("/metrics").text
    assert "hoi_edge_vocabulary_changes_total 1.0" in metrics


def test_kserve_over_json_metadata_and_errors(app, photo_rgb) -> None:
    image = photo_rgb[0]
    expected = app.state.engine.detector.run(image).detections
    request = {"id": "r1", "inputs": [{"name": "image", "datatype": "UINT8", "shape": list(image.shape),
                                       "data": image.reshape(-1).tolist()}],
               "outputs": [{"name": "score"}, {"name": "verb"}, {"name": "human_box"}]}
    with _client(app) as c:
        assert c.get("/v2/health/live").status_code == 200 and c.get("/v2/health/ready").status_code == 200
        meta = c.get("/v2/models/hoi-edge").json()
        assert meta["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, -1, 3]}]
        assert {o["name"] for o in meta["outputs"]} >= {"score", "verb", "object_label", "human_box", "object_box"}
        assert c.get("/v2/models/hoi-edge/versions/1/ready").json()["ready"] is True
        r = c.post("/v2/models/hoi-edge/infer", json=request)
        assert r.status_code == 200, r.text
        out = {o["name"]: o for o in r.json()["outputs"]}
        assert r.json()["id"] == "r1" and list(out) == ["score", "verb", "human_box"]
        assert out["score"]["data"] == [float(np.float32(d.score)) for d in expected]
        assert out["verb"]["data"] == [d.verb for d in expected]
        assert out["human_box"]["shape"] == [len(expected), 4]
        errors = {
            "/v2/models/other/infer": (404, request),
            "/v2/models/hoi-edge/versions/2/infer": (404, request),
            "/v2/models/hoi-edge/infer": (400, {"inputs": [{"name": "image", "datatype": "FP32", "shape": [2, 2, 3],
                                                             "data": [0.0] * 12}]}),
        }
        for path, (status, body) in errors.items():
            assert c.post(path, json=body).status_code == status, path
        for body, message in [
            ({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [4, 4, 3], "data": [1] * 5}]}, "shape"),
            ({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [2, 2, 3], "data": [300] * 12}]}, "UINT8"),
            ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["nope"]}]}, "cannot decode"),
            ({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 1, 3], "data": [1, 2, 3]}]}, "too small"),
            ({"inputs": []}, "inputs"),
        ]:
            r = c.post("/v2/models/hoi-edge/infer", json=body)
            assert r.status_code == 400 and message in r.json()["error"], (body, r.text)
        bad_binary = c.post("/v2/models/hoi-edge/infer", content=b'{"inputs": []}xyz',
                            headers={"inference-header-content-length": "99"})
        assert bad_binary.status_code == 400 and "does not fit" in bad_binary.json()["error"]


def test_the_openapi_schema_and_the_page(app) -> None:
    with _client(app) as c:
        schema = c.get("/openapi.json").json()
        page = c.get("/").text
        script = c.get("/static/app.js")
        info = c.get("/v1/info").json()
    assert {"/v1/detect", "/v1/streams", "/v1/streams/{stream_id}/events", "/v1/vocabulary",
            "/v2/models/{name}/infer", "/metrics", "/healthz"} <= set(schema["paths"])
    assert 'id="vocab-text"' in page and script.headers["content-type"].startswith("text/javascript")
    assert info["backend"] == "pytorch" and info["vocabulary"]["editable"] is True
