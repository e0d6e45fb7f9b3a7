import json

import pytest

from hoi_edge.core.errors import VocabularyError
from hoi_edge.data.hico_facts import build_hico_vocabulary
from hoi_edge.data.vocabulary import Vocabulary, load_vocabulary


def test_embedded_hico_vocabulary_matches_shared_facts(shared_data):
    embedded = load_vocabulary("hico")
    rebuilt = build_hico_vocabulary(shared_data / "hicodet")
    assert embedded.to_dict() == rebuilt.to_dict()


def test_hico_vocabulary_sizes_and_splits(shared_data):
    v = load_vocabulary("hico")
    meta = json.loads((shared_data / "hicodet" / "hicodet_meta.json").read_text())
    splits = json.loads((shared_data / "hicodet" / "splits.json").read_text())["splits"]
    assert (len(v.verbs), len(v.objects), v.num_classes, len(v.rare)) == (117, 80, 600, 138)
    assert {k: len(v.unseen(k)) for k in ("RF-UC", "nf_uc", "uo", "uv")} == {"RF-UC": 120, "nf_uc": 120, "uo": 100, "uv": 84}
    assert list(v.unseen("rf-uc")) == splits["rf_uc"]["unseen"]
    for hoi in meta["hoi_600"][::37]:
        verb, obj = v.hois[hoi["hoi"]]
        assert v.verbs[verb] == hoi["verb_name"]
        assert v.objects[obj] == hoi["object_name"].replace("_", " ")
        phrase = v.verb_phrases[verb]
        assert hoi["gen_vlkt_prompt"].startswith(f"a photo of a person {phrase} a")


def test_unknown_split_is_a_clear_error():
    with pytest.raises(VocabularyError, match="no zero-shot split 'xx'"):
        load_vocabulary("hico").unseen("xx")


def test_custom_vocabulary_file(tmp_path):
    path = tmp_path / "kitchen.json"
    path.write_text(json.dumps({
        "name": "kitchen", "verbs": ["hold", "cut_with"], "objects": ["knife", "Wine_Glass"],
        "verb_phrases": {"cut_with": "cutting with"},
        "hois": [["hold", "knife"], ["cut_with", "knife"], ["hold", "wine glass"]],
    }))
    v = load_vocabulary(path)
    assert v.num_classes == 3 and v.objects == ("knife", "wine glass")
    assert v.prompt_parts() == [("hold", "knife"), ("cutting with", "knife"), ("hold", "wine glass")]
    assert Vocabulary.from_dict(v.to_dict()).fingerprint() == v.fingerprint()
    assert v.fingerprint() != load_vocabulary("hico").fingerprint()


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"verbs": ["hold"], "objects": ["cup"]}), "'hois' must be a non-empty list"),
    (json.dumps({"verbs": [], "objects": ["cup"], "hois": [["hold", "cup"]]}), "'verbs' must be a non-empty list"),
    (json.dumps({"verbs": ["hold"], "objects": ["cup"], "hois": [["ride", "cup"]]}), "unknown verb 'ride'"),
    (json.dumps({"verbs": ["hold"], "objects": ["cup"], "hois": [["hold", "cup", "x"]]}), r"hois\[0\] must be a \[verb, object\] pair"),
    (json.dumps({"verbs": ["hold"], "objects": ["cup"], "hois": [["hold", "cup"], ["hold", "cup"]]}), "listed twice"),
    (json.dumps({"verbs": ["hold", "hold"], "objects": ["cup"], "hois": [["hold", "cup"]]}), "duplicate verbs"),
    (json.dumps({"verbs": ["hold"], "objects": ["cup"], "hois": [[0, 3]]}), "object index 3 out of range"),
])
def test_bad_vocabulary_files_name_the_file_and_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(VocabularyError, match=message) as err:
        load_vocabulary(path)
    assert "bad.json" in str(err.value) or "vocabulary 'bad'" in str(err.value)


def test_missing_vocabulary_file(tmp_path):
    with pytest.raises(VocabularyError, match="vocabulary file not found"):
        load_vocabulary(tmp_path / "nope.json")


def _write(tmp_path, data, name="kitchen.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


KITCHEN = {"name": "kitchen", "verbs": ["hold", "kick"], "objects": ["cup", "sports ball"],
           "hois": [["hold", "cup"], ["kick", "sports ball"]]}


def test_an_unknown_key_is_an_error_with_a_suggestion(tmp_path):
    """A typo such as 'verb_phrase' used to be ignored silently (the prompts then used the verbs' own words)."""
    path = _write(tmp_path, {**KITCHEN, "verb_phrase": {"kick": "kicking"}})
    with pytest.raises(VocabularyError) as err:
        load_vocabulary(path)
    assert str(path) in str(err.value) and "unknown key 'verb_phrase'; did you mean 'verb_phrases'?" in str(err.value)


def test_errors_found_after_parsing_name_the_file_and_the_class(tmp_path):
    """Duplicate verbs and a class listed twice used to name only the vocabulary's 'name', and not which class."""
    path = _write(tmp_path, {**KITCHEN, "verbs": ["hold", "kick", "hold"]})
    with pytest.raises(VocabularyError, match=rf"vocabulary 'kitchen' \({path}\): duplicate verbs \['hold'\]"):
        load_vocabulary(path)
    path = _write(tmp_path, {**KITCHEN, "hois": [["hold", "cup"], ["kick", "sports ball"], ["hold", "cup"]]})
    with pytest.raises(VocabularyError, match=rf"\({path}\): the class 'hold cup' is listed twice \(hois\[0\] and "
                                              r"hois\[2\]\)"):
        load_vocabulary(path)


def test_an_unknown_name_in_hois_gets_a_suggestion(tmp_path):
    path = _write(tmp_path, {**KITCHEN, "hois": [["hold", "cup"], ["kick", "ball"]]})
    with pytest.raises(VocabularyError, match=r"names unknown object 'ball' \(not in 'objects'\); did you mean "
                                              r"'sports ball'\?"):
        load_vocabulary(path)


def test_objects_the_detector_lacks_get_a_suggestion_and_the_whole_class_list(tmp_path):
    """'ball' for COCO's 'sports ball': named with the file, a suggestion, and all 80 classes (the list used to stop
    at the 20th, before 'sports ball')."""
    from hoi_edge.model.config import clip4hoi_tiny
    from hoi_edge.model.detectors import detector_class_names
    from hoi_edge.pipeline.postprocess import LabelMap

    path = _write(tmp_path, {**KITCHEN, "objects": ["cup", "ball", "tabel"],
                             "hois": [["hold", "cup"], ["kick", "ball"], ["hold", "tabel"]]})
    classes = detector_class_names(clip4hoi_tiny().detector)
    with pytest.raises(VocabularyError) as err:
        LabelMap.build(classes, load_vocabulary(path))
    text = str(err.value)
    assert f"vocabulary 'kitchen' ({path}) has objects the detector cannot find" in text
    assert "'ball' (did you mean 'sports ball'?)" in text and "'tabel' (did you mean 'dining table'?)" in text
    assert "The detector's 80 classes:" in text and "sports ball" in text.split("classes:")[1] and text.endswith("zebra")
