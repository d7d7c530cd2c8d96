"""Mutation testing per module with mutmut (docs/proofs.md §6): `make mutation` or

    python benchmarks/mutation.py [MODULE ...] [--timeout-s 3600] [--workdir /tmp/iaside-mutation] [--recheck]

For each module: copy the repository to WORKDIR/MODULE, write a setup.cfg [mutmut] section that
mutates only that file and runs only the tests that cover it (``MODULES``; ``FUNCTIONS`` restricts a few to the functions that
compute or format numbers), run
``mutmut run --max-children 1`` there (one worker: the CI machine has 2 cores), and count the
outcome of every mutant. Prints one Markdown row per module (module, mutants, killed, survived,
timeout, no tests, score, time) and writes the table and every survivor's name to
WORKDIR/mutation.md; `mutmut show NAME` inside WORKDIR/MODULE prints a survivor's diff.

Score = (killed + timeout) / (mutants − not checked): a mutant that makes the covering tests
run past mutmut's timeout (15 × their clean time + 1 s) is caught; one in a function that no
selected test reaches ("no tests") counts as not caught and is listed, so a module's selection
must cover all of it. "not checked": the run hit --timeout-s first. Not in the default suite.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

N, R = "tests/test_numbers.py::", "tests/test_robustness.py::"
MODULES: dict[str, tuple[str, list[str]]] = {
    # module: (file, the tests that cover it; each run is restricted to these, fast ones first).
    # fills and coalitions leave out test_oracles/test_axioms (30-80 s per mutant on this machine):
    # test_mutation_kills checks both against numpy FFT definitions instead
    "spectral": (
        "iaside/spectral.py",
        [
            "tests/test_spectral.py",
            "tests/test_mutation_kills.py",
            "tests/test_preset.py",
            N + "test_ring_centres_are_the_middle_of_each_ring",
        ],
    ),
    "game": (
        "iaside/game.py",
        [
            "tests/test_game.py",
            "tests/test_mutation_kills.py",
            "tests/test_scaleout.py",
            "-k",
            "not torchrun and not merge and not resume and not end_to_end and not target_ci",
        ],
    ),
    "fills": (
        "iaside/fills.py",
        [  # test_fills computes every fill with numpy on tiny images; test_preset's runs were 15 min a pass
            "tests/test_fills.py",
            "tests/test_mutation_kills.py",
            "tests/test_engine.py::test_partner_pairing_is_seeded_derangement",
            "tests/test_engine.py::test_mean_and_noise_fills_match_data_statistics",
            "tests/test_preset.py::test_gaussian_fill_statistics_and_seeding",
        ],
    ),
    "coalitions": (
        "iaside/coalitions.py",
        [
            "tests/test_preset.py",
            "tests/test_mutation_kills.py",
            "tests/test_engine.py::test_paper_preset_matches_authors_recipe",
            "tests/test_engine.py::test_engine_packing_is_exact",
        ],
    ),
    "summary": (
        "iaside/summary.py",
        [
            "tests/test_summary.py",
            "tests/test_summary_reading.py",  # interpret(), score_range, total_estimate, bootstrap_draws
            "tests/test_mutation_kills.py",
            N + "test_bootstrap_interval_is_at_the_stated_level",
            N + "test_bootstrap_resamples_are_means_of_resampled_images",
        ],
    ),
    "metrics": (
        "iaside/robustness/metrics.py",
        [
            "tests/test_corruption_metrics.py",
            N + "test_corruption_error_sums_every_severity",
            N + "test_mce_is_relative_to_the_named_reference_not_the_first_model",
            R + "test_ce_and_mce_on_a_hand_made_table",
            R + "test_report_reference_round_trip_and_csv",
            "tests/test_mutation_kills.py",  # (top1_error: checked there, without evaluating a model, 8 s)
        ],
    ),
    "correlation": (
        "iaside/robustness/correlation.py",
        [
            "tests/test_partial_correlation.py",
            N + "test_correlations_with_ties_and_both_signs",
            R + "test_correlations_match_scipy_on_known_data",
            R + "test_few_models_get_exact_permutation_p_values",
            R + "test_bootstrap_statistics_equal_scipy_on_resamples_with_ties",
            R + "test_correlation_with_too_few_models_is_undefined",
            "tests/test_external.py::test_partial_correlation_equals_the_residual_route_and_the_t_test",
            "tests/test_external.py::test_a_correlation_carried_by_clean_accuracy_vanishes_when_it_is_held_fixed",
            "tests/test_mutation_kills.py",
        ],
    ),
    "snr": (
        "iaside/robustness/snr.py",
        [
            "tests/test_snr.py",  # small images; the end-to-end command and 64×64 studies are left out (2-3 s each)
            N + "test_ring_centres_are_the_middle_of_each_ring",
            N + "test_snr_families_pool_every_member_at_every_severity_and_refit",
            R + "test_snr_of_a_perturbation_confined_to_one_band_is_infinite_elsewhere",
            R + "test_fit_line_recovers_an_exponential_decay",
            "tests/test_mutation_kills.py::test_snr_files_hold_every_number_and_load_back",
        ],
    ),
    "result": (
        "iaside/result.py",
        ["tests/test_result.py"],  # hand-made results: no model, no run
    ),
    # store: hand-made Results, no model run (test_store.py's tests run explain, about 1 s each,
    # and two of them wait for real locks); the lock retry is checked with a fake clock
    "store": ("iaside/store.py", ["tests/test_store_direct.py"]),
}
T = "tests/test_mutation_kills.py"
DATA_FILES = [
    "tests/test_data_files.py",
    "tests/test_data.py",
    N + "test_sorted_labels_order_folders_as_strings_like_imagefolder",
    "--deselect",
    "tests/test_data.py::test_samples_photos",
]
MODULES.update(
    {
        # the image-folder part of data/, one module per file; the real samples:photos test (3 s:
        # it imports scikit-image and scikit-learn) is left out: test_data_files reads stand-ins
        "datasets": ("iaside/data/datasets.py", DATA_FILES),
        "scan": ("iaside/data/scan.py", DATA_FILES),
        "labels": ("iaside/data/labels.py", DATA_FILES),
        "samples": ("iaside/data/samples.py", DATA_FILES),
        # arrays and transforms: their own fast files (the explain() tests of test_inputs/test_data
        # run past mutmut's 15x limit under mutated conversions)
        "transforms": ("iaside/data/transforms.py", ["tests/test_transforms.py"]),
        "arrays": ("iaside/data/arrays.py", ["tests/test_arrays.py"]),
        # a user's in-memory data read as ImageItems: one fast file for the four (no engine runs)
        "user_data": ("iaside/data/user_data.py", ["tests/test_user_data.py"]),
        "inputs": ("iaside/data/inputs.py", ["tests/test_user_data.py"]),
        "tensors": ("iaside/data/tensors.py", ["tests/test_user_data.py"]),
        "resolve": ("iaside/data/resolve.py", ["tests/test_user_data.py"]),
        "report_numbers": (
            "iaside/report/[mr]*.py",  # markup.py (intervals, number lists) and run_section.py (key numbers, band table)
            # hand-made results: the key numbers, the band table, intervals and number lists, whole; the
            # end-to-end checks (test_numbers' html tests, test_views) run explain per mutant: too slow here
            ["tests/test_result.py", T],
        ),
    }
)
# the estimators: tests/test_estimators.py (tiny games, no model: about 1 s) and the estimator
# tests of test_mutation_kills but its 4000-resample bootstrap (test_estimators has a smaller one);
# one module per file (base holds the package's __init__ too), so each fits in minutes
E = [
    "tests/test_estimators.py",
    *(
        T + "::" + t
        for t in (
            "test_default_budgets_follow_their_documented_rules",
            "test_kernel_plans_spend_their_budget_and_two_bands_are_exact",
            "test_permutation_standard_error_is_the_spread_of_the_antithetic_pairs",
            "test_shared_estimators_report_the_standard_error_of_their_own_seeded_draw",
            "test_per_image_estimators_report_the_standard_error_over_images",
            "test_kernel_shap_with_one_band_is_refused_in_one_line",
        )
    ),
]
MODULES.update(
    {
        "estimators_base": ("iaside/estimators/[_b]*.py", E),  # __init__.py and base.py
        "estimators_exact": ("iaside/estimators/exact.py", E),
        "estimators_kernel": ("iaside/estimators/kernel.py", E),
        "estimators_permutation": ("iaside/estimators/permutation.py", E),
    }
)
FUNCTIONS: dict[str, list[str]] = {
    # modules restricted to the functions that compute or format numbers (mutmut name patterns)
    "report_numbers": [f"iaside.report.markup.x_{f}__mutmut_*" for f in ("_interval", "_numbers")]
    + [f"iaside.report.run_section.x_{f}__mutmut_*" for f in ("_key_numbers", "band_table_html")],
}
KILLED, TIMEOUT, SURVIVED, NO_TESTS = "killed", "timeout", "survived", "no tests"


def prepare(module: str, workdir: Path) -> Path:
    dst = workdir / module
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(
        ROOT,
        dst,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "mutants", "runs", "__pycache__", ".pytest_cache", ".hypothesis", "*.pyc"
        ),
    )
    write_config(module, dst)
    return dst


def write_config(module: str, dst: Path) -> None:
    """The [mutmut] section: mutate only the module's file, run only its tests (``MODULES``)."""
    path, tests = MODULES[module]
    lines = ["[mutmut]", "source_paths = iaside", f"only_mutate = {path}", "pytest_add_cli_args_test_selection ="] + [
        f"    {t}" for t in tests
    ]
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider", "process_isolation = forkserver", ""]
    (dst / "setup.cfg").write_text("\n".join(lines))


