"""The NumPy pipeline every backend shares: pre-processing, instance selection, scoring, the
:class:`~hoi_edge.pipeline.detector.detector.HOIPipeline` over any runner, drawing, streams and ``detect``."""
