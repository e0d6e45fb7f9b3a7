"""The command line a newcomer meets: one spelling, default and help text per shared option in every command
(hoi_edge/cli_options.py), old spellings still accepted with a warning, examples in every --help, "did you mean"
for presets and splits, one line (no traceback) for a PyTorch --device that does not exist here, train starting
from --model default, and Ctrl-C ending with exit status 130."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from hoi_edge.cli import main


def _commands(group: click.Group = main, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))


COMMANDS = dict(_commands())


@pytest.mark.parametrize("path", [()] + sorted(COMMANDS), ids=lambda p: " ".join(p) or "hoi-edge")
def test_every_help_ends_with_examples(path):
    res = CliRunner().invoke(main, [*path, "--help"])
    assert res.exit_code == 0, res.output
    examples = res.output.split("Examples:\n", 1)
    assert len(examples) == 2 and "hoi-edge " in examples[1], res.output
    assert "``" not in res.output                                 # no raw reST in the help


def test_shared_options_have_one_spelling_and_one_help_everywhere():
    from hoi_edge import cli_options

    shared = {"--model": cli_options.MODEL_HELP, "--artifact": cli_options.ARTIFACT_HELP,
              "--device": cli_options.DEVICE_HELP, "--vocab": cli_options.VOCAB_HELP,
              "--split": cli_options.SPLIT_HELP, "--splits": cli_options.SPLITS_HELP,
              "--clip-weights": cli_options.CLIP_WEIGHTS_HELP, "--detector-weights": cli_options.DETECTOR_WEIGHTS_HELP}
    seen: dict[str, list[str]] = {}
    for path, command in COMMANDS.items():
        for param in command.params:
            for opt in param.opts:
                if opt in shared and not param.hidden:
                    assert param.help.startswith(shared[opt]), (path, opt, param.help)
                    seen.setdefault(opt, []).append(" ".join(path))
    assert set(seen["--artifact"]) == {"detect", "bake", "verify", "validate", "benchmark", "serve"}
    assert set(seen["--model"]) == {"detect", "export", "bake", "validate", "benchmark", "train", "serve"}
    assert set(seen["--device"]) == {"detect", "validate", "benchmark", "train", "distill", "serve"}
    assert set(seen["--vocab"]) == {"detect", "export", "bake", "train", "serve"}
    assert set(seen["--split"]) == set(seen["--splits"]) == {"eval", "validate", "train"}


def test_the_model_defaults_to_default_everywhere_benchmark_included(monkeypatch, tmp_path):
    """benchmark had no default model, so there was no reference unless one was named."""
    import hoi_edge.weights.defaults as defaults

    for path in (("detect",), ("export",), ("bake",), ("validate",), ("benchmark",), ("train",), ("serve",)):
        help_text = CliRunner().invoke(main, [*path, "--help"]).output
        assert "[default: default]" in " ".join(help_text.split()), path
    asked = []

    def resolve(name=None, *args, **kwargs):
        asked.append(name)
        raise defaults.WeightsError("stop here")

    monkeypatch.setattr(defaults, "resolve_checkpoint", resolve)
    res = CliRunner().invoke(main, ["benchmark", "--data", str(tmp_path)])
    assert res.exit_code == 1 and asked == ["default"], res.output


def test_old_artifact_spellings_still_work_with_a_warning(tmp_path):
    folder = tmp_path / "art"
    folder.mkdir()
    for args in (["verify", str(folder)], ["verify", "--artifact", str(folder)]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 1 and f"{folder} is not a hoi-edge artifact" in res.output, res.output
        assert ("deprecated" in res.output) == (args[1] != "--artifact")
    res = CliRunner().invoke(main, ["verify"])
    assert res.exit_code == 2 and "Missing option '--artifact'" in res.output
    for command in ("validate", "benchmark"):
        reference = ["--no-reference"] if command == "benchmark" else ["--model", str(tmp_path / "none.pt")]
        res = CliRunner().invoke(main, [command, "--data", str(tmp_path), *reference, "--artifacts", str(folder),
                                        str(folder)])
        assert res.exit_code == 1, res.output
        assert "--artifacts is deprecated here, use --artifact" in res.output, res.output
        assert "plain arguments are deprecated, use --artifact DIR" in res.output


@pytest.mark.parametrize("args, message", [
    (["train", "--preset", "clip4hoi-nanodet-tny"], "did you mean 'clip4hoi-nanodet-tiny'?"),
    (["eval", "--gt", "g.json", "--pred", "p.jsonl", "--setting", "known-objects"], "did you mean 'known_object'?"),
    (["benchmark", "--mode", "througput"], "did you mean 'throughput'?"),
])
def test_typos_in_choices_get_a_suggestion(args, message):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and message in res.output, res.output


def test_an_unknown_split_gets_a_suggestion(tmp_path):
    from hoi_edge.core.errors import VocabularyError
    from hoi_edge.data.vocabulary import load_vocabulary
    from hoi_edge.eval.splits import resolve_split

    with pytest.raises(VocabularyError, match=r"no zero-shot split 'nf-cu'.*did you mean 'nf_uc'\?"):
        resolve_split("nf-cu", load_vocabulary("hico"))
    assert resolve_split("NF_UC", load_vocabulary("hico")).name == "nf_uc"


@pytest.mark.parametrize("device, message", [
    ("GPU", "names a device of an exported artifact"), ("NPU", "names a device of an exported artifact"),
    ("detector=GPU", "names a device of an exported artifact"), ("cpux", "did you mean 'cpu'?"),
    pytest.param("cuda", "PyTorch finds no CUDA GPU", marks=pytest.mark.skipif(
        __import__("torch").cuda.is_available(), reason="needs a machine without CUDA")),
])
def test_a_pytorch_device_mistake_is_one_line(tiny_checkpoint, shared_data, device, message):
    """With an artifact the same mistake was one line; with a checkpoint it was a 50-68 line traceback."""
    res = CliRunner().invoke(main, ["detect", str(shared_data / "photos" / "bus.jpg"), "--model",
                                    str(tiny_checkpoint), "--device", device, "--no-draw"])
    assert res.exit_code == 1 and message in res.output, res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) <= 2
    assert CliRunner().invoke(main, ["detect", str(shared_data / "photos" / "bus.jpg"), "--model",
                                     str(tiny_checkpoint), "--device", "CPU", "--no-draw"]).exit_code == 0


def test_train_starts_from_the_default_model(tiny_checkpoint, monkeypatch):
    """'train --model default' was refused ("checkpoint not found: default"), and so was train without --preset
    offline; the README promises 'default' in every command."""
    from train.cli import _model

    monkeypatch.setenv("HOI_EDGE_MODEL", str(tiny_checkpoint))
    for model in ("default", None):
        assert _model(None, model, None, None, None, None).vocab.num_classes == 600


def test_train_offline_points_to_what_works(monkeypatch):
    import hoi_edge.weights.defaults as defaults
    from hoi_edge.core.errors import WeightsError
    from train.cli import _model

    monkeypatch.setattr(defaults, "offline_reason", lambda cfg=None: "cannot resolve huggingface.co")
    with pytest.raises(WeightsError) as err:
        _model("clip4hoi-base", None, None, None, None, None)
    assert "--model default" in str(err.value) and "--init" not in str(err.value)


def test_ctrl_c_exits_130(monkeypatch, shared_data):
    import hoi_edge.loader

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hoi_edge.loader, "open_detector", interrupted)
    res = CliRunner().invoke(main, ["detect", str(shared_data / "photos" / "bus.jpg")])
    assert res.exit_code == 130 and "interrupted" in res.output and "Aborted" not in res.output


def test_help_texts_say_what_is_true():
    export_help = " ".join(CliRunner().invoke(main, ["export", "--help"]).output.split())
    assert "NanoDet" in export_help and "stretched" in export_help and "DETR detectors." not in export_help
    train_help = CliRunner().invoke(main, ["train", "--help"]).output
    assert "``" not in train_help and "torchrun --nproc_per_node N -m train" in train_help
