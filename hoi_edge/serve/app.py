"""The ASGI app of ``hoi-edge serve``: :func:`create_app` puts the engine, the streams, the two APIs, the
metrics, the guard and the page together. Importable and testable without a network (Starlette's
``TestClient``); the CLI only adds uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from hoi_edge import __version__
from hoi_edge.serve.api import v1_router
from hoi_edge.serve.config import ServeConfig, is_loopback
from hoi_edge.serve.engine import Engine, open_engine
from hoi_edge.serve.guard import Guard
from hoi_edge.serve.kserve import kserve_router
from hoi_edge.serve.metrics import ServerMetrics
from hoi_edge.serve.streams import StreamManager, StreamOptions

#: the page's files, read into memory once: a request path is looked up here, never opened
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}


def static_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("hoi_edge.serve") / "static"
    out = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if suffix in STATIC_TYPES:
            out[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return out


def create_app(config: ServeConfig, engine: Engine | None = None) -> FastAPI:
    """The app for ``config``: loads the model (unless an ``engine`` is given) and starts ``config.sources``.

    Its streams stop when the app shuts down (uvicorn runs the lifespan), or with ``app.state.close()``."""
    config.check()
    engine = engine if engine is not None else open_engine(config)
    options = StreamOptions(top=config.top, min_score=config.min_score, loop=config.loop,
                            **{k: v for k, v in (("depth", config.depth), ("reconnect", config.reconnect)) if v})
    metrics = ServerMetrics(lambda: streams.list())          # read at scrape time
    streams = StreamManager(engine, options, config.max_streams, on_frame=metrics.observe_frame,
                            on_remove=metrics.forget)

    def close() -> None:
        streams.close()
        engine.close()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        close()

    app = FastAPI(title="hoi-edge", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Zero-shot human-object interaction detection: hoi-edge's API (/v1) and the Open "
                              "Inference Protocol (KServe v2, /v2) that OpenVINO Model Server and Triton speak.")
    app.state.config, app.state.engine, app.state.streams, app.state.metrics = config, engine, streams, metrics
    app.state.close = close
    app.include_router(v1_router())
    app.include_router(kserve_router())
    page = static_files()

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        body, media = page["index.html"]
        return Response(body, media_type=media, headers={"cache-control": "no-store"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        found = page.get(name)
        if found is None:
            return JSONResponse({"error": f"no file {name!r}"}, status_code=404)
        return Response(found[0], media_type=found[1])

    @app.get("/healthz", tags=["health"], summary="The server is up; the streams' states")
    def healthz(request: Request) -> dict[str, Any]:
        return {"status": "ok", "model": engine.name, "backend": engine.backend,
                "streams": {w.id: w.state for w in streams.list()}}

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics",
             responses={200: {"content": {"text/plain": {}}}})
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    for spec in config.sources:
        streams.add(spec)
    app.add_middleware(Guard, api_key=config.api_key, max_body=config.max_upload_bytes,
                       loopback_only=is_loopback(config.host))
    return app
