"""Backends that run the three export units: PyTorch (reference) and the exported artifacts."""
