"""Export and bake survive SIGKILL: a process killed at any point leaves the previous artifact whole, or the new
one whole, at the artifact's path (never a mix, never a half-written folder), and the next write sweeps away
what the killed one left beside it. Kill points are exact (tests/killer.py): the n-th call of the exporter, or
of the call that publishes the new folder (the atomic exchange, or a rename)."""

from __future__ import annotations

import json
import shutil

import pytest
from killer import run_and_kill

from hoi_edge.runtime.manifest import Manifest

EXPORT_CHILD = """
import targets.onnx_target
from killer import kill_point
from targets.export import ExportConfig, export_artifact

kill_point([(targets.onnx_target, "export_unit")], 2, "before", {marker!r})
export_artifact(ExportConfig(checkpoint={ckpt!r}, target="onnx", out={out!r}, overwrite=True), progress=False)
"""

BAKE_CHILD = """
import os
import hoi_edge.core.atomic
from compress.bake import rebake_artifact
from killer import kill_point

# every way a file or folder is published: the atomic exchange, and plain renames
publish = [(os, "replace"), (os, "rename")] + [(hoi_edge.core.atomic, name) for name in ("exchange",)
                                               if hasattr(hoi_edge.core.atomic, name)]
kill_point(publish, {nth}, {when!r}, {marker!r})
rebake_artifact({folder!r}, {ckpt!r}, {vocab!r})
"""

KITCHEN = {"name": "kitchen", "verbs": ["hold", "drink_with"], "objects": ["cup", "person"],
           "hois": [["hold", "cup"], ["drink_with", "cup"], ["hold", "person"]]}


@pytest.fixture
def onnx_copy(artifact_factory, tmp_path):
    folder = tmp_path / "art"
    shutil.copytree(artifact_factory("onnx", "fp32"), folder)
    return folder


def _stale(folder):
    return [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]


def test_export_killed_midway_leaves_the_previous_artifact(onnx_copy, tiny_checkpoint, tmp_path):
    before = (onnx_copy / "manifest.json").read_bytes()
    marker = tmp_path / "marker"
    result = run_and_kill(EXPORT_CHILD.format(marker=str(marker), ckpt=str(tiny_checkpoint), out=str(onnx_copy)),
                          ready=marker.exists)
    assert result.killed, result.output
    assert (onnx_copy / "manifest.json").read_bytes() == before
    Manifest.read(onnx_copy).verify_files(onnx_copy)                     # whole: every file matches
    assert len(_stale(onnx_copy)) == 1                                   # the killed export's partial folder ...
    from hoi_edge.core.atomic import atomic_directory

    with atomic_directory(tmp_path / "other"):                           # ... is swept by the next write here
        pass
    assert _stale(onnx_copy) == []


@pytest.mark.parametrize("when, expect", [("before", "hico-det"), ("after", "kitchen")])
def test_bake_killed_at_its_publishing_step_leaves_one_whole_artifact(onnx_copy, tiny_checkpoint, tmp_path, when,
                                                                      expect):
    """Before the first publishing call: the old artifact. Right after it: the new one, whole (the old bake
    renamed its files one by one, so a kill after the first left a text bank its manifest did not list)."""
    from hoi_edge import HOIDetector

    vocab, marker = tmp_path / "kitchen.json", tmp_path / "marker"
    vocab.write_text(json.dumps(KITCHEN))
    result = run_and_kill(BAKE_CHILD.format(nth=1, when=when, marker=str(marker), folder=str(onnx_copy),
                                            ckpt=str(tiny_checkpoint), vocab=str(vocab)), ready=marker.exists)
    assert result.killed, result.output
    Manifest.read(onnx_copy).verify_files(onnx_copy)
    assert HOIDetector.from_artifact(onnx_copy).vocab.name == expect
