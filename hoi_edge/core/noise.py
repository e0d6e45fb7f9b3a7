"""Third-party console noise, hidden unless ``hoi-edge --verbose``: it buried the progress bars.

What is hidden, and how (each at its source, so nothing of hoi-edge's own output is touched):

- NNCF's INFO blocks (~50 lines per INT8 export): records below WARNING on the ``nncf`` logger;
- PyTorch's ``_pytree`` Enum-registration warning (logged when ExecuTorch is imported) and
  ``torch.jit`` deprecation warnings: a logging filter and warning filters;
- ONNX Runtime's graph-optimizer warnings ("Skipping constant folding ...", C++ logger): its default
  severity is raised to ERROR when ``onnxruntime`` is imported;
- ExecuTorch's cpuinfo lines ("Reading file /sys/devices/soc0/image_version", "Failed to open
  midr file"), written by native code straight to file descriptor 2: :func:`quiet_native_stderr`
  drops them around the calls that trigger them;
- NNCF's progress bars (rich, written to stdout, one per algorithm and network, named after the
  algorithm only): hidden, since hoi-edge's own bar names the network being exported; with
  ``--verbose`` they go to stderr, so stdout stays the command's result;
- PyTorch's "No CUDA runtime is found" (``torch.utils.cpp_extension``, on every export of a machine
  with a CUDA toolkit and no GPU);
- the tracer's warnings about shape-dependent Python branches in hoi-edge's own modules: exported
  graphs are traced at one input size on purpose, so those branches are constants by design;
- OpenCV's and FFmpeg's log lines (a camera that does not open, every reconnect attempt of a
  stream): hoi-edge reports the failure in its own words; ``--verbose`` shows FFmpeg's reason.

Worker processes (``validate`` / ``benchmark``) inherit the choice through ``$HOI_EDGE_VERBOSE``.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator

ENV = "HOI_EDGE_VERBOSE"
NATIVE_NOISE = re.compile(rb"Reading file /sys/devices/soc0/image_version|Failed to open midr file|"
                          rb"cpuinfo_utils\.cpp|Skipping constant folding|"
                          # libpng / libjpeg inside OpenCV's decoders, on a corrupt image (hoi-edge names the file)
                          rb"^libpng (error|warning)|^Corrupt JPEG data|^Premature end of JPEG file|"
                          rb"^Invalid SOS parameters|^Unsupported marker type|^Bogus marker length")
_configured = False


def is_verbose() -> bool:
    return os.environ.get(ENV) == "1"


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


class _DropMessages(logging.Filter):
    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(str(record.msg))


def _quiet_onnxruntime(module) -> None:
    module.set_default_logger_severity(3)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a callback on a module right after it is imported (without importing it before it is needed)."""

    def __init__(self, callbacks: dict) -> None:
        self.callbacks = callbacks

    def find_spec(self, name, path, target=None):
        if name not in self.callbacks:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader, callback = spec.loader, self.callbacks.pop(name)
        original = loader.exec_module

        def exec_module(module):
            original(module)
            try:
                callback(module)
            except Exception:  # a quieter console is never worth a failure
                pass

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _nncf_progress(module) -> None:
    """NNCF's ``track`` bars: hidden, or (``--verbose``) on stderr instead of stdout."""
    original = module.track.__init__
    if getattr(original, "_hoi_edge", False):
        return

    def __init__(self, *args, **kwargs):
        if is_verbose():
            if kwargs.get("console") is None:
                from rich.console import Console

                kwargs["console"] = Console(stderr=True)
        else:
            kwargs["disable"] = True
        original(self, *args, **kwargs)

    __init__._hoi_edge = True  # type: ignore[attr-defined]
    module.track.__init__ = __init__


def _quiet_opencv(module) -> None:
    module.utils.logging.setLogLevel(module.utils.logging.LOG_LEVEL_ERROR)


#: The tracer's warnings about Python control flow on traced shapes (torch.jit.TracerWarning).
TRACER_WARNINGS = (r"(Converting a tensor to a Python|Iterating over a tensor|torch\.tensor results are registered "
                   r"as constants|Output nr \d+\. of the traced function does not match)")


_hooked: set[str] = set()


def _after_import(name: str, callback) -> None:
    """Run ``callback(module)`` now if ``name`` is imported, else right after its import (once)."""
    if name in _hooked:
        return
    _hooked.add(name)
    if name in sys.modules:
        try:
            callback(sys.modules[name])
        except Exception:  # a quieter console is never worth a failure
            pass
    else:
        sys.meta_path.insert(0, _AfterImport({name: callback}))


def configure(verbose: bool | None = None) -> None:
    """Hide the noise above (``verbose=False``) or show everything; ``None`` reads ``$HOI_EDGE_VERBOSE``."""
    global _configured
    if verbose is None:
        verbose = is_verbose()
    os.environ[ENV] = "1" if verbose else "0"
    _after_import("nncf.common.logging.track_progress", _nncf_progress)      # both modes: never on stdout
    if verbose or _configured:
        return
    _configured = True
    logging.getLogger("nncf").addFilter(_BelowWarning())
    logging.getLogger("torch.utils._pytree").addFilter(_DropMessages("Enum subclass"))
    logging.getLogger("torch.utils.cpp_extension").addFilter(_DropMessages("No CUDA runtime is found"))
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+.* is deprecated", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r".*`torch\.jit\.\w+` is (deprecated|not supported)")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"nncf\.")      # NNCF's own API deprecations
    warnings.filterwarnings("ignore", message=TRACER_WARNINGS, module=r"hoi_edge\.")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")          # read when cv2 loads (worker processes too)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")       # AV_LOG_QUIET; read at FFmpeg's first use
    _after_import("cv2", _quiet_opencv)
    _after_import("onnxruntime", _quiet_onnxruntime)


_redirect_lock = threading.Lock()
_redirect = {"depth": 0, "saved": -1, "capture": None}


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Drop :data:`NATIVE_NOISE` lines that native code writes to fd 2 inside the block (everything else
    is passed on when the block ends). A no-op with ``--verbose`` or when fd 2 cannot be redirected.
    Re-entrant and thread-safe: fd 2 belongs to the whole process, so the first block to enter redirects it
    and the last to leave restores it (two threads decoding images at once share one capture)."""
    if is_verbose():
        yield
        return
    with _redirect_lock:
        if _redirect["depth"] == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError):
                saved = -1
            if saved >= 0:
                capture = tempfile.TemporaryFile()
                os.dup2(capture.fileno(), 2)
                _redirect.update(saved=saved, capture=capture)
        _redirect["depth"] += 1
    try:
        yield
    finally:
        with _redirect_lock:
            _redirect["depth"] -= 1
            if _redirect["depth"] == 0 and _redirect["capture"] is not None:
                _restore_stderr()


def _restore_stderr() -> None:
    capture, saved = _redirect["capture"], _redirect["saved"]
    _redirect.update(saved=-1, capture=None)
    try:
        sys.stderr.flush()
    except ValueError:
        pass
    os.dup2(saved, 2)
    os.close(saved)
    capture.seek(0)
    kept = [line for line in capture.read().splitlines(keepends=True) if not NATIVE_NOISE.search(line)]
    capture.close()
    if kept:
        os.write(2, b"".join(kept))
