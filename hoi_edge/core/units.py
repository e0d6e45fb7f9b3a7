"""The three networks every artifact holds and every backend runs, in pipeline order.

One list for the model (``CLIP4HOI.export_unit``), the exporter, the artifact loader and calibration;
it imports nothing, so the NumPy runtime reads it without importing torch.
"""

EXPORT_UNITS = ("detector", "clip_image", "hoi_head")
