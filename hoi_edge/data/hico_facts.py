"""Build the embedded HICO-DET vocabulary from the public facts in ``shared/data/hicodet``.

Run ``python -m hoi_edge.data.hico_facts ../shared/data/hicodet`` to regenerate
``hoi_edge/data/hico_det.json``; a test checks the embedded file still equals
what this produces, so the package never drifts from the source facts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hoi_edge.core.errors import InputFileError
from hoi_edge.data.vocabulary import Vocabulary, canonical_split_name, normalize_name

PROMPT_PREFIX = "a photo of a person "


def verb_phrase_from_prompts(meta: dict) -> dict[str, str]:
    """Recover each verb's gerund ('riding', 'sitting on') from the GEN-VLKT prompts."""
    phrases: dict[str, str] = {}
    for hoi in meta["hoi_600"]:
        prompt: str = hoi["gen_vlkt_prompt"]
        obj = normalize_name(hoi["object_name"])
        body = prompt[len(PROMPT_PREFIX):] if prompt.startswith(PROMPT_PREFIX) else prompt
        for article in (" a ", " an "):
            suffix = f"{article}{obj}"
            if body.endswith(suffix):
                phrases.setdefault(hoi["verb_name"], body[: -len(suffix)].strip())
                break
    return phrases


def build_hico_vocabulary(hicodet_dir: Path) -> Vocabulary:
    meta_path, splits_path = hicodet_dir / "hicodet_meta.json", hicodet_dir / "splits.json"
    try:
        meta = json.loads(meta_path.read_text())
        splits = json.loads(splits_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputFileError(f"cannot read HICO-DET facts in {hicodet_dir}: {exc}") from exc
    verbs = meta["verbs"]
    phrases = verb_phrase_from_prompts(meta)
    hois = []
    for expected, hoi in enumerate(meta["hoi_600"]):
        assert hoi["hoi"] == expected, "hoi_600 must be in official order"
        hois.append((hoi["verb"], hoi["object_hico"]))
    return Vocabulary(
        name="hico-det",
        verbs=tuple(verbs),
        verb_phrases=tuple(phrases.get(v, v.replace("_", " ")) for v in verbs),
        objects=tuple(normalize_name(o) for o in meta["objects_hico_alphabetical"]),
        hois=tuple(hois),
        rare=tuple(meta["rare_138"]),
        splits={canonical_split_name(k): tuple(v["unseen"]) for k, v in splits["splits"].items()},
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    src = Path(argv[0] if argv else "../shared/data/hicodet")
    out = Path(__file__).with_name("data") / "hico_det.json"
    out.write_text(json.dumps(build_hico_vocabulary(src).to_dict(), indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
