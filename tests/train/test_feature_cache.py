"""``--cache-features``: training from the cache equals training from the images, stale caches are refused,
and an interrupted build resumes without a corrupt shard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hoi_edge.core.errors import InputFileError
from hoi_edge.weights.checkpoint import load_model
from train.dataset import HICODataset
from train.feature_cache import _AFTER_CACHE, MANIFEST, build_cache, cached_dataset, preprocess_key
from train.forward import FROZEN_FIELDS, FrozenEncoder
from train.trainer import TrainConfig, Trainer

LABELS = Path(__file__).resolve().parents[2] / "samples" / "labels" / "photos_hoi.json"


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_model(tiny_checkpoint)


@pytest.fixture(scope="module")
def dataset(shared_data) -> HICODataset:
    return HICODataset(LABELS, shared_data / "photos", hflip=False)


def _cfg(out: Path, **kw) -> TrainConfig:
    return TrainConfig(epochs=1, lr=1e-3, batch_size=3, lr_drop=None, max_steps_per_epoch=1, out_dir=str(out),
                       text_grad_checkpointing=False, device="cpu", **kw)


def test_training_from_the_cache_equals_training_from_images(tiny_checkpoint, dataset, tmp_path):
    runs = {}
    for name, cache in (("images", None), ("cache", str(tmp_path / "cache"))):
        model = load_model(tiny_checkpoint)
        trainer = Trainer(model, dataset, _cfg(tmp_path / name, cache_features=cache))
        records = trainer.fit()
        trained = {k: v for k, v in model.state_dict().items() if k.startswith(("head.", "classifier."))}
        runs[name] = (records[0], trained)
    (rec_i, state_i), (rec_c, state_c) = runs["images"], runs["cache"]
    assert rec_c["n_pos"] == rec_i["n_pos"] > 0 and rec_c["n_entries"] == rec_i["n_entries"]
    for key in ("loss", "loss_pair", "loss_global"):
        assert rec_c[key] == pytest.approx(rec_i[key], rel=1e-5), key
    before = load_model(tiny_checkpoint).state_dict()
    assert not torch.equal(state_i["classifier.pair_logit_bias"], before["classifier.pair_logit_bias"])
    for key, value in state_i.items():
        torch.testing.assert_close(state_c[key], value, rtol=1e-5, atol=1e-6, msg=key)
    manifest = json.loads((tmp_path / "cache" / MANIFEST).read_text())
    assert manifest["shards"] == [0] and len(manifest["images"]) == len(dataset.all_annotations) - 1  # 1 has no pair


def test_cached_outputs_are_the_encoders_and_flips_are_switched_off(model, shared_data, tmp_path):
    flipping = HICODataset(LABELS, shared_data / "photos", hflip=True)
    told: list[str] = []
    data = cached_dataset(flipping, FrozenEncoder(model), tmp_path / "c", notify=told.append)
    assert len(told) == 1 and "flips are off" in told[0]
    item = data[2]
    image = HICODataset(LABELS, shared_data / "photos")[2].image
    assert item.image_hw == image.shape[:2]
    ref = FrozenEncoder(model)([image])[0]
    for f in FROZEN_FIELDS:
        # batch of 8 (cache build) vs batch of 1: float noise only
        np.testing.assert_allclose(getattr(item.frozen, f), getattr(ref, f), rtol=1e-3, atol=1e-4, err_msg=f)


def test_stale_cache_is_refused_in_one_line(tiny_checkpoint, dataset, tmp_path):
    model = load_model(tiny_checkpoint)
    build_cache(dataset, FrozenEncoder(model), tmp_path / "c", shard_size=4)
    with torch.no_grad():
        model.detector.class_embed.bias[0] += 1.0                       # other detector weights
    with pytest.raises(InputFileError, match=r"^feature cache .* is stale: it was built with other detector/CLIP "
                                             r"weights .*; delete it or give another --cache-features folder$"):
        build_cache(dataset, FrozenEncoder(model), tmp_path / "c")
    fresh = FrozenEncoder(load_model(tiny_checkpoint))
    manifest_path = tmp_path / "c" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["preprocess"]["clip_size"] += 32                            # built for another input size
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(InputFileError, match=r"stale: it was built with other pre-processing \(clip_size differ\)"):
        build_cache(dataset, fresh, tmp_path / "c")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("x")
    with pytest.raises(InputFileError, match="not empty and has no manifest.json"):
        build_cache(dataset, fresh, tmp_path / "d")


# every pipeline fact that decides what the cached networks see, with another value for it
NETWORK_INPUTS = {"detector_size": 320, "clip_size": 336, "clip_mean": (0.5, 0.5, 0.5), "clip_std": (0.5, 0.5, 0.5),
                  "detector_mean": (0.0, 0.0, 0.0), "detector_std": (1.0, 1.0, 1.0), "detector_family": "nanodet",
                  "detector_resize": "stretch", "detector_channels": "bgr"}
ALSO_KEYED = {"nms_candidates": 100}        # selection, after the networks, but keyed (a stale key is only slower)


def test_cache_key_changes_with_each_pre_processing_field(model):
    """Field by field: a cache built for other network inputs (BGR instead of RGB, another size or
    normalisation) is stale; the facts applied after the networks leave the key alone."""
    from dataclasses import fields, replace

    from hoi_edge.runtime.torch_runner import pipeline_spec

    spec = pipeline_spec(model)
    names = {f.name for f in fields(spec)}
    assert names == set(NETWORK_INPUTS) | set(ALSO_KEYED) | set(_AFTER_CACHE), "classify the new spec field here"
    base = preprocess_key(spec)
    for name, other in {**NETWORK_INPUTS, **ALSO_KEYED}.items():
        assert getattr(spec, name) != other, name
        changed = preprocess_key(replace(spec, **{name: other}))
        assert changed != base and {k for k in base if changed[k] != base[k]} == {name}, name
    for name in _AFTER_CACHE:
        value = getattr(spec, name)
        other = 0.123 if isinstance(value, float) else (None if value is not None else 0.5)
        assert preprocess_key(replace(spec, **{name: other})) == base, name


class _Failing(FrozenEncoder):
    """Counts calls; raises on call ``fail_at`` (an interrupted build)."""

    def __init__(self, model, fail_at: int | None = None) -> None:
        super().__init__(model)
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, images):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return super().__call__(images)


def test_interrupted_build_leaves_whole_shards_and_resumes(model, dataset, tmp_path):
    root = tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):                              # 6 images, shards of 2: dies in shard 1
        build_cache(dataset, _Failing(model, fail_at=2), root, batch_size=2, shard_size=2)
    assert json.loads((root / MANIFEST).read_text())["shards"] == [0]
    assert sorted(p.name for p in root.iterdir()) == [MANIFEST, "shard-00000"]
    # what a kill -9 could leave: a temp folder, and a shard renamed but not yet listed (here: a broken one)
    (root / ".shard-00001.partial-x").mkdir()
    (root / ".shard-00001.partial-x" / "det_scores.npy").write_bytes(b"garbage")
    (root / "shard-00002").mkdir()
    resumed = _Failing(model)
    cache = build_cache(dataset, resumed, root, batch_size=2)
    assert resumed.calls == 2                                           # shards 1 and 2 only
    assert cache.completed == {0, 1, 2}
    # a whole shard that a killed run renamed but did not list yet is adopted, not recomputed
    manifest = json.loads((root / MANIFEST).read_text())
    (root / MANIFEST).write_text(json.dumps({**manifest, "shards": [0]}))
    again = _Failing(model)
    assert build_cache(dataset, again, root, batch_size=2).completed == {0, 1, 2} and again.calls == 0
    assert not any(p.name.startswith(".") for p in root.iterdir())
    full = build_cache(dataset, FrozenEncoder(model), tmp_path / "full", batch_size=2, shard_size=2)
    for im in full.images:
        got, hw = cache.read(im.filename)
        want, want_hw = full.read(im.filename)
        assert hw == want_hw
        for f in FROZEN_FIELDS:
            np.testing.assert_array_equal(getattr(got, f), getattr(want, f), err_msg=f)
