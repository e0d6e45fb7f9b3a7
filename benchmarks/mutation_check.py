"""Mutation check: does the test suite catch the bugs users would hit?

Applies each mutation of a fixed list (a one-line change: file, exact old text, new text) to a temporary
copy of the repository, runs the tests that should catch it from that copy, and prints a table of which
were caught. A mutation is caught when its tests fail; an unmutated run of the same tests must pass
first (a baseline), or nothing could be concluded. When a mutation's old text is not found exactly once,
the code has moved: the script stops with the file and the text, and the list must be updated.

    python benchmarks/mutation_check.py                  # every mutation
    python benchmarks/mutation_check.py --only validate  # one area (the wing of the mutated file), or several:
    python benchmarks/mutation_check.py --only train,compress
    python benchmarks/mutation_check.py --only prior     # mutations whose name contains 'prior'
    python benchmarks/mutation_check.py --since main     # mutations of files (or their tests) changed since main
    python benchmarks/mutation_check.py --list           # the list with areas; checks that all of it fits the code

A mutation's area is the part of the project its file is in: the wing of ``hoi_edge/`` (pipeline, eval, core,
data, model, runtime, validate) or the top folder (train, compress, targets). ``--since REF`` selects the
mutations whose file, or one of whose test files, differs from REF in the working tree (committed or not, and
untracked files), so an issue's branch can check its own area before it stops.

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
VALIDATE_TESTS = ("tests/validate/test_validate_parts.py",)


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str            # relative to the repository root
    old: str             # exact text, found exactly once
    new: str
    tests: tuple[str, ...]    # test files, folders or node ids (file::test), relative to the repository root

    @property
    def area(self) -> str:
        """The wing of hoi_edge/ the file is in (pipeline, eval, ...), else its top folder (train, compress)."""
        parts = Path(self.path).parts
        return parts[1] if parts[0] == "hoi_edge" and len(parts) > 2 else parts[0]


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
    # -- issue 27: the nine survivors of the second mutation round
    Mutation("validator ignores the unseen classes", "hoi_edge/validate/report.py",
             'zero_shot = ("unseen", "seen") if accuracy.split is not None else ()',
             'zero_shot = ("seen",) if accuracy.split is not None else ()', VALIDATE_TESTS),
    Mutation("box AP lets one reference box be claimed twice", "hoi_edge/validate/box_ap.py",
             "        overlap[claimed[image]] = -1.0\n", "", ("tests/validate/test_box_ap.py",)),
    Mutation("ONNX int32 Gemm bias scaled by channel 0's weight scale", "compress/onnx_qdq.py",
             "w_scale.astype(np.float32).reshape(-1)).astype(np.float32)",
             "w_scale.astype(np.float32).reshape(-1)[0]).astype(np.float32)",
             ("tests/export/test_runtime_graphs.py",)),
    Mutation("calibration takes the first N images by name", "compress/calibration.py",
             "    random.Random(cfg.seed).shuffle(paths)\n", "", ("tests/export/test_calibration.py",)),
    Mutation("end-to-end INT8 loses every unit's sensitive layers", "compress/quantize.py",
             'if unit == "end_to_end":', "if False:",
             ("tests/export/test_end_to_end.py::test_int8_end_to_end_keeps_every_units_fp_layers",)),
    Mutation("stream reconnect count not reset by a good frame", "hoi_edge/data/sources.py",
             "                failures = 0\n", "",
             ("tests/runtime/test_stream.py::test_a_good_frame_resets_the_reconnect_count",)),
    Mutation("feature-cache key ignores the detector's channel order", "train/feature_cache.py",
             '"detector_classes", "detector_score_kind")',
             '"detector_classes", "detector_score_kind", "detector_channels")',
             ("tests/train/test_feature_cache.py::test_cache_key_changes_with_each_pre_processing_field",)),
    Mutation("ORT OpenVINO provider device not upper-cased", "hoi_edge/runtime/devices.py",
             'options["device_type"] = o.upper()', 'options["device_type"] = o', ("tests/runtime/test_devices.py",)),
    Mutation("end-to-end graph keeps a score exactly at the NMS threshold", "hoi_edge/model/graph_rules.py",
             "candidate = candidate & (best > score_threshold)", "candidate = candidate & (best >= score_threshold)",
             ("tests/test_graph_rules.py",)),
    # -- issue 27: what its fixes guard besides the nine
    Mutation("validator ignores the rare classes", "hoi_edge/validate/report.py",
             'rare = ("rare",) if accuracy.rare is not None else ()', "rare = ()", VALIDATE_TESTS),
    Mutation("resume does not restore the optimizer state", "train/loop.py",
             '        optimizer.load_state_dict(data["extra"]["optimizer"])\n', '        data["extra"]["optimizer"]\n',
             ("tests/train/test_train_loop.py::test_resume_continues_epoch_step_and_optimizer",
              "tests/train/test_student.py::test_resume_continues_the_run")),
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
    """Every mutation's file exists and holds its old text exactly once, and its tests exist."""
    for m in mutations:
        path = root / m.path
        if not path.is_file():
            raise ListOutdated(f"{m.name}: {m.path} does not exist (moved?)")
        count = path.read_text(encoding="utf-8").count(m.old)
        if count != 1:
            raise ListOutdated(f"{m.name}: the text to mutate occurs {count} times in {m.path} (code moved?): "
                               f"{m.old.strip()!r}")
        for test in m.tests:
            if not (root / test.split("::")[0]).exists():
                raise ListOutdated(f"{m.name}: its test {test} does not exist (moved?)")
            if "::" in test and f"def {test.split('::')[-1].split('[')[0]}(" not in \
                    (root / test.split("::")[0]).read_text(encoding="utf-8"):
                raise ListOutdated(f"{m.name}: {test} is not defined in {test.split('::')[0]} (renamed?)")


