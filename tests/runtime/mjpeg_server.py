"""The MJPEG-over-HTTP test camera now lives in :mod:`hoi_edge.testing` (the serving benchmark uses it too)."""

from hoi_edge.testing import BOUNDARY, MJPEGServer, free_port  # noqa: F401
