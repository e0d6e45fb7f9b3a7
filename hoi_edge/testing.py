"""Small models for tests and benchmarks (not for inference): the tiny random-init CLIP4HOI whose
detector is biased to fire on real photos; and :class:`MJPEGServer`, simulated network cameras on 127.0.0.1.

``tests/conftest.py``, ``benchmarks/bench_runtimes.py`` and ``benchmarks/bench_distill.py`` build
their models here, so the suite and the benchmarks measure the same network. The bias is
calibrated on the photos in ``shared/data/photos`` beside the repository (``../shared`` from the
repo root, or ``$HOI_EDGE_SHARED``); without them :func:`make_tiny_model` raises
:class:`SharedDataMissing`, which the test fixtures turn into a skip.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hoi_edge.core.errors import InputFileError
from hoi_edge.core.units import EXPORT_UNITS

if TYPE_CHECKING:
    import torch

    from hoi_edge.model.clip4hoi import CLIP4HOI

REPO = Path(__file__).resolve().parents[1]
SHARED_ENV = "HOI_EDGE_SHARED"
# the classes the tiny model's detector fires on; person gets a +1 logit head start
FIRING_CLASSES = ("person", "cup", "bicycle", "horse")


class SharedDataMissing(InputFileError):
    """The shared test data (``../shared/data``) is not where the tiny model expects it."""


def shared_data_dir() -> Path:
    """``$HOI_EDGE_SHARED`` (the ``shared`` folder or its ``data`` folder) or ``../shared/data`` beside the repo."""
    env = os.environ.get(SHARED_ENV)
    root = Path(env) if env else REPO.parent / "shared"
    return root / "data" if (root / "data").is_dir() else root


def require_shared_data() -> Path:
    """:func:`shared_data_dir`, or :class:`SharedDataMissing` naming where it looked and how to point elsewhere."""
    data = shared_data_dir()
    if not (data / "photos").is_dir():
        raise SharedDataMissing(f"shared test data not found: {data / 'photos'} does not exist (the tiny test "
                                f"model is calibrated on those photos); put the shared folder beside the repo "
                                f"or set {SHARED_ENV}")
    return data


def make_tiny_model(seed: int = 0, fastvit_tower: bool = False) -> CLIP4HOI:
    """Random-init tiny CLIP4HOI (HICO vocabulary) whose detector is biased to fire on person, cup, bicycle, horse.

    With uniform random logits no class would pass the person test; the bias makes every photo
    yield humans and objects, so pairs and scores exist. Deterministic for a given ``seed``.
    ``fastvit_tower``: the CLIP image tower is a tiny timm FastViT MCi trunk (``TINY_FASTVIT_TOWER``, the kind of the
    MobileCLIP edge candidates: projected per location, re-parameterised on export) instead of the tiny ViT.
    """
    photos = sorted((require_shared_data() / "photos").glob("*"))      # before the heavy imports: fail fast
    import torch

    from hoi_edge.data.vocabulary import load_vocabulary
    from hoi_edge.model.coco import COCO91_NAMES
    from hoi_edge.model.config import TINY_FASTVIT_TOWER, ImageTowerConfig, clip4hoi_tiny
    from hoi_edge.weights.checkpoint import build_model

    torch.manual_seed(seed)
    cfg = clip4hoi_tiny()
    if fastvit_tower:
        cfg.clip.image_tower = ImageTowerConfig(architecture=dict(TINY_FASTVIT_TOWER), mean=(0.0, 0.0, 0.0),
                                                std=(1.0, 1.0, 1.0))
    model = build_model(cfg, load_vocabulary("hico"))
    with torch.no_grad():
        # a random DETR gives near-identical queries: sharpen the query attention so they differ
        det = model.detector
        det.query_embed.weight.mul_(10.0)
        q_and_k = 2 * det.cfg.hidden_dim
        for layer in det.transformer.decoder.layers:
            layer.self_attn.in_proj_weight[:q_and_k].mul_(4.0)
            layer.multihead_attn.in_proj_weight[:q_and_k].mul_(4.0)
        det.bbox_embed.layers[-1].weight.mul_(8.0)
        det.class_embed.weight.mul_(4.0)
        det.class_embed.bias.fill_(-10.0)   # only the classes below (and no-object) compete
        det.class_embed.bias[-1] = -1.0
        # centre the class logits on the mean query feature, so each wins for some queries
        feats = torch.cat([det(_letterboxed(p, det.cfg.image_size))[2][0] for p in photos])
        mean_feat = feats.mean(0)
        for name in FIRING_CLASSES:
            i = COCO91_NAMES.index(name)
            det.class_embed.bias[i] = -det.class_embed.weight[i] @ mean_feat + (1.0 if name == "person" else 0.0)
        if fastvit_tower:    # trained-looking batch norms, so folding them (re-parameterisation) changes the weights
            for bn in (m for m in model.clip.visual.modules() if isinstance(m, torch.nn.BatchNorm2d)):
                bn.running_mean.normal_(0.0, 0.1)
                bn.running_var.uniform_(0.5, 1.5)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.normal_(0.0, 0.1)
    return model.eval()


def _letterboxed(path: Path, size: int) -> torch.Tensor:
    import torch

    from hoi_edge.pipeline.preprocess import IMAGENET_MEAN, IMAGENET_STD, Letterbox, load_image

    image: np.ndarray = load_image(path)
    return torch.from_numpy(Letterbox(size, IMAGENET_MEAN, IMAGENET_STD)(image))


class PlantedRunner:
    """A :class:`hoi_edge.pipeline.detector.StageRunner` whose networks return chosen outputs, for tests that know
    the answer: what the pipeline around the networks (input transform, instance selection, box mapping,
    scoring, ranking) must make of them can be worked out by hand.

    The detector returns ``logits`` (Q, C+1) and ``boxes`` (Q, 4; cx, cy, w, h in 0..1 of its square
    input) for every image; query ``q``'s feature is the one-hot vector ``e_q``, so the head can tell
    which query each instance came from. The HOI head returns ``pair_embeddings[(q_i, q_j)]`` for the
    pair (instance i, instance j) (zeros for pairs not listed), wherever selection put the two
    instances. CLIP returns ``global_embedding``. Every input a network received is kept in
    ``received[unit]`` (a list of argument tuples), so tests can check what the pipeline fed it.
    """

    name = "planted"

    def __init__(self, logits: np.ndarray, boxes: np.ndarray, global_embedding: np.ndarray,
                 pair_embeddings: dict[tuple[int, int], np.ndarray], num_patches: int = 4) -> None:
        self.logits = np.asarray(logits, np.float32)
        self.boxes = np.asarray(boxes, np.float32)
        if self.logits.ndim != 2 or self.boxes.shape != (self.logits.shape[0], 4):
            raise ValueError(f"logits (Q, C+1) and boxes (Q, 4) expected, got {self.logits.shape}, {self.boxes.shape}")
        self.global_embedding = np.asarray(global_embedding, np.float32).reshape(-1)
        self.embed_dim = self.global_embedding.size
        self.pair_embeddings = {k: np.asarray(v, np.float32).reshape(self.embed_dim) for k, v in pair_embeddings.items()}
        self.num_patches = num_patches
        self.received: dict[str, list[tuple[np.ndarray, ...]]] = {unit: [] for unit in EXPORT_UNITS}

    def detector(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.received["detector"].append((images.copy(),))
        q = self.logits.shape[0]
        return self.logits[None].copy(), self.boxes[None].copy(), np.eye(q, dtype=np.float32)[None]

    def clip_image(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.received["clip_image"].append((images.copy(),))
        patches = np.zeros((1, self.num_patches, self.embed_dim), np.float32)
        return self.global_embedding[None].copy(), patches

    def hoi_head(self, features: np.ndarray, boxes: np.ndarray, valid: np.ndarray, human: np.ndarray,
                 patches: np.ndarray) -> np.ndarray:
        self.received["hoi_head"].append(tuple(a.copy() for a in (features, boxes, valid, human, patches)))
        k = features.shape[1]
        query = features[0].argmax(-1)
        out = np.zeros((1, k * k, self.embed_dim), np.float32)
        for i in range(k):
            for j in range(k):
                if valid[0, i] and valid[0, j]:
                    emb = self.pair_embeddings.get((int(query[i]), int(query[j])))
                    if emb is not None:
                        out[0, i * k + j] = emb
        return out


BOUNDARY = "hoiedgeframe"


class MJPEGServer:
    """A network camera on 127.0.0.1 for tests and benchmarks: JPEG frames as ``multipart/x-mixed-replace``
    (what IP cameras send), a bounded number per connection, at ``fps``; a connection cut short after
    ``frames_per_connection`` frames imitates a stream that drops. ``with MJPEGServer(jpegs) as url: ...``;
    it refuses connections (503) after ``max_connections`` and stops when the ``with`` block ends."""

    def __init__(self, jpegs: Sequence[bytes], frames_per_connection: int = 10, max_connections: int = 5,
                 fps: float = 50.0) -> None:
        self.jpegs, self.frames_per_connection, self.fps = list(jpegs), frames_per_connection, fps
        self.max_connections = max_connections
        self.connections = 0
        self.frames_sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:   # quiet
                pass

            def do_GET(self) -> None:
                server.connections += 1
                if server.connections > server.max_connections:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                try:
                    for i in range(server.frames_per_connection):
                        jpg = server.jpegs[(server.frames_sent) % len(server.jpegs)]
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(jpg)}\r\n\r\n".encode() + jpg + b"\r\n")
                        self.wfile.flush()
                        server.frames_sent += 1
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True       # the stream "drops" after frames_per_connection frames

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/stream.mjpg"

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_simulated_cameras(streams, jpegs: Sequence[bytes], cameras: int = 4, frames: int = 40, fps: float = 20.0,
                          timeout: float = 120.0, remove: bool = True) -> tuple[list[dict], list[int], float]:
    """``cameras`` simulated network cameras (:class:`MJPEGServer`, 127.0.0.1) sending ``frames`` frames each at
    ``fps``, one stream each (ending after ``frames``) on a server's
    :class:`hoi_edge.serve.streams.StreamManager`. Waits until every stream has ended (at most ``timeout``
    s), removes them (unless not ``remove``), and returns (their last snapshots, the frames each camera sent,
    the seconds it took). What the serving load test and ``benchmarks/bench_serve.py`` both run."""
    servers = [MJPEGServer(jpegs[i % len(jpegs):] + jpegs[:i % len(jpegs)], frames_per_connection=frames,
                           max_connections=1, fps=fps) for i in range(cameras)]
    urls = [s.__enter__() for s in servers]
    start = time.monotonic()
    try:
        workers = [streams.add(url, max_frames=frames) for url in urls]
        deadline = start + timeout
        while any(w.alive for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        snapshots = [w.snapshot() for w in workers]
        for w in workers if remove else ():
            streams.remove(w.id)
    finally:
        for s in servers:
            s.__exit__(None, None, None)
    return snapshots, [s.frames_sent for s in servers], elapsed
