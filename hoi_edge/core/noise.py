"""Third-party console noise, hidden unless ``hoi-edge --verbose``: it buried the progress bars.

What is hidden, and how (each at its source, so nothing of hoi-edge's own output is touched):

- NNCF's INFO blocks (~50 lines per INT8 export): records below WARNING on the ``nncf`` logger;
- PyTorch's ``_pytree`` Enum-registration warning (logged when ExecuTorch is imported) and
  ``torch.jit`` deprecation warnings: a logging filter and warning filters;
- ONNX Runtime's graph-optimizer warnings ("Skipping constant folding ...", C++ logger): its default
  severity is raised to ERROR when ``onnxruntime`` is imported;
- ExecuTorch's cpuinfo lines ("Reading file /sys/devices/soc0/image_version", "Failed to open
  midr file"), written by native code straight to file descriptor 2: :func:`quiet_native_stderr`
  drops them around the calls that trigger them.

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
import warnings
from collections.abc import Iterator

ENV = "HOI_EDGE_VERBOSE"
NATIVE_NOISE = re.compile(rb"Reading file /sys/devices/soc0/image_version|Failed to open midr file|"
                          rb"cpuinfo_utils\.cpp|Skipping constant folding")
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


def configure(verbose: bool | None = None) -> None:
    """Hide the noise above (``verbose=False``) or show everything; ``None`` reads ``$HOI_EDGE_VERBOSE``."""
    global _configured
    if verbose is None:
        verbose = is_verbose()
    os.environ[ENV] = "1" if verbose else "0"
    if verbose or _configured:
        return
    _configured = True
    logging.getLogger("nncf").addFilter(_BelowWarning())
    logging.getLogger("torch.utils._pytree").addFilter(_DropMessages("Enum subclass"))
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+.* is deprecated", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r".*`torch\.jit\.\w+` is (deprecated|not supported)")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"nncf\.")      # NNCF's own API deprecations
    if "onnxruntime" in sys.modules:
        _quiet_onnxruntime(sys.modules["onnxruntime"])
    else:
        sys.meta_path.insert(0, _AfterImport({"onnxruntime": _quiet_onnxruntime}))


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Drop :data:`NATIVE_NOISE` lines that native code writes to fd 2 inside the block (everything else
    is passed on when the block ends). A no-op with ``--verbose`` or when fd 2 cannot be redirected."""
    if is_verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except ValueError:
                pass
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True) if not NATIVE_NOISE.search(line)]
            if kept:
                os.write(2, b"".join(kept))
