"""hoi-edge's own HTTP API, versioned under ``/v1`` (its OpenAPI schema is ``/openapi.json``).

- ``POST /v1/detect``: an image (multipart field ``image``, or the raw bytes as the body), answered with the
  evaluator's JSON (``{"image", "detections"}``, as ``hoi-edge detect --json`` writes per image);
- ``GET|POST /v1/streams``, ``GET|DELETE /v1/streams/{id}``: the streams, their fps, latency, drops, reconnects;
- ``GET /v1/events`` (all streams) and ``/v1/streams/{id}/events``: Server-Sent Events, one per processed frame
  with its triplets; ``/v1/streams/{id}/mjpeg``: the annotated stream; ``/v1/streams/{id}/frame.jpg``: its
  newest annotated frame;
- ``GET|PUT /v1/vocabulary``: the live vocabulary, re-baked on PUT.

Request values are looked up (stream ids) or parsed (URLs, vocabularies, images); none becomes a path.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from hoi_edge import __version__
from hoi_edge.core.errors import HOIEdgeError
from hoi_edge.pipeline.detect import detection_record
from hoi_edge.pipeline.postprocess import HOIDetection
from hoi_edge.pipeline.preprocess import decode_image
from hoi_edge.serve.streams import StreamWorker

POLL_S = 0.04               # how often event and MJPEG streams look for a new frame
KEEPALIVE_S = 15.0
BOUNDARY = "hoiedgeframe"
MAX_EVENTS = 1_000_000


class DetectResult(BaseModel):
    """One image in the evaluator's prediction format (``hoi-edge eval --pred`` reads it)."""

    image: str
    detections: list[HOIDetection]


class LatencyMs(BaseModel):
    last: float | None
    p50: float | None
    p95: float | None


class StreamInfo(BaseModel):
    id: str
    source: str = Field(description="the source, a URL's password hidden")
    kind: str
    state: str = Field(description="starting, running, reconnecting, ended, failed or stopped")
    error: str | None
    fps: float
    frames_read: int
    frames_processed: int
    dropped: int = Field(description="frames skipped because the pipeline was busy (the newest frame is kept)")
    reconnects: int
    latency_ms: LatencyMs
    events: list[str]
    seq: int


class NewStream(BaseModel):
    source: str = Field(description="a network stream URL (rtsp://..., http://.../video.mjpg)", max_length=2048)


class VocabularyText(BaseModel):
    text: str = Field(description="'verb object' pairs, one per line or comma-separated, or a vocabulary's JSON",
                      max_length=200_000)


class VocabularyState(BaseModel):
    name: str
    fingerprint: str
    pairs: list[str]
    editable: bool
    reason: str | None = Field(description="why the vocabulary cannot be changed here")


class Info(BaseModel):
    name: str
    version: str
    backend: str
    hoi_edge: str
    vocabulary: VocabularyState
    streams: int
    max_upload_bytes: int
    top: int


class ErrorMessage(BaseModel):
    error: str


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorMessage}, 401: {"model": ErrorMessage},
                                            404: {"model": ErrorMessage}, 413: {"model": ErrorMessage}}


