"""Foundations every layer may use: errors, atomic writes, file hashing and JSON reading, the
shared rules (IoU, cosine, the CLIP logit) and conventions. Imports nothing else of hoi_edge."""
