"""``hoi-edge serve``: the HTTP service (hoi-edge's /v1 API, the KServe v2 protocol, metrics and a live page)
over one shared detector, for several cameras at once. A thin layer: options -> :class:`ServeConfig` ->
:func:`hoi_edge.serve.app.create_app`, run by uvicorn."""

from __future__ import annotations

import click

from hoi_edge.cli_options import artifact_option, device_option, model_option, vocab_option, weights_options
from hoi_edge.clickutil import examples, friendly_errors
from hoi_edge.serve.config import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT, MIB

SHUTDOWN_GRACE_S = 3      # open event and MJPEG streams are cut after this on Ctrl-C


@click.command("serve", epilog=examples(
    "hoi-edge serve --source ../shared/data/videos/vtest.avi --loop",
    "hoi-edge serve --artifact artifacts/ov-int8 --text-model model.pt --source rtsp://cam1/stream "
    "--source camera:0",
    "hoi-edge serve --host 0.0.0.0 --api-key-file /etc/hoi-edge/key --source http://cam2/video.mjpg"))
@model_option
@artifact_option()
@click.option("--text-model", type=click.Path(dir_okay=False), default=None,
              help="With --artifact: the checkpoint it was exported from; its text encoder lets the page change "
                   "the vocabulary (checked by sha256).")
@vocab_option()
@weights_options
@device_option
@click.option("--source", "sources", multiple=True,
              help="A stream to start with: camera:N, rtsp://..., http://.../video.mjpg, or a video file (played "
                   "at its frame rate, as a camera); repeat for several. More can be added on the page.")
@click.option("--loop", is_flag=True, help="Video file sources start again at their end.")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on; anything but the loopback needs --api-key or --api-key-file.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key", envvar="HOI_EDGE_API_KEY", default=None,
              help="Key every request must send (Authorization: Bearer KEY or X-API-Key); also $HOI_EDGE_API_KEY.")
@click.option("--api-key-file", type=click.Path(dir_okay=False), default=None,
              help="Read the key from the first line of this file (keeps it out of 'ps').")
@click.option("--max-upload-mb", default=DEFAULT_MAX_UPLOAD_MB, show_default=True, type=click.FloatRange(0.001),
              help="Largest request body (413 above it).")
@click.option("--max-streams", default=16, show_default=True, type=click.IntRange(1, 256))
@click.option("--model-name", default="hoi-edge", show_default=True, help="The model's name in /v2/models/{name}.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1), help="Triplets drawn and sent per frame.")
@click.option("--min-score", default=0.0, show_default=True, help="Hide triplets below this score in the live view.")
@friendly_errors
def serve_command(model: str | None, artifact: str | None, text_model: str | None, vocab: str | None,
                  clip_weights: str | None, detector_weights: str | None, device: str | None, sources: tuple[str, ...],
                  loop: bool, host: str, port: int, api_key: str | None, api_key_file: str | None,
                  max_upload_mb: float, max_streams: int, model_name: str, top: int, min_score: float) -> None:
    """Serve the model over HTTP: a live page (every stream annotated, its triplets, a vocabulary box), hoi-edge's
    /v1 API, the KServe v2 inference protocol, /healthz and Prometheus /metrics. Binds to 127.0.0.1."""
    from hoi_edge.serve.config import ServeConfig, read_key_file

    if api_key and api_key_file:
        raise click.UsageError("give --api-key or --api-key-file, not both")
    config = ServeConfig(model=model, artifact=artifact, text_model=text_model, vocab=vocab, clip_weights=clip_weights,
                         detector_weights=detector_weights, device=device, sources=list(sources), loop=loop, host=host,
                         port=port, api_key=read_key_file(api_key_file) if api_key_file else api_key,
                         max_upload_bytes=int(max_upload_mb * MIB), max_streams=max_streams, model_name=model_name,
                         top=top, min_score=min_score)
    config.check()                          # exposure without a key, bad sources: before the model loads
    import uvicorn

    from hoi_edge.serve.app import create_app

    app = create_app(config)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"hoi-edge: serving {app.state.engine.name} ({app.state.engine.backend}) on http://{shown}:{port}/ "
               f"- the live page; API: /v1, /v2 (KServe), /metrics; Ctrl-C stops")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    finally:
        app.state.close()
