"""The click options several commands share, each declared once with one help text.

Every command that takes a model, an artifact, a device, a vocabulary, local weights or a zero-shot
split takes it through these decorators, so the spelling, default and help are the same everywhere
(``detect``, ``export``, ``bake``, ``verify``, ``validate``, ``benchmark``, ``train``, and any command
added later). Old spellings stay accepted with a deprecation warning (:func:`hoi_edge.clickutil.deprecated_alias`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import click

from hoi_edge.clickutil import deprecated_alias
from hoi_edge.targets_registry import device_help

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_MODEL = "default"

MODEL_HELP = ("The model: a hoi-edge checkpoint (.pt), or 'default' for the default model, the same one in every "
              "command (docs/weights.md).  [default: default]")
ARTIFACT_HELP = "An exported artifact folder (OpenVINO, ONNX Runtime or ExecuTorch; made by 'hoi-edge export')."
#: The artifact part comes from each target's entry (:func:`hoi_edge.targets_registry.device_help`).
DEVICE_HELP = device_help() + " A PyTorch checkpoint: cpu, cuda or cuda:N."
VOCAB_HELP = ("Vocabulary: 'hico' (built in) or a JSON file of verbs, objects and (verb, object) classes; "
              "re-targets a checkpoint's classes (docs/weights.md).")
CLIP_WEIGHTS_HELP = ("Local open_clip ViT-B-16 weights (a file) for the default model or a --preset, for offline "
                     "machines.")
DETECTOR_WEIGHTS_HELP = ("Local detector weights for the default model or a --preset, for offline machines: DETR-R50 "
                         "COCO (.pth), or NanoDet (official .ckpt/.pth, or a TF.js model.json); the file's kind picks "
                         "the detector family.")
SPLIT_HELP = ("Zero-shot split: rf-uc, nf-uc, uo or uv (any case, - or _). Its unseen classes get no training loss, "
              "and eval / validate report Unseen and Seen mAP.")
SPLITS_HELP = ("splits.json for --split  [default: splits.json beside the annotations, else the vocabulary's own "
               "splits]")


def model_option(fn: F) -> F:
    """``--model`` (parameter ``model``; None when not given, which every command reads as 'default')."""
    return click.option("--model", "model", default=None, help=MODEL_HELP)(fn)


def artifact_option(required: bool = False, multiple: bool = False,
                    legacy_positional: bool = False) -> Callable[[F], F]:
    """``--artifact`` (parameter ``artifact``; a tuple with ``multiple``: repeat the option for several).

    ``legacy_positional``: artifact folders given as plain arguments (the old spelling of ``verify``,
    ``validate`` and ``benchmark``) still count, with a deprecation warning; with ``multiple`` the old
    ``--artifacts`` does too."""

    def decorate(fn: F) -> F:
        help_text = ARTIFACT_HELP + (" Repeat it for several." if multiple else "")
        if required:          # innermost: checked after the legacy spellings below have been folded in
            fn = _require_artifact(fn)
        if legacy_positional:
            fn = _positional_artifacts(fn, multiple)
        if multiple:
            fn = deprecated_alias("--artifacts", "--artifact", "artifact", multiple=True,
                                  type=click.Path(file_okay=False))(fn)
        return click.option("--artifact", "artifact", type=click.Path(file_okay=False), multiple=multiple,
                            default=None, required=False, help=help_text)(fn)

    return decorate


def _positional_artifacts(fn: F, multiple: bool) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        legacy = kwargs.pop("legacy_artifacts", ())
        if legacy:
            click.echo("warning: artifact folders as plain arguments are deprecated, use --artifact DIR", err=True)
            if multiple:
                kwargs["artifact"] = tuple(kwargs.get("artifact") or ()) + tuple(legacy)
            else:
                if kwargs.get("artifact") is not None or len(legacy) > 1:
                    raise click.UsageError("give one artifact folder, with --artifact DIR")
                kwargs["artifact"] = legacy[0]
        return fn(*args, **kwargs)

    return click.argument("legacy_artifacts", nargs=-1, type=click.Path(file_okay=False),
                          metavar="")(wrapper)  # type: ignore[return-value]


def _require_artifact(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("artifact") in (None, ()):
            raise click.UsageError("Missing option '--artifact' (an exported artifact folder).")
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def device_option(fn: F) -> F:
    """``--device`` (parameter ``device``): an artifact's devices or a PyTorch device (:data:`DEVICE_HELP`)."""
    return click.option("--device", "device", default=None, help=DEVICE_HELP)(fn)


def vocab_option(required: bool = False) -> Callable[[F], F]:
    """``--vocab`` (parameter ``vocab``)."""
    return click.option("--vocab", "vocab", default=None, required=required, help=VOCAB_HELP)


def weights_options(fn: F) -> F:
    """``--clip-weights`` and ``--detector-weights``: local files instead of downloads."""
    fn = click.option("--detector-weights", "detector_weights", default=None, help=DETECTOR_WEIGHTS_HELP)(fn)
    return click.option("--clip-weights", "clip_weights", default=None, help=CLIP_WEIGHTS_HELP)(fn)


def split_options(fn: F) -> F:
    """``--split`` and ``--splits`` (parameters ``split``, ``splits``); names are checked where the splits are
    known (:func:`hoi_edge.eval.splits.resolve_split`), with a "did you mean"."""
    fn = click.option("--splits", "splits", type=click.Path(dir_okay=False), default=None, help=SPLITS_HELP)(fn)
    return click.option("--split", "split", default=None, help=SPLIT_HELP)(fn)