def _status(dst: Path, env: dict, module: str) -> dict[str, str]:
    listing = subprocess.run(
        [str(BIN / "mutmut"), "results", "--all", "true"], cwd=dst, env=env, capture_output=True, text=True
    ).stdout
    status = dict(re.findall(r"^\s*(\S+__mutmut_\d+): (.+?)\s*$", listing, re.M))
    wanted = FUNCTIONS.get(module)
    return {k: v for k, v in status.items() if not wanted or any(fnmatch.fnmatchcase(k, p) for p in wanted)}


def run_module(module: str, workdir: Path, timeout_s: float, recheck: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    dst, names = workdir / module, []
    if recheck and (dst / "mutants").is_dir():  # the same mutants against the current tests
        names = [k for k, v in _status(dst, env, module).items() if v in (SURVIVED, NO_TESTS, "not checked")]
        for target in (dst / "tests", dst / "mutants" / "tests"):
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ROOT / "tests", target, ignore=shutil.ignore_patterns("__pycache__"))
        (dst / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)  # new tests: collect coverage again
        write_config(module, dst)  # the module's current test selection
        for meta_path in (dst / "mutants").glob(MODULES[module][0] + ".meta"):  # forget their verdicts
            meta = json.loads(meta_path.read_text())  # (or mutmut keeps them); a module may be a glob
            for name in names:
                if name in meta["exit_code_by_key"]:
                    meta["exit_code_by_key"][name] = None
            meta_path.write_text(json.dumps(meta))
    else:
        dst = prepare(module, workdir)
        names = FUNCTIONS.get(module, [])
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(dst / ".hypothesis")
    t0 = time.time()
    with open(dst / "mutmut-run.log", "a" if recheck else "w") as log:
        try:
            code = subprocess.run(
                [str(BIN / "mutmut"), "run", "--max-children", "1", *names],
                cwd=dst,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
            ).returncode
        except subprocess.TimeoutExpired:
            code = "time limit"
    seconds = time.time() - t0
    status = _status(dst, env, module)
    counts = collections.Counter(status.values())
    return {
        "module": module,
        "file": MODULES[module][0],
        "code": code,
        "seconds": seconds,
        "counts": counts,
        "survivors": sorted(k for k, v in status.items() if v == SURVIVED),
        "unreached": sorted(k for k, v in status.items() if v == NO_TESTS),
    }


