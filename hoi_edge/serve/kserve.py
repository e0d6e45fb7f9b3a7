"""The Open Inference Protocol (KServe v2) over REST, as OpenVINO Model Server and Triton speak it, so
clients written for them (``tritonclient.http``, KServe's SDK, a fleet's load balancers) work unchanged.

The model takes one input, the image: ``UINT8 [H, W, 3]`` (or ``[1, H, W, 3]``), RGB, or, as OpenVINO Model
Server accepts it, ``BYTES [1]`` holding an encoded JPEG/PNG. Its outputs are the triplets, one row per
triplet, best first, named as the fields of ``hoi-edge detect``'s JSON: ``score``, ``hoi``, ``verb``,
``object_label``, ``human_box``, ``object_box`` (x1, y1, x2, y2 in image pixels), ``human_score``,
``object_score``. Tensors travel as JSON ``data`` or with the binary tensor data extension (the JSON header,
then the raw little-endian bytes; ``Inference-Header-Content-Length`` gives the header's length), which
``tritonclient.http`` uses by default. Errors are ``{"error": "..."}`` with 400, or 404 for an unknown model.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from hoi_edge import __version__
from hoi_edge.core.errors import HOIEdgeError
from hoi_edge.pipeline.postprocess import HOIDetection
from hoi_edge.pipeline.preprocess import check_image, decode_image

HEADER_LENGTH = "inference-header-content-length"
INPUT = "image"
DTYPES: dict[str, np.dtype] = {name: np.dtype(t).newbyteorder("<") for name, t in (
    ("BOOL", np.bool_), ("UINT8", np.uint8), ("UINT16", np.uint16), ("UINT32", np.uint32), ("UINT64", np.uint64),
    ("INT8", np.int8), ("INT16", np.int16), ("INT32", np.int32), ("INT64", np.int64), ("FP16", np.float16),
    ("FP32", np.float32), ("FP64", np.float64))}
#: output name -> (datatype, shape per triplet, how to read it from a detection)
OUTPUTS: dict[str, tuple[str, list[int], Any]] = {
    "score": ("FP32", [], lambda d: d.score),
    "hoi": ("INT32", [], lambda d: d.hoi),
    "verb": ("BYTES", [], lambda d: d.verb.encode()),
    "object_label": ("BYTES", [], lambda d: d.object_label.encode()),
    "human_box": ("FP32", [4], lambda d: d.human_box),
    "object_box": ("FP32", [4], lambda d: d.object_box),
    "human_score": ("FP32", [], lambda d: d.human_score),
    "object_score": ("FP32", [], lambda d: d.object_score),
}


class KServeError(HOIEdgeError):
    """A request the protocol cannot take (400), with what is wrong."""


Tensor = np.ndarray | list[bytes]


@dataclass
class InferRequest:
    inputs: dict[str, tuple[str, Tensor]]                    # name -> (datatype, data)
    id: str | None = None
    binary_output: bool = False                               # parameters.binary_data_output
    outputs: list[tuple[str, bool | None]] = field(default_factory=list)   # requested: (name, binary)


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """The JSON inference request and its inputs, binary ones cut from the bytes after the JSON."""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise KServeError(f"Inference-Header-Content-Length {header_length!r} does not fit a body of "
                              f"{len(body)} bytes")
        head, binary = body[:int(header_length)], memoryview(body)[int(header_length):]
    else:
        head, binary = body, memoryview(b"")
    try:
        req = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KServeError(f"the inference request is not JSON ({exc})") from None
    if not isinstance(req, dict) or not isinstance(req.get("inputs"), list) or not req["inputs"]:
        raise KServeError("the inference request needs an 'inputs' list")
    params = req.get("parameters") or {}
    out = InferRequest(inputs={}, id=str(req["id"]) if "id" in req else None,
                       binary_output=bool(isinstance(params, dict) and params.get("binary_data_output")))
    offset = 0
    for i, tensor in enumerate(req["inputs"]):
        if not isinstance(tensor, dict):
            raise KServeError(f"inputs[{i}] must be an object")
        name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
        if not isinstance(name, str) or datatype not in (*DTYPES, "BYTES"):
            raise KServeError(f"inputs[{i}]: needs a 'name' and a 'datatype' (one of {', '.join([*DTYPES, 'BYTES'])})")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise KServeError(f"input '{name}': 'shape' must be a list of non-negative integers")
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise KServeError(f"input '{name}': binary_data_size {size} runs past the {len(binary)} bytes sent")
            data = _from_binary(name, datatype, shape, binary[offset:offset + size])
            offset += size
        else:
            data = _from_json(name, datatype, shape, tensor.get("data"))
        out.inputs[name] = (datatype, data)
    if offset != len(binary):
        raise KServeError(f"{len(binary) - offset} bytes of binary data follow the request that no input claims")
    for i, o in enumerate(req.get("outputs") or []):
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise KServeError(f"outputs[{i}] must be an object with a 'name'")
        if o["name"] not in OUTPUTS:
            raise KServeError(f"unknown output '{o['name']}' (outputs: {', '.join(OUTPUTS)})")
        binary_flag = (o.get("parameters") or {}).get("binary_data")
        out.outputs.append((o["name"], None if binary_flag is None else bool(binary_flag)))
    return out


def _count(shape: list[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _from_binary(name: str, datatype: str, shape: list[int], raw: memoryview) -> Tensor:
    if datatype == "BYTES":
        items, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise KServeError(f"input '{name}': truncated BYTES element")
            (n,) = struct.unpack_from("<I", raw, pos)
            if pos + 4 + n > len(raw):
                raise KServeError(f"input '{name}': a BYTES element of {n} bytes runs past the data")
            items.append(bytes(raw[pos + 4:pos + 4 + n]))
            pos += 4 + n
        if len(items) != _count(shape):
            raise KServeError(f"input '{name}': {len(items)} BYTES elements for shape {shape}")
        return items
    dtype = DTYPES[datatype]
    if len(raw) != _count(shape) * dtype.itemsize:
        raise KServeError(f"input '{name}': {len(raw)} bytes of {datatype} do not make shape {shape} "
                          f"({_count(shape) * dtype.itemsize} bytes)")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _from_json(name: str, datatype: str, shape: list[int], data: Any) -> Tensor:
    if data is None:
        raise KServeError(f"input '{name}' has neither 'data' nor parameters.binary_data_size")
    if datatype == "BYTES":
        flat = np.asarray(data, dtype=object).reshape(-1).tolist()
        if len(flat) != _count(shape) or not all(isinstance(x, str) for x in flat):
            raise KServeError(f"input '{name}': BYTES data must be {_count(shape)} strings")
        return [x.encode() for x in flat]
    try:
        array = np.asarray(data, dtype=DTYPES[datatype])
        return array.reshape(shape)
    except (ValueError, TypeError, OverflowError) as exc:
        raise KServeError(f"input '{name}': data do not make a {datatype} tensor of shape {shape} ({exc})") from None


def request_image(req: InferRequest) -> np.ndarray:
    """The one input as an RGB image: a UINT8 [H, W, 3] / [1, H, W, 3] tensor or an encoded image in BYTES [1]."""
    if len(req.inputs) != 1:
        raise KServeError(f"expected one input '{INPUT}', got {len(req.inputs)}: {', '.join(req.inputs)}")
    (name, (datatype, data)), = req.inputs.items()
    if datatype == "BYTES":
        if len(data) != 1:
            raise KServeError(f"input '{name}': one encoded image per request, got {len(data)}")
        return decode_image(data[0], f"input '{name}'")
    if datatype != "UINT8":
        raise KServeError(f"input '{name}' is {datatype}; send the image as UINT8 [H, W, 3] (RGB) or as an encoded "
                          f"image in BYTES [1]")
    image = data[0] if data.ndim == 4 and data.shape[0] == 1 else data
    return check_image(np.ascontiguousarray(image), f"input '{name}' of shape {list(data.shape)}")


def output_tensors(detections: list[HOIDetection]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for name, (datatype, per_row, read) in OUTPUTS.items():
        values = [read(d) for d in detections]
        out[name] = values if datatype == "BYTES" else np.asarray(values, dtype=DTYPES[datatype]).reshape(
            [len(detections), *per_row])
    return out


def encode_response(model: str, version: str, req: InferRequest, tensors: dict[str, Tensor]
                    ) -> tuple[bytes, dict[str, str]]:
    """(body, headers): the JSON response, followed by the binary outputs when any was asked for as binary."""
    wanted = req.outputs or [(name, None) for name in OUTPUTS]
    outputs, chunks = [], []
    for name, binary in wanted:
        datatype, per_row, _ = OUTPUTS[name]
        data = tensors[name]
        shape = [len(data), *per_row]
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if req.binary_output if binary is None else binary:
            raw = (b"".join(struct.pack("<I", len(b)) + b for b in data) if datatype == "BYTES"
                   else np.ascontiguousarray(data).tobytes())
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = [b.decode() for b in data] if datatype == "BYTES" else np.asarray(data).reshape(-1).tolist()
        outputs.append(entry)
    response: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outputs}
    if req.id is not None:
        response["id"] = req.id
    head = json.dumps(response).encode()
    if not chunks:
        return head, {"content-type": "application/json"}
    return head + b"".join(chunks), {"content-type": "application/octet-stream",
                                     "inference-header-content-length": str(len(head))}


def model_metadata(name: str, version: str, backend: str) -> dict[str, Any]:
    return {
        "name": name, "versions": [version], "platform": f"hoi-edge_{backend}",
        "inputs": [{"name": INPUT, "datatype": "UINT8", "shape": [-1, -1, 3]}],
        "outputs": [{"name": n, "datatype": dt, "shape": [-1, *per_row]} for n, (dt, per_row, _) in OUTPUTS.items()],
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def kserve_router() -> APIRouter:
    """``/v2``: server and model metadata, health, readiness and inference for the app's engine
    (``request.app.state.engine``)."""
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (KServe v2)"])

    def unknown(request: Request, name: str, version: str | None) -> JSONResponse | None:
        """A 404 when ``name`` / ``version`` is not what this server serves, else None."""
        engine = request.app.state.engine
        if name == engine.name and version in (None, engine.version):
            return None
        what = f"model '{name}'" + (f" version '{version}'" if version is not None else "")
        return _error(404, f"unknown {what}; this server serves '{engine.name}' version '{engine.version}'")

    @router.get("", summary="Server metadata")
    def server_metadata() -> dict[str, Any]:
        return {"name": "hoi-edge", "version": __version__, "extensions": ["binary_tensor_data"]}

    @router.get("/health/live", summary="Server liveness")
    def live() -> dict[str, bool]:
        return {"live": True}

    @router.get("/health/ready", summary="Server readiness")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @router.get("/models/{name}", summary="Model metadata")
    @router.get("/models/{name}/versions/{version}", summary="Model metadata (a version)")
    def metadata(request: Request, name: str, version: str | None = None) -> Any:
        engine = request.app.state.engine
        return unknown(request, name, version) or model_metadata(engine.name, engine.version, engine.backend)

    @router.get("/models/{name}/ready", summary="Model readiness")
    @router.get("/models/{name}/versions/{version}/ready", summary="Model readiness (a version)")
    def model_ready(request: Request, name: str, version: str | None = None) -> Any:
        return unknown(request, name, version) or {"name": name, "ready": True}

    @router.post("/models/{name}/infer", summary="Inference: an image in, the triplets out")
    @router.post("/models/{name}/versions/{version}/infer", summary="Inference (a version)")
    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        engine = request.app.state.engine
        missing = unknown(request, name, version)
        if missing is not None:
            return missing
        body = await request.body()
        start = time.perf_counter()
        try:
            req = parse_request(body, request.headers.get(HEADER_LENGTH))
            image = request_image(req)
        except HOIEdgeError as exc:
            return _error(400, str(exc))
        prediction = await run_in_threadpool(engine.detect, image)
        content, headers = encode_response(engine.name, engine.version, req, output_tensors(prediction.detections))
        request.app.state.metrics.request_latency.labels("v2_infer").observe(time.perf_counter() - start)
        return Response(content, headers=headers)

    return router