def v1_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["hoi-edge v1"], responses=ERRORS)

    def state(request: Request) -> Any:
        return request.app.state

    def vocabulary_state(request: Request) -> dict[str, Any]:
        v = state(request).engine.vocabulary()
        return {"name": v.name, "fingerprint": v.fingerprint, "pairs": v.pairs, "editable": v.editable,
                "reason": v.reason}

    @router.get("/info", response_model=Info, summary="The model, its vocabulary and the server's limits")
    def info(request: Request) -> dict[str, Any]:
        s = state(request)
        return {"name": s.engine.name, "version": s.engine.version, "backend": s.engine.backend,
                "hoi_edge": __version__, "vocabulary": vocabulary_state(request), "streams": len(s.streams.list()),
                "max_upload_bytes": s.config.max_upload_bytes, "top": s.config.top}

    @router.post("/detect", response_model=DetectResult, summary="HOI triplets in one image",
                 openapi_extra={"requestBody": {"content": {
                     "multipart/form-data": {"schema": {"type": "object", "properties": {
                         "image": {"type": "string", "format": "binary"}}, "required": ["image"]}},
                     "image/*": {"schema": {"type": "string", "format": "binary"}}}}})
    async def detect(request: Request) -> Any:
        start = time.perf_counter()
        name = "upload"
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            async with request.form(max_files=1, max_fields=4) as form:
                upload = form.get("image")
                if upload is None or isinstance(upload, str):
                    return _error(400, "send the image as the multipart file field 'image' (curl -F image=@photo.jpg)")
                name = _base_name(upload.filename) or name
                data = await upload.read()
        else:
            data = await request.body()
        if not data:
            return _error(400, "the request has no image (multipart field 'image', or the image bytes as the body)")
        try:
            image = decode_image(data, f"the upload {name!r}")
        except HOIEdgeError as exc:
            return _error(400, str(exc))
        prediction = await run_in_threadpool(state(request).engine.detect, image)
        state(request).metrics.request_latency.labels("v1_detect").observe(time.perf_counter() - start)
        return detection_record(name, prediction.detections)

    @router.get("/streams", response_model=list[StreamInfo], summary="Every stream's state and statistics")
    def streams(request: Request) -> list[dict[str, Any]]:
        return [w.snapshot() for w in state(request).streams.list()]

    @router.post("/streams", response_model=StreamInfo, status_code=201, summary="Start a stream (a network URL)")
    def add_stream(request: Request, body: NewStream) -> Any:
        try:
            worker = state(request).streams.add(body.source, from_request=True)
        except HOIEdgeError as exc:
            return _error(400, str(exc))
        return worker.snapshot()

    def find(request: Request, stream_id: str) -> StreamWorker | None:
        return state(request).streams.get(stream_id)

    def no_stream(stream_id: str) -> JSONResponse:
        return _error(404, f"no stream {stream_id!r} (GET /v1/streams lists them)")

    @router.get("/streams/{stream_id}", response_model=StreamInfo, summary="One stream's state and statistics")
    def stream(request: Request, stream_id: str) -> Any:
        worker = find(request, stream_id)
        return worker.snapshot() if worker else no_stream(stream_id)

    @router.delete("/streams/{stream_id}", status_code=204, summary="Stop and remove a stream")
    def remove_stream(request: Request, stream_id: str) -> Response:
        return Response(status_code=204) if state(request).streams.remove(stream_id) else no_stream(stream_id)

    @router.get("/streams/{stream_id}/frame.jpg", summary="The newest frame with its triplets drawn",
                responses={200: {"content": {"image/jpeg": {}}}, 503: {"model": ErrorMessage}})
    def frame(request: Request, stream_id: str) -> Response:
        worker = find(request, stream_id)
        if worker is None:
            return no_stream(stream_id)
        seq, jpeg = worker.jpeg()
        if jpeg is None:
            return _error(503, f"stream {stream_id!r} has no processed frame yet (state: {worker.state})")
        return Response(jpeg, media_type="image/jpeg", headers={"cache-control": "no-store", "x-frame-seq": str(seq)})

    @router.get("/streams/{stream_id}/mjpeg", summary="The annotated stream (multipart/x-mixed-replace)",
                responses={200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}}}})
    def mjpeg(request: Request, stream_id: str,
              max_frames: int = Query(MAX_EVENTS, ge=1, le=MAX_EVENTS, description="end after this many")) -> Any:
        worker = find(request, stream_id)
        if worker is None:
            return no_stream(stream_id)
        return StreamingResponse(_mjpeg(worker, max_frames), headers={"cache-control": "no-store"},
                                 media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}")

    @router.get("/streams/{stream_id}/events", summary="Server-Sent Events: each processed frame's triplets",
                responses={200: {"content": {"text/event-stream": {}}}})
    def stream_events(request: Request, stream_id: str, max_events: int = Query(
            MAX_EVENTS, ge=1, le=MAX_EVENTS, description="end after this many")) -> Any:
        if find(request, stream_id) is None:
            return no_stream(stream_id)
        return _event_response(request, stream_id, max_events)

    @router.get("/events", summary="Server-Sent Events of every stream (what the page listens to)",
                responses={200: {"content": {"text/event-stream": {}}}})
    def events(request: Request,
               max_events: int = Query(MAX_EVENTS, ge=1, le=MAX_EVENTS, description="end after this many")) -> Any:
        return _event_response(request, None, max_events)

    @router.get("/vocabulary", response_model=VocabularyState, summary="The vocabulary the next frames use")
    def get_vocabulary(request: Request) -> dict[str, Any]:
        return vocabulary_state(request)

    @router.put("/vocabulary", response_model=VocabularyState, summary="Re-bake the vocabulary (next frames use it)",
                responses={409: {"model": ErrorMessage}})
    def put_vocabulary(request: Request, body: VocabularyText) -> Any:
        engine = state(request).engine
        if engine.rebake_unavailable:
            return _error(409, f"the vocabulary cannot change: {engine.rebake_unavailable}")
        try:
            engine.set_vocabulary(body.text)
        except HOIEdgeError as exc:
            return _error(400, str(exc))
        state(request).metrics.rebakes.inc()
        return vocabulary_state(request)

    return router


def _base_name(filename: str | None) -> str:
    """The upload's file name without any folder part: only echoed back as ``image``."""
    return (filename or "").replace("\\", "/").rsplit("/", 1)[-1][:255]


def _event_response(request: Request, stream_id: str | None, max_events: int) -> StreamingResponse:
    return StreamingResponse(_events(request.app.state.streams, stream_id, max_events), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


async def _events(streams: Any, stream_id: str | None, max_events: int) -> AsyncIterator[str]:
    """One ``frame`` event per processed frame (the newest only, for a slow reader); ``end`` when a single
    stream is gone or finished; a comment line every 15 s keeps proxies from closing an idle stream."""
    sent, last, quiet_since = 0, {}, time.monotonic()
    yield "retry: 1000\n\n"
    while True:
        workers = [w for w in streams.list() if stream_id is None or w.id == stream_id]
        fresh = False
        for w in workers:
            seq, payload = w.event()
            if payload is not None and last.get(w.id) != seq:
                last[w.id] = seq
                yield f"event: frame\ndata: {json.dumps(payload)}\n\n"
                sent, fresh = sent + 1, True
                if sent >= max_events:
                    return
        finished = bool(workers) and not workers[0].alive and last.get(workers[0].id, 0) == workers[0].seq
        if stream_id is not None and (not workers or finished):
            yield f"event: end\ndata: {json.dumps({'stream': stream_id})}\n\n"
            return
        if fresh:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_S)


async def _mjpeg(worker: StreamWorker, max_frames: int) -> AsyncIterator[bytes]:
    sent, last = 0, -1
    while sent < max_frames:
        if worker.seq != last:
            last, jpeg = await run_in_threadpool(worker.jpeg)
            if jpeg is not None:
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                       + jpeg + b"\r\n")
                sent += 1
                continue
        if not worker.alive and worker.seq == last:
            return
        await asyncio.sleep(POLL_S)