def row(r: dict) -> str:
    c = r["counts"]
    total = sum(c.values())
    caught = c[KILLED] + c[TIMEOUT]
    judged = total - c["not checked"]
    score = f"{100 * caught / judged:.1f} %" if judged else "-"
    other = {k: v for k, v in c.items() if k not in (KILLED, TIMEOUT, SURVIVED, NO_TESTS)}
    note = "" if r["code"] == 0 else f" (mutmut exit {r['code']})"
    return (
        f"| {r['module']} | {total} | {c[KILLED]} | {c[TIMEOUT]} | {c[SURVIVED]} | {c[NO_TESTS]} | "
        f"{', '.join(f'{k} {v}' for k, v in other.items()) or '-'} | {score} | {r['seconds'] / 60:.1f} min{note} |"
    )


HEAD = (
    "| module | mutants | killed | timeout | survived | no tests | other | score | time |\n"
    "|---|---:|---:|---:|---:|---:|---|---:|---:|"
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", default=list(MODULES), help=f"any of {', '.join(MODULES)} (default all)")
    ap.add_argument("--timeout-s", type=float, default=3600, help="give up on one module after this long")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/iaside-mutation"))
    ap.add_argument(
        "--recheck",
        action="store_true",
        help="rerun only the survivors of an earlier run in WORKDIR against the current tests (the "
        "earlier run's copy of the code is kept: when the library changed since, a current test that "
        "needs the change fails on the copy and mutmut stops; run the module afresh instead)",
    )
    args = ap.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        ap.error(f"unknown module(s) {unknown}; choose from {', '.join(MODULES)}")
    if not (BIN / "mutmut").exists():
        print(f"mutmut is not installed next to {sys.executable}: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(HEAD, flush=True)
    results = []
    for module in args.modules:  # one at a time, one worker each
        results.append(run_module(module, args.workdir, args.timeout_s, args.recheck))
        print(row(results[-1]), flush=True)
    text = [HEAD, *map(row, results), ""]
    for r in results:
        for kind in ("survivors", "unreached"):
            if r[kind]:
                text.append(f"{r['module']} {kind}: " + ", ".join(n.split(".")[-1] for n in r[kind]))
    (args.workdir / "mutation.md").write_text("\n".join(text) + "\n")
    print(f"table and survivors: {args.workdir / 'mutation.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
