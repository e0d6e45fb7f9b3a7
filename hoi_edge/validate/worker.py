"""Run a backend in a fresh Python process, and the protocol between that worker and its parent.

By default every backend runs in a fresh process (``isolate=True``): its peak RSS is then its
own (see :mod:`hoi_edge.validate.memory`), thread settings cannot leak from one runtime into the
next, and a crash in a runtime is reported instead of killing the caller. The parent writes a
JSON request into a temporary folder and starts ``python -m hoi_edge.validate.worker REQUEST``;
the child measures with :func:`~hoi_edge.validate.measure.measure_here` and writes a JSON +
``.npz`` result (or the error) beside the request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from hoi_edge.core import errors as _errors
from hoi_edge.core.errors import HOIEdgeError
from hoi_edge.eval import Predictions
from hoi_edge.pipeline.detector import STAGES
from hoi_edge.validate.backends import BackendSpec
from hoi_edge.validate.errors import ValidationError
from hoi_edge.validate.measure import BackendRun, BackendSession, KeptInstances, RunSettings, measure_here
from hoi_edge.validate.memory import MemoryStats

T = TypeVar("T")

# NumPy's BLAS runs only the tiny matrices of the shared post-processing. A second thread pool
# beside the runtime's oversubscribes the cores: on 2 cores, post-processing took 13-37 ms
# instead of ~1.2 ms after ONNX Runtime / ExecuTorch / OpenVINO runs. Pinned to 1 for every backend.
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_backend(spec: BackendSpec, images: Sequence[Path], settings: RunSettings) -> BackendRun:
    """Measure ``spec`` on ``images``: in a fresh process when ``settings.isolate``, else here."""
    if not images:
        raise ValidationError("no images to run")
    if settings.isolate:
        return run_isolated(spec, images, settings)
    return measure_here(spec, images, settings, measure_memory=False)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])      # so a source checkout works uninstalled
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update({key: "1" for key in _BLAS_ENV})
    return env


def in_fresh_process(module: str, request: dict[str, Any], read: Callable[[Path, int], T]) -> T:
    """Run ``python -m module REQUEST`` in a fresh process on ``request`` (written as JSON into a temporary
    folder) and return ``read(request path, exit code)``, which reads what the child wrote beside the request.
    The one way every measurement (latency, throughput) leaves the parent's process."""
    with tempfile.TemporaryDirectory(prefix="hoi-edge-measure-") as tmp:
        path = Path(tmp) / "request.json"
        path.write_text(json.dumps(request))
        proc = subprocess.run([sys.executable, "-m", module, str(path)], env=_child_env(), stdin=subprocess.DEVNULL)
        return read(path, proc.returncode)


def run_isolated(spec: BackendSpec, images: Sequence[Path], settings: RunSettings) -> BackendRun:
    request = {"spec": spec.to_dict(), "images": [str(p) for p in images], "settings": asdict(settings)}
    return in_fresh_process("hoi_edge.validate.worker", request, lambda path, code: read_result(path, spec, code))


def result_paths(request: Path) -> tuple[Path, Path]:
    return request.with_suffix(".result.json"), request.with_suffix(".result.npz")


def write_result(request: Path, run: BackendRun) -> None:
    meta_path, npz_path = result_paths(request)
    p = run.predictions
    arrays = {"image_index": run.image_index, "wall_s": run.wall_s,
              **{f"stage_{k}": v for k, v in run.stage_s.items()}}
    if p is not None:
        arrays.update(det_image=p.image, det_hoi=p.hoi, det_score=p.score, det_h=p.boxes_h, det_o=p.boxes_o)
    if run.instances is not None:
        arrays.update(run.instances.to_arrays())
    if run.candidates is not None:
        arrays.update(run.candidates.to_arrays("cand_"))
    np.savez(npz_path, **arrays)
    meta_path.write_text(json.dumps({
        "ok": True, "backend": run.backend, "threads": run.threads, "load_s": run.load_s,
        "memory": run.memory.to_dict(), "vocabulary_fingerprint": run.vocabulary_fingerprint,
        "vocabulary": run.vocabulary, "has_predictions": p is not None,
        "has_instances": run.instances is not None, "execution": run.execution,
        "has_candidates": run.candidates is not None, "box_threshold": run.box_threshold,
    }))


def write_error(request: Path, exc: BaseException) -> None:
    known = isinstance(exc, HOIEdgeError)
    result_paths(request)[0].write_text(json.dumps({
        "ok": False, "error_type": type(exc).__name__ if known else None,
        "message": str(exc) if known else f"{type(exc).__name__}: {exc}",
    }))


def read_result(request: Path, spec: BackendSpec, returncode: int) -> BackendRun:
    meta_path, npz_path = result_paths(request)
    if not meta_path.is_file():
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        hint = " (out of memory?)" if returncode in (-9, 137) else ""
        raise ValidationError(f"{spec.label} ({spec.path}) {how}{hint} before reporting; see its output above")
    meta = json.loads(meta_path.read_text())
    if not meta["ok"]:
        cls = getattr(_errors, meta["error_type"] or "", None)
        if not (isinstance(cls, type) and issubclass(cls, HOIEdgeError)):
            cls = ValidationError
        raise cls(meta["message"] if meta["error_type"] else f"{spec.label} ({spec.path}) failed: {meta['message']}")
    with np.load(npz_path) as z:
        arrays = {k: z[k] for k in z.files}
    predictions = None
    if meta["has_predictions"]:
        predictions = Predictions.from_arrays(arrays["det_image"], arrays["det_hoi"], arrays["det_score"],
                                              arrays["det_h"], arrays["det_o"], source=spec.label)
    return BackendRun(
        spec=spec, backend=meta["backend"], threads=meta["threads"], load_s=meta["load_s"],
        image_index=arrays["image_index"], wall_s=arrays["wall_s"],
        stage_s={s: arrays[f"stage_{s}"] for s in STAGES}, predictions=predictions,
        memory=MemoryStats.from_dict(meta["memory"]), vocabulary_fingerprint=meta["vocabulary_fingerprint"],
        vocabulary=meta["vocabulary"],
        instances=KeptInstances.from_arrays(arrays) if meta.get("has_instances") else None,
        execution=meta.get("execution"),
        candidates=KeptInstances.from_arrays(arrays, "cand_") if meta.get("has_candidates") else None,
        box_threshold=meta.get("box_threshold"),
    )