def select(mutations: tuple[Mutation, ...], only: str | None) -> tuple[Mutation, ...]:
    """``only``: comma-separated areas (see :attr:`Mutation.area`), or text found in a mutation's name."""
    if not only:
        return mutations
    areas = {a.strip() for a in only.split(",") if a.strip()}
    if areas & {m.area for m in mutations}:
        return tuple(m for m in mutations if m.area in areas)
    return tuple(m for m in mutations if only in m.name)


def changed_since(ref: str, root: Path = REPO) -> set[str]:
    """Paths (relative to ``root``) that differ from ``ref`` in the working tree, and untracked files."""
    def git(*args: str) -> list[str]:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ValueError(f"git {' '.join(args)}: {proc.stderr.strip()}")
        return [line for line in proc.stdout.splitlines() if line]

    return set(git("diff", "--name-only", ref, "--")) | set(git("ls-files", "--others", "--exclude-standard"))


def touching(mutations: tuple[Mutation, ...], changed: set[str]) -> tuple[Mutation, ...]:
    """The mutations whose file, or one of whose test files (or folders), is among ``changed``."""
    def hit(target: str) -> bool:
        target = target.split("::")[0].rstrip("/")
        return any(c == target or c.startswith(target + "/") for c in changed)

    return tuple(m for m in mutations if hit(m.path) or any(hit(t) for t in m.tests))


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    start = time.perf_counter()
    try:
        # one process (-n 0): under pytest-xdist (the suite's addopts) -x ends a failing run with exit 2
        # ("interrupted"), which is not a verdict; -x then stops at the first failing test
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-n", "0", "-q", "-p", "no:cacheprovider", *tests],
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
    areas = sorted({m.area for m in MUTATIONS})
    ap.add_argument("--only", default=None,
                    help=f"run one area's mutations ({', '.join(areas)}; comma-separated for several), "
                         "or those whose name contains this text")
    ap.add_argument("--since", default=None, metavar="REF",
                    help="run the mutations whose file or tests changed since the git REF (e.g. main)")
    ap.add_argument("--list", action="store_true",
                    help="list the selected mutations, check that the whole list fits the code, and exit")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per test run")
    args = ap.parse_args(argv)
    mutations = select(MUTATIONS, args.only)
    if args.since is not None:
        try:
            mutations = touching(mutations, changed_since(args.since))
        except ValueError as exc:
            print(f"--since {args.since}: {exc}", file=sys.stderr)
            return 2
        if not mutations:
            print(f"no mutation touches the files changed since {args.since}")
            return 0
    if not mutations:
        print(f"--only {args.only!r} matches no area ({', '.join(areas)}) and no mutation name", file=sys.stderr)
        return 2
    if args.list:
        for m in mutations:
            print(f"[{m.area}] {m.name}  [{m.path}; {' '.join(m.tests)}]")
    try:
        check_list(MUTATIONS if args.list else mutations, REPO)      # --list checks the whole list
    except ListOutdated as exc:
        print(f"mutation list out of date: {exc}", file=sys.stderr)
        return 2
    if args.list:
        return 0
    print(f"{len(mutations)} mutation(s): {', '.join(sorted({m.area for m in mutations}))}", flush=True)
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
    print("| mutation | area | file | caught? | first failing test | s |")
    print("| --- | --- | --- | --- | --- | --: |")
    for m, verdict, test, secs in rows:
        print(f"| {m.name} | {m.area} | {m.path} | {verdict} | {test or '—'} | {secs:.0f} |")
    caught = sum(v == "yes" for _, v, _, _ in rows)
    print(f"\n{caught}/{len(rows)} mutations caught in {time.perf_counter() - total:.0f} s "
          f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    if any(v.startswith("error") for _, v, _, _ in rows):
        return 2
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
