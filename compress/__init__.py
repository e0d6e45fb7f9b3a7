"""Compression: bake prompt text embeddings, calibrate and quantize (NNCF INT8), distill."""
