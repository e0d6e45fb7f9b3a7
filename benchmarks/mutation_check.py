"""Mutation check: does the test suite catch the bugs users would hit?

Applies each mutation of a fixed list (a one-line change: file, exact old text, new text) to a temporary
copy of the repository, runs the tests that should catch it from that copy, and prints a table of which
were caught. A mutation is caught when its tests fail; an unmutated run of the same tests must pass
first (a baseline), or nothing could be concluded. When a mutation's old text is not found exactly once,
the code has moved: the script stops with the file and the text, and the list must be updated.

    python benchmarks/mutation_check.py                  # every mutation
    python benchmarks/mutation_check.py --only prior     # mutations whose name contains 'prior'
    python benchmarks/mutation_check.py --list

The copy lives in a temporary folder beside a link to ../shared, so the tests find the shared data as
they do in the repository; it is run with this interpreter and PYTHONPATH set to the copy (so the copy's
code is imported, not the editable install's). It needs no network. Exit code: 0 all caught, 1 some
survived, 2 the list no longer fits the code or a baseline failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", ".pytest_cache", "runs", "artifacts",
                                "build", "dist")

PIPELINE_TESTS = ("tests/test_known_answers.py",)
IO_TESTS = ("tests/test_detect_io.py",)
TRAIN_TESTS = ("tests/train/test_train_unseen_gradients.py",)
DISTILL_TESTS = ("tests/export/test_distill_best_state.py",)
EVAL_TESTS = ("tests/eval",)


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str            # relative to the repository root
    old: str             # exact text, found exactly once
    new: str
    tests: tuple[str, ...]


MUTATIONS: tuple[Mutation, ...] = (
    # -- the six bugs of issue 15 that once passed the whole suite
    Mutation("scoring ignores the object prior", "hoi_edge/pipeline/postprocess.py",
             "return scores * det[:, None] * pair_class_prior(inst, hoi_object)",
             "return scores * det[:, None] * feasible_pairs(inst)[:, None]", PIPELINE_TESTS),
    Mutation("human and object boxes swapped in the output", "hoi_edge/pipeline/postprocess.py",
             "human_box=tuple(float(v) for v in inst.boxes[i]), object_box=tuple(float(v) for v in inst.boxes[j]),",
             "human_box=tuple(float(v) for v in inst.boxes[j]), object_box=tuple(float(v) for v in inst.boxes[i]),",
             PIPELINE_TESTS),
    Mutation("boxes not mapped back from the letterbox", "hoi_edge/pipeline/preprocess.py",
             "        scale = input_size / max(h, w)\n", "        scale = 1.0\n", PIPELINE_TESTS),
    Mutation("unseen classes not masked in the pair loss", "train/targets.py",
             "return mask & seen[None, :] if seen is not None else mask", "return mask", TRAIN_TESTS),
    Mutation("unseen classes not masked in the global loss", "train/losses.py",
             "gmask = class_mask.unsqueeze(0).expand_as(global_logits)",
             "gmask = torch.ones_like(global_logits, dtype=torch.bool)", TRAIN_TESTS),
    Mutation("video and camera frames left in BGR", "hoi_edge/data/sources.py",
             "yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)", "yield frame", IO_TESTS),
    Mutation("distillation returns the last state, not the best", "compress/distill.py",
             "    student.load_state_dict(best_state)\n", "", DISTILL_TESTS),
    # -- more pipeline rules with a known answer
    Mutation("image files decoded in BGR", "hoi_edge/pipeline/preprocess.py",
             "return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)", "return image", IO_TESTS),
    Mutation("head boxes scaled by the shorter image side", "hoi_edge/pipeline/postprocess.py",
             "side = float(max(image_hw))", "side = float(min(image_hw))", PIPELINE_TESTS),
    Mutation("detector scores not raised to the power lambda", "hoi_edge/pipeline/postprocess.py",
             "np.power(np.outer(inst.scores, inst.scores), params.detector_score_power)",
             "np.outer(inst.scores, inst.scores)", PIPELINE_TESTS),
    Mutation("boxes not clipped to the image", "hoi_edge/pipeline/preprocess.py",
             "return np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)", "return xyxy.astype(np.float32)",
             PIPELINE_TESTS),
    Mutation("class-wise NMS skipped", "hoi_edge/pipeline/postprocess.py",
             "if cand.size and nms_threshold is not None:", "if False:", PIPELINE_TESTS),
    # -- the evaluator (HICO-DET protocol)
    Mutation("IoU in the exclusive pixel convention", "hoi_edge/core/geometry.py",
             "iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1.0",
             "iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])",
             EVAL_TESTS),
    Mutation("a GT pair can be claimed twice", "hoi_edge/eval/matching.py",
             "if ov_max >= iou_threshold and j_max not in claimed:", "if ov_max >= iou_threshold:", EVAL_TESTS),
    Mutation("AP without precision interpolation", "hoi_edge/eval/ap.py",
             "suffix_max = np.maximum.accumulate(prec[::-1])[::-1]", "suffix_max = prec", EVAL_TESTS),
)


class ListOutdated(Exception):
    """A mutation's old text is not in its file exactly once: the code moved."""


