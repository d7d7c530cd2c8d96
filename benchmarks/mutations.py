"""Hand-made mutants: the suite must fail when a number is wrong (docs/proofs.md §6).

    python benchmarks/mutations.py [all|core|numbers|NAME,NAME...] [pytest args...]

Copies the repository to /tmp/mutant-NAME, applies one edit, checks that the copy's package is
the one imported, runs the tests there and lists the failing ones (full logs in /tmp/mutation/).
``core`` are the engine mutants (whole default suite unless pytest args are given); ``numbers``
are the one-line mistakes an audit found surviving outside the core, each run (unless pytest
args are given) on the tests ``NUMBER_TESTS`` names as built to catch it. ``benchmarks/mutation.py`` is the
systematic, per-module run with mutmut.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
MUTANTS = {
    "baseline": [],
    "swap_bands": [
        (
            "iaside/spectral.py",
            'def band_masks(h: int, w: int, n_bands: int, partition: str = "linf") -> torch.Tensor:',
            'def band_masks(h: int, w: int, n_bands: int, partition: str = "linf") -> torch.Tensor:\n'
            "    masks = _true_band_masks(h, w, n_bands, partition)\n"
            "    return masks[[1, 0, *range(2, n_bands)]] if n_bands >= 2 else masks  # MUTANT: rows 0 and 1 swapped\n\n\n"
            'def _true_band_masks(h: int, w: int, n_bands: int, partition: str = "linf") -> torch.Tensor:',
        )
    ],
    "no_weight_norm": [
        (
            "iaside/game.py",
            "return factorial(size) * factorial(n_players - size - 1) / factorial(n_players)",
            "return factorial(size) * factorial(n_players - size - 1)  # MUTANT: no / M!",
        )
    ],
    "reversed_bits": [
        (
            "iaside/engine/loop.py",
            "self.bits = torch.from_numpy(self.bits_np).to(self.device, torch.float32)",
            "self.bits = torch.from_numpy(self.bits_np[:, ::-1].copy()).to(self.device, torch.float32)  # MUTANT",
        )
    ],
    "partner_is_self": [
        (
            "iaside/fills.py",
            '            raise ValueError("PartnerFill needs the partner images")\n        return partner',
            '            raise ValueError("PartnerFill needs the partner images")\n        return x  # MUTANT',
        )
    ],
    "paper_empty_kept": [("iaside/coalitions.py", "            images[empty] = 0.0", "            pass  # MUTANT")],
    "top1_not_label": [
        ("iaside/engine/loop.py", "y = torch.where(labels == PREDICTED, top1, labels)", "y = top1  # MUTANT")
    ],
    "sid_no_shift": [
        ("iaside/summary.py", "psi = phi - phi.min(axis=-1, keepdims=True)", "psi = np.abs(phi)  # MUTANT")
    ],
}

NUMBERS = {
    "ci_level_90": [("iaside/config.py", "    confidence: float = 0.95", "    confidence: float = 0.90  # MUTANT")],
    "ci_alpha_one_tail": [
        (
            "iaside/summary.py",
            "    alpha = (1.0 - confidence) / 2\n    if n_bootstrap > 0",
            "    alpha = 1.0 - confidence  # MUTANT\n    if n_bootstrap > 0",
        )
    ],
    "per_class_by_top1": [
        (
            "iaside/api.py",
            "phi_per_image,\n        state.label[done],\n        n_bootstrap=config.n_bootstrap",
            "phi_per_image,\n        state.clean_top1[done],\n        n_bootstrap=config.n_bootstrap",
        )
    ],
    "ce_drop_last_severity": [
        (
            "iaside/robustness/metrics.py",
            "model_sum, reference_sum = errors.sum(axis=1), reference.sum(axis=1)",
            "model_sum, reference_sum = errors[:, :-1].sum(axis=1), reference[:, :-1].sum(axis=1)",
        )
    ],
    "mce_first_model": [
        (
            "iaside/robustness/compare.py",
            "ref_report = reports[names.index(reference)]",
            "ref_report = reports[0]  # MUTANT",
        )
    ],
    "report_phi_ci_is_sid": [
        (
            "iaside/report/run_section.py",
            'f"[{r.phi.low[i]:+.4f}, {r.phi.high[i]:+.4f}]"',
            'f"[{r.sid.low[i]:+.4f}, {r.sid.high[i]:+.4f}]"',
        )
    ],
    "low_share_from_top": [
        (
            "iaside/result.py",
            "return float(np.sum(np.asarray(self.sid.value)[:n_low]))",
            "return float(np.sum(np.asarray(self.sid.value)[-n_low:]))",
        )
    ],
    "snr_family_last_member": [
        (
            "iaside/robustness/snr.py",
            "band = np.mean([c.band_db for c in members], axis=0)",
            "band = members[-1].band_db  # MUTANT",
        )
    ],
    "snr_ring_centres_left_edge": [
        (
            "iaside/robustness/snr.py",
            "return (np.arange(n_rings) + 0.5) / n_rings",
            "return np.arange(n_rings) / n_rings  # MUTANT",
        )
    ],
    "snr_pooled_fit_on_ring_index": [
        (
            "iaside/robustness/snr.py",
            'r = ring_centres(self.n_rings)\n        fits = {\n            "band": fit_line(np.arange(self.n_bands), band),\n            "grid_exponential": fit_line(r, grid),',
            'r = ring_centres(self.n_rings)\n        fits = {\n            "band": fit_line(np.arange(self.n_bands), band),\n            "grid_exponential": fit_line(np.arange(self.n_rings), grid),  # MUTANT',
        )
    ],
    "sorted_labels_numeric": [
        (
            "iaside/data/datasets.py",
            "index, own_names = {c: i for i, c in enumerate(folders)}, folders",
            "folders = sorted(folders, key=lambda c: (len(c), c))  # MUTANT\n"
            "        index, own_names = {c: i for i, c in enumerate(folders)}, folders",
        )
    ],
    "leaderboard_signed_ascending": [
        ("iaside/store.py", "else r[by], reverse=True)", "else r[by], reverse=by == 'score')  # MUTANT")
    ],
    "merge_skips_of_first_shard": [
        (
            "iaside/engine/state.py",
            '    skipped: np.ndarray = _per_image("max")',
            '    skipped: np.ndarray = _per_image("sum")  # MUTANT: skips added',
        )
    ],
    "correlation_ci_one_tail": [
        (
            "iaside/robustness/correlation.py",
            "            alpha = (1.0 - confidence) / 2\n            low, high = (float(v) for v in np.quantile(valid, [alpha, 1 - alpha]))\n"
            "    return Correlation(method,",
            "            alpha = 1.0 - confidence  # MUTANT\n            low, high = (float(v) for v in np.quantile(valid, [alpha, 1 - alpha]))\n"
            "    return Correlation(method,",
        )
    ],
    "kendall_tau_a": [
        (
            "iaside/robustness/correlation.py",
            "den = np.sqrt((sx * sx).sum(axis=(1, 2)) * (sy * sy).sum(axis=(1, 2)))",
            "den = np.full(num.shape, float(x.shape[1] * (x.shape[1] - 1)))  # MUTANT",
        )
    ],
}
MUTANTS.update(NUMBERS)
N = "tests/test_numbers.py::"
NUMBER_TESTS = {  # the tests built to catch each mutant (all in the default suite)
    "ci_level_90": [
        N + "test_a_run_reports_95_percent_intervals_of_its_own_resamples",
        N + "test_every_number_of_show_is_result_json",
    ],
    "ci_alpha_one_tail": [
        N + "test_bootstrap_interval_is_at_the_stated_level",
        N + "test_a_run_reports_95_percent_intervals_of_its_own_resamples",
    ],
    "per_class_by_top1": [N + "test_per_class_views_group_by_the_label_not_the_top1"],
    "ce_drop_last_severity": [
        N + "test_corruption_error_sums_every_severity",
        "tests/test_robustness.py::test_ce_and_mce_on_a_hand_made_table",
    ],
    "mce_first_model": [
        N + "test_mce_is_relative_to_the_named_reference_not_the_first_model",
        N + "test_compare_command_puts_every_model_on_the_named_reference",
    ],
    "report_phi_ci_is_sid": [N + "test_every_number_of_the_html_report_is_result_json"],
    "low_share_from_top": [
        N + "test_every_number_of_the_html_report_is_result_json",
        N + "test_every_number_of_show_is_result_json",
    ],
    "snr_family_last_member": [N + "test_snr_families_pool_every_member_at_every_severity_and_refit"],
    "snr_ring_centres_left_edge": [
        N + "test_ring_centres_are_the_middle_of_each_ring",
        N + "test_snr_families_pool_every_member_at_every_severity_and_refit",
    ],
    "snr_pooled_fit_on_ring_index": [N + "test_snr_families_pool_every_member_at_every_severity_and_refit"],
    "sorted_labels_numeric": [N + "test_sorted_labels_order_folders_as_strings_like_imagefolder"],
    "leaderboard_signed_ascending": [
        N + "test_leaderboard_order_for_every_by",
        "tests/test_store.py::test_leaderboard_ranks_models_within_one_configuration",
    ],
    "merge_skips_of_first_shard": [
        N + "test_merge_keeps_the_skips_of_every_shard",
        N + "test_merged_shards_list_each_skipped_image_once",
    ],
    "correlation_ci_one_tail": [N + "test_correlations_with_ties_and_both_signs"],
    "kendall_tau_a": [N + "test_correlations_with_ties_and_both_signs"],
}


def copy(dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    subprocess.run(
        f"cd {ROOT} && tar --exclude=./.venv --exclude=./.hypothesis --exclude=./.pytest_cache --exclude='__pycache__' -cf - . | tar -xf - -C {dst}",
        shell=True,
        check=True,
    )


def main(names, test_args):
    os.makedirs("/tmp/mutation", exist_ok=True)
    for name in names:
        args = test_args or NUMBER_TESTS.get(name, [])
        dst = f"/tmp/mutant-{name}"
        copy(dst)
        for path, old, new in MUTANTS[name]:
            p = os.path.join(dst, path)
            src = Path(p).read_text()
            assert src.count(old) == 1, (name, path, src.count(old))
            Path(p).write_text(src.replace(old, new))
        env = dict(os.environ, PYTHONPATH=dst, HYPOTHESIS_STORAGE_DIRECTORY=f"{dst}/.hypothesis")
        where = subprocess.run(
            [PY, "-c", "import iaside; print(iaside.__file__)"], cwd=dst, env=env, capture_output=True, text=True
        ).stdout.strip()
        assert where.startswith(dst), where
        t0 = time.time()
        out = subprocess.run(
            [PY, "-m", "pytest", "-q", "--tb=line", "-rf", "-p", "no:cacheprovider", *args],
            cwd=dst,
            env=env,
            capture_output=True,
            text=True,
        )
        failed = sorted(set(re.findall(r"^FAILED (\S+)", out.stdout, re.M)))
        summary = out.stdout.strip().splitlines()[-1]
        Path(f"/tmp/mutation/{name}.txt").write_text(out.stdout + out.stderr)
        print(f"## {name}  (imported {where}; {time.time() - t0:.0f} s) {summary}", flush=True)
        for f in failed:
            print("   ", f, flush=True)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    groups = {"all": list(MUTANTS), "numbers": list(NUMBERS), "core": [m for m in MUTANTS if m not in NUMBERS]}
    names = groups.get(which) or which.split(",")
    main(names, sys.argv[2:])
