"""Child-process entry point of an isolated backend run: ``python -m hoi_edge.validate._worker REQUEST``.

Reads the request JSON, measures the backend with :func:`measure_here`, and writes the result
files beside the request; errors are written there too so the parent can re-raise them."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    from hoi_edge.validate.backends import BackendSpec
    from hoi_edge.validate.measure import RunSettings, measure_here, write_error, write_result

    request = Path(argv[0])
    try:
        req = json.loads(request.read_text())
        settings = RunSettings(**req["settings"])
        run = measure_here(BackendSpec.from_dict(req["spec"]), [Path(p) for p in req["images"]], settings,
                           measure_memory=True)
        write_result(request, run)
        return 0
    except Exception as exc:  # every failure goes back to the parent, which decides how to report it
        from hoi_edge.errors import HOIEdgeError

        if not isinstance(exc, HOIEdgeError):
            traceback.print_exc()
        write_error(request, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