def make_copy(work: Path) -> Path:
    """The repository (sources, tests, samples; no venv, no git) at ``work/repo``, with ``work/shared`` linked."""
    copy = work / "repo"
    shutil.copytree(REPO, copy, ignore=IGNORE)
    shared = REPO.parent / "shared"
    if shared.exists():
        (work / "shared").symlink_to(shared, target_is_directory=True)
    return copy


def check_list(mutations: tuple[Mutation, ...], root: Path) -> None:
    for m in mutations:
        path = root / m.path
        if not path.is_file():
            raise ListOutdated(f"{m.name}: {m.path} does not exist (moved?)")
        count = path.read_text(encoding="utf-8").count(m.old)
        if count != 1:
            raise ListOutdated(f"{m.name}: the text to mutate occurs {count} times in {m.path} (code moved?): "
                               f"{m.old.strip()!r}")


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        code, out = -1, "timeout"
    return code, out, time.perf_counter() - start


def first_failure(output: str) -> str:
    found = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - |$)", output, re.M)
    return found.group(1).split("/")[-1] if found else ""


def imports_from(copy: Path) -> Path:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    out = subprocess.run([sys.executable, "-c", "import hoi_edge; print(hoi_edge.__file__)"], cwd=copy, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="run the mutations whose name contains this text")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per test run")
    args = ap.parse_args(argv)
    mutations = tuple(m for m in MUTATIONS if not args.only or args.only in m.name)
    if args.list or not mutations:
        for m in MUTATIONS:
            print(f"{m.name}  [{m.path}; {' '.join(m.tests)}]")
        return 0 if args.list else 2
    try:
        check_list(mutations, REPO)
    except ListOutdated as exc:
        print(f"mutation list out of date: {exc}", file=sys.stderr)
        return 2
    total = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hoi-edge-mutation-") as tmp:
        copy = make_copy(Path(tmp))
        where = imports_from(copy)
        if copy not in where.parents:
            print(f"the copy is not what Python imports ({where}); cannot test mutations", file=sys.stderr)
            return 2
        for tests in dict.fromkeys(m.tests for m in mutations):
            code, out, secs = run_tests(copy, tests, args.timeout)
            print(f"baseline {' '.join(tests)}: {'pass' if code == 0 else 'FAIL'} ({secs:.0f} s)", flush=True)
            if code != 0:
                print(out[-3000:], file=sys.stderr)
                return 2
        rows = []
        for m in mutations:
            path = copy / m.path
            original = path.read_text(encoding="utf-8")
            path.write_text(original.replace(m.old, m.new, 1), encoding="utf-8")
            try:
                code, out, secs = run_tests(copy, m.tests, args.timeout)
            finally:
                path.write_text(original, encoding="utf-8")
            # pytest: 1 = tests failed (caught); 0 = all passed (survived); anything else is not a verdict
            verdict = {0: "no (survived)", 1: "yes"}.get(code, f"error (exit {code})")
            rows.append((m, verdict, first_failure(out) if code == 1 else "", secs))
            print(f"  {m.name}: {verdict} ({secs:.0f} s)", flush=True)
    print()
    print("| mutation | file | caught? | first failing test | s |")
    print("| --- | --- | --- | --- | --: |")
    for m, verdict, test, secs in rows:
        print(f"| {m.name} | {m.path} | {verdict} | {test or '—'} | {secs:.0f} |")
    caught = sum(v == "yes" for _, v, _, _ in rows)
    print(f"\n{caught}/{len(rows)} mutations caught in {time.perf_counter() - total:.0f} s "
          f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    if any(v.startswith("error") for _, v, _, _ in rows):
        return 2
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
