"""Model weights: checkpoints, the default model, and fetching pretrained weights into the cache."""