def run_interleaved(specs: Sequence[BackendSpec], images: Sequence[Path], settings: RunSettings,
                    machine: dict | None = None) -> list[BackendRun | HOIEdgeError]:
    """Time several backends run by run: every backend loads and warms up in its own fresh process,
    then the parent asks each in turn for its next timed run (order rotated every round), so that a
    machine that gets busier or cooler during the benchmark affects every backend alike. Memory
    stays per process. A backend that fails is returned as its error; the others are still timed.
    ``machine`` receives :class:`~hoi_edge.validate.environment.CpuMeter`'s reading of the timed phase."""
    from tqdm import tqdm

    from hoi_edge.validate.environment import CpuMeter

    if not images:
        raise ValidationError("no images to run")
    runs = len(settings.timed_images(len(images)))
    quiet = RunSettings(**{**asdict(settings), "progress": False})
    with tempfile.TemporaryDirectory(prefix="hoi-edge-bench-") as tmp:
        workers = [_Served(spec, images, quiet, Path(tmp) / f"request-{k}.json") for k, spec in enumerate(specs)]
        alive = [w for w in workers if w.wait_ready()]
        meter = CpuMeter([w.proc.pid for w in workers])
        with tqdm(total=runs * len(alive), desc="interleaved timed runs", unit="run",
                  disable=not settings.progress, dynamic_ncols=True) as bar:
            for r in range(runs):
                if not alive:
                    break
                shift = r % len(alive)                  # rotate: no backend always runs right after another
                for w in alive[shift:] + alive[:shift]:
                    if w.ask(f"run {r}"):
                        bar.update()
                alive = [w for w in alive if w.ok]
        if machine is not None:
            machine.update(meter.stop())
        out: list[BackendRun | HOIEdgeError] = []
        for w in workers:
            try:
                out.append(w.finish())
            except HOIEdgeError as exc:
                out.append(exc)
        return out


class _Served:
    """The parent's handle on one ``--serve`` worker: commands on its stdin, replies on a private pipe
    (the runtimes may print to stdout)."""

    def __init__(self, spec: BackendSpec, images: Sequence[Path], settings: RunSettings, request: Path) -> None:
        self.spec, self.request, self.ok = spec, request, True
        request.write_text(json.dumps({"spec": spec.to_dict(), "images": [str(p) for p in images],
                                       "settings": asdict(settings)}))
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen([sys.executable, "-m", "hoi_edge.validate.worker", str(request), "--serve",
                                      str(write_fd)], env=_child_env(), stdin=subprocess.PIPE, pass_fds=(write_fd,),
                                     text=True)
        os.close(write_fd)
        self.replies = os.fdopen(read_fd, "r")

    def wait_ready(self) -> bool:
        self.ok = self.replies.readline().strip() == "ready"
        return self.ok

    def ask(self, command: str) -> bool:
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            self.ok = self.replies.readline().strip() == "ok"
        except (BrokenPipeError, OSError):
            self.ok = False
        return self.ok

    def finish(self) -> BackendRun:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write("finish\n")
                self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        code = self.proc.wait()
        self.replies.close()
        return read_result(self.request, self.spec, code)


def serve(request: Path, reply_fd: int) -> int:
    """The child's side of :func:`run_interleaved`: load and warm up, say 'ready', then time one run per
    'run R' line until 'finish', and write the result files as :func:`main` does."""
    replies = os.fdopen(reply_fd, "w", buffering=1)
    try:
        req = json.loads(request.read_text())
        settings = RunSettings(**req["settings"])
        with BackendSession(BackendSpec.from_dict(req["spec"]), [Path(p) for p in req["images"]], settings,
                            measure_memory=True) as session:
            session.warm_up()
            replies.write("ready\n")
            for line in sys.stdin:
                cmd = line.split()
                if not cmd or cmd[0] == "finish":
                    break
                session.time_run(int(cmd[1]))
                replies.write("ok\n")
            write_result(request, session.result())
        return 0
    except Exception as exc:  # every failure goes back to the parent, which decides how to report it
        if not isinstance(exc, HOIEdgeError):
            traceback.print_exc()
        write_error(request, exc)
        replies.write("error\n")
        return 1
    finally:
        replies.close()


def main(argv: list[str]) -> int:
    """The child's side: read the request, measure, write the result (or the error) beside it."""
    from hoi_edge.core.noise import configure

    configure()                       # the parent's --verbose choice, through the environment
    request = Path(argv[0])
    if len(argv) == 3 and argv[1] == "--serve":
        return serve(request, int(argv[2]))
    try:
        req = json.loads(request.read_text())
        settings = RunSettings(**req["settings"])
        run = measure_here(BackendSpec.from_dict(req["spec"]), [Path(p) for p in req["images"]], settings,
                           measure_memory=True)
        write_result(request, run)
        return 0
    except Exception as exc:  # every failure goes back to the parent, which decides how to report it
        if not isinstance(exc, HOIEdgeError):
            traceback.print_exc()
        write_error(request, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
