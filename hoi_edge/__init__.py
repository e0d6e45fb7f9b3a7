"""hoi-edge: zero-shot HOI detection (CLIP4HOI) from training to edge devices."""

__version__ = "0.1.0"
