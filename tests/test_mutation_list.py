"""``benchmarks/mutation_check.py`` stays runnable: every mutation's old text is still in the code (once), its
tests exist, and ``--only AREA`` / ``--since REF`` pick the right mutations. The mutations themselves are run by
the script (slow), not here."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "mutation_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("mutation_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses resolve their module while the class is built
    spec.loader.exec_module(module)
    return module


def test_every_mutation_still_fits_the_code() -> None:
    mc = _module()
    mc.check_list(mc.MUTATIONS, REPO)          # raises ListOutdated naming the mutation and its file
    assert len({m.name for m in mc.MUTATIONS}) == len(mc.MUTATIONS) >= 24
    proc = subprocess.run([sys.executable, str(SCRIPT), "--list"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == len(mc.MUTATIONS)


def test_areas_names_and_changed_files_select_mutations() -> None:
    mc = _module()
    by_name = {m.name: m for m in mc.MUTATIONS}
    assert by_name["validator ignores the unseen classes"].area == "validate"
    assert by_name["unseen classes not masked in the pair loss"].area == "train"
    validate = mc.select(mc.MUTATIONS, "validate")
    assert validate and all(m.area == "validate" for m in validate)
    two = mc.select(mc.MUTATIONS, "validate,runtime")
    assert {m.area for m in two} == {"validate", "runtime"}
    assert [m.name for m in mc.select(mc.MUTATIONS, "object prior")] == ["scoring ignores the object prior"]
    touched = mc.touching(mc.MUTATIONS, {"hoi_edge/eval/ap.py", "tests/test_graph_rules.py", "README.md"})
    assert {m.name for m in touched} == {"AP without precision interpolation",
                                         "end-to-end graph keeps a score exactly at the NMS threshold"}
    in_folder = mc.touching(mc.MUTATIONS, {"tests/eval/test_eval_matching.py"})      # a test folder's file
    assert {m.name for m in in_folder} == {m.name for m in mc.MUTATIONS if "tests/eval" in m.tests}
    assert mc.touching(mc.MUTATIONS, set()) == ()
