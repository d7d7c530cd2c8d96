"""Shards, merge, torchrun, early stopping and the sampling estimators (permutation, kernel)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import TINY_ARGS as TINY
from conftest import tiny_cnn

import iaside
from iaside.cli import main
from iaside.distributed import shard_indices
from iaside.engine import EngineState
from iaside.errors import IasideError
from iaside.estimators import estimator_from_config
from iaside.estimators.kernel import kernel_matrix, kernel_plan, kernel_standard_error
from iaside.estimators.permutation import (
    PermutationEstimator,
    permutation_matrix,
    permutation_plan,
    permutation_standard_error,
    permutation_walk,
)
from iaside.game import exact_shapley, full_coalition_masks, masks_to_bits


def test_shards_cover_the_data_once():
    blocks = [shard_indices(23, 5, (i, 4)) for i in range(4)]
    assert sorted(np.concatenate(blocks).tolist()) == list(range(23))
    with pytest.raises(IasideError, match="3/3"):
        shard_indices(23, 5, (3, 3))


def test_shards_merge_to_the_single_run(tmp_path, scripted, image_folder, capsys):
    base = ["run", "--model", f"torchscript:{scripted}", "--data", str(image_folder), *TINY]
    assert main(base + ["--out", str(tmp_path / "whole")]) == 0
    for i in range(3):
        assert main(base + ["--shard", f"{i}/3", "--out", str(tmp_path / f"s{i}")]) == 0
    assert main(["merge", *(str(tmp_path / f"s{i}") for i in range(3)), "--out", str(tmp_path / "merged")]) == 0
    whole = EngineState.load(tmp_path / "whole" / "state.npz")
    merged = EngineState.load(tmp_path / "merged" / "state.npz")
    assert merged.complete
    assert np.allclose(merged.logp_nats.sum(0), whole.logp_nats.sum(0), atol=1e-9)  # identical coalition sums
    a = json.loads((tmp_path / "whole" / "result.json").read_text())
    b = json.loads((tmp_path / "merged" / "result.json").read_text())
    assert np.allclose(a["phi"]["value"], b["phi"]["value"], atol=1e-12)
    # a shard of another configuration is refused, naming the difference
    assert main(base + ["--fill", "zero", "--shard", "0/3", "--out", str(tmp_path / "other")]) == 0
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "s1"), str(tmp_path / "other"), "--out", str(tmp_path / "bad")]) == 2
    assert "fill" in capsys.readouterr().err
    # missing shards are refused
    assert main(["merge", str(tmp_path / "s0"), "--out", str(tmp_path / "bad2")]) == 2


def test_torchrun_two_gloo_processes_equal_one(tmp_path, scripted, image_folder):
    args = ["run", "--model", f"torchscript:{scripted}", "--data", str(image_folder), *TINY]
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "iaside",
            *args,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    one = json.loads((tmp_path / "one" / "result.json").read_text())
    two = json.loads((tmp_path / "two" / "result.json").read_text())
    assert two["meta"]["world_size"] == 2
    assert np.allclose(one["v_nats"], two["v_nats"], atol=1e-6)
    assert np.allclose(one["phi"]["value"], two["phi"]["value"], atol=1e-6)


def test_target_ci_stops_early_on_a_random_prefix():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 3, 32, 32, generator=g)
    model = tiny_cnn()
    full = iaside.explain(model, x, bands=3, show_progress=False, n_bootstrap=200)
    early = iaside.explain(model, x, bands=3, show_progress=False, n_bootstrap=200, target_ci=1.0)
    assert early.data["n_images"] < 60 and early.data["n_images_available"] == 60
    assert early.meta["target_ci"] == 1.0
    strict = iaside.explain(model, x, bands=3, show_progress=False, n_bootstrap=200, target_ci=1e-9)
    assert strict.data["n_images"] == 60 and np.allclose(strict.phi.value, full.phi.value)


def test_permutation_estimator_is_unbiased_on_a_toy_game():
    m = 6
    rng = np.random.default_rng(0)
    v = rng.normal(size=2**m) + np.arange(2**m) / 8
    exact = exact_shapley(v)
    estimates, errors = [], []
    for seed in range(200):
        masks, perms = permutation_plan(m, 8, seed)
        estimates.append(v[masks] @ permutation_matrix(masks, perms))
        errors.append(permutation_standard_error(v[masks], masks, perms))
        assert masks[0] == 0 and masks[-1] == 2**m - 1
        assert estimates[-1].sum() == pytest.approx(v[-1] - v[0])  # efficient for every draw
    estimates = np.array(estimates)
    # the mean of 200 independent estimates is within 4 of its standard errors of the truth
    se_of_mean = estimates.std(0, ddof=1) / np.sqrt(len(estimates))
    assert np.all(np.abs(estimates.mean(0) - exact) < 4 * se_of_mean)
    # the reported standard error matches the spread across draws (within a factor of 1.5)
    ratio = np.mean(errors, axis=0) / estimates.std(0, ddof=1)
    assert np.all((ratio > 0.6) & (ratio < 1.5)), ratio


def test_permutation_estimator_end_to_end_close_to_exact():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g)
    model = tiny_cnn()
    exact = iaside.explain(model, x, bands=8, show_progress=False, n_bootstrap=0)
    approx = iaside.explain(
        model, x, bands=8, show_progress=False, n_bootstrap=0, estimator="permutation", permutations=64, draws="shared"
    )
    se = np.asarray(approx.estimator["phi_se"])
    assert approx.estimator["passes_per_image"] < 256 and approx.coalitions.shape[0] < 256
    assert np.all(np.abs(approx.phi.value - exact.phi.value) < 5 * se + 1e-9)
    assert abs(approx.phi.value.sum() - exact.phi.value.sum()) < 1e-6  # efficiency: same v(N) − v(∅)


def smooth_game(m: int, seed: int = 0) -> np.ndarray:
    """A game with main effects, pairwise and higher-order interactions, (2**M,)."""
    rng = np.random.default_rng(seed)
    bits = masks_to_bits(full_coalition_masks(m), m).astype(float)
    pairs = rng.normal(size=(m, m)) / m
    return (
        np.tanh(bits @ rng.normal(size=m) / 2)
        + np.einsum("ki,ij,kj->k", bits, pairs, bits)
        + 0.3 * np.sin(bits @ rng.normal(size=m))
    )


@pytest.mark.parametrize("m", [3, 5, 8])
def test_kernel_estimator_is_exact_with_every_coalition_and_on_additive_games(m):
    v = smooth_game(m)
    plan = kernel_plan(m, 2**m, seed=0)
    assert len(plan.draws) == 0 and np.array_equal(plan.masks, full_coalition_masks(m))
    assert np.allclose(v[plan.masks] @ kernel_matrix(plan), exact_shapley(v), atol=1e-12)
    # an additive game is recovered exactly from the smallest budget (sizes 1 and M−1 only)
    a = np.random.default_rng(m).normal(size=m)
    additive = masks_to_bits(full_coalition_masks(m), m) @ a + 3.0
    small = kernel_plan(m, 2 * m + 2, seed=1)
    assert len(small.masks) == 2 * m + 2
    assert np.allclose(additive[small.masks] @ kernel_matrix(small), a, atol=1e-12)
    with pytest.raises(ValueError, match="at least"):
        kernel_plan(m, min(2 * m + 1, 2**m - 1))
    # one drawn pair has no spread to measure: the standard error is unknown, not 0
    one_pair = kernel_plan(m, 2 * m + 4, seed=0)
    if len(one_pair.draws) == 2:
        assert np.isnan(kernel_standard_error(v[one_pair.masks], one_pair)).all()


def test_kernel_plan_for_large_m_never_builds_every_coalition():
    plan = kernel_plan(30, 600, seed=0)  # 2**30 coalitions: enumerating them would need ~30 GB
    assert len(plan.masks) in (599, 600) and plan.enumerated_below == 2  # sizes 1 and 29 (60), then draws
    assert kernel_matrix(plan).shape == (len(plan.masks), 30)


def test_kernel_estimator_converges_and_reports_its_own_error():
    m = 10
    v = smooth_game(m)
    exact = exact_shapley(v)
    rmse, ratio = {}, {}
    for budget in (40, 400):
        estimates, errors = [], []
        for seed in range(60):
            plan = kernel_plan(m, budget, seed)
            assert plan.masks[0] == 0 and plan.masks[-1] == 2**m - 1 and len(np.unique(plan.masks)) == len(plan.masks)
            assert budget - 1 <= len(plan.masks) <= budget
            estimates.append(v[plan.masks] @ kernel_matrix(plan))
            assert estimates[-1].sum() == pytest.approx(v[-1] - v[0])  # efficient for every draw
            errors.append(kernel_standard_error(v[plan.masks], plan, n_resamples=100, seed=seed))
        estimates = np.array(estimates)
        rmse[budget] = np.sqrt(((estimates - exact) ** 2).mean())
        ratio[budget] = np.mean(errors, axis=0) / estimates.std(0, ddof=1)
    assert rmse[400] < rmse[40] / 2.5, rmse
    assert np.all((ratio[400] > 0.6) & (ratio[400] < 1.5)), ratio[400]


def test_kernel_estimator_end_to_end_close_to_exact(tmp_path, scripted, image_folder):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g)
    model = tiny_cnn()
    exact = iaside.explain(model, x, bands=8, show_progress=False, n_bootstrap=0)
    approx = iaside.explain(
        model, x, bands=8, show_progress=False, n_bootstrap=0, estimator="kernel", coalitions=64, draws="shared"
    )
    se = np.asarray(approx.estimator["phi_se"])
    assert approx.estimator["coalitions"] == approx.coalitions.shape[0] <= 64
    assert approx.estimator["enumerated_sizes"] == [1, 7]  # 16 coalitions, then 28 + 28 do not fit in 62
    assert np.all(np.abs(approx.phi.value - exact.phi.value) < 5 * se + 1e-9)
    assert abs(approx.phi.value.sum() - exact.phi.value.sum()) < 1e-6
    out = tmp_path / "kernel"
    args = [
        "run",
        "--model",
        f"torchscript:{scripted}",
        "--data",
        str(image_folder),
        *TINY,
        "--bands",
        "5",
        "--estimator",
        "kernel",
        "--coalitions",
        "20",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert json.loads((out / "result.json").read_text())["estimator"]["coalitions"] in (19, 20)  # of 32
    assert main(args[:-4] + ["--coalitions", "3", "--out", str(tmp_path / "bad")]) == 2


# -- per-image draws ---------------------------------------------------------------------------
def test_permutation_walk_is_the_permutation_estimate_with_a_fixed_count():
    m = 6
    v = smooth_game(m, seed=2)
    for n_perm in (2, 8):
        for seed in (0, (3, 17)):
            masks, mat = permutation_walk(m, n_perm, seed)
            assert len(masks) == 2 + n_perm * (m - 1) and masks[0] == 0 and masks[-1] == 2**m - 1
            plan_masks, perms = permutation_plan(m, n_perm, seed)
            assert np.allclose(v[masks] @ mat, v[plan_masks] @ permutation_matrix(plan_masks, perms), atol=1e-12)


def test_per_image_draws_evaluate_each_images_own_coalitions():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(30, 3, 32, 32, generator=g)
    model = tiny_cnn()
    exact = iaside.explain(model, x, bands=5, fill="zero", show_progress=False, n_bootstrap=0)
    approx = iaside.explain(
        model, x, bands=5, fill="zero", show_progress=False, n_bootstrap=200, estimator="permutation", permutations=2
    )
    plan = estimator_from_config(iaside.ExplainConfig.from_dict(approx.config))
    assert plan.per_image and approx.config["draws"] == "per-image"
    table = exact.per_image["logp_nats"]  # (N, 32): every coalition of every image
    index = approx.per_image["index"]
    drawn = [plan.masks(int(i)) for i in index]
    assert len({tuple(m) for m in drawn}) >= 20  # 30 images, 60 of the 5! = 120 orders each: mostly distinct draws
    # the engine evaluated each image on its own coalitions, and φ is each image's own estimate
    assert np.allclose(approx.per_image["logp_nats"], np.stack([table[i, m] for i, m in zip(index, drawn)]), atol=1e-5)
    want = np.stack([table[i, m] @ plan.shapley_map(int(i)) for i, m in zip(index, drawn)])
    assert np.allclose(approx.per_image["phi_per_image"], want, atol=1e-5)
    assert np.allclose(approx.phi.value, want.mean(0), atol=1e-5)
    # efficient per image; unbiased: the distance to exact on the same images is within 4 of the
    # draws' own standard error (their spread around each image's exact φ, not the images' spread)
    assert np.allclose(want.sum(1), table[index, -1] - table[index, 0], atol=1e-5)
    per_image_exact = exact.per_image["phi_per_image"][index]
    draw_se = (want - per_image_exact).std(0, ddof=1) / np.sqrt(len(index))
    assert np.all(np.abs(approx.phi.value - exact.phi.value) < 4 * draw_se)
    assert np.all(np.asarray(approx.estimator["phi_se"]) > draw_se)  # the reported error adds the images' spread
    assert approx.coalitions[0] == 0 and approx.coalitions[-1] == 31  # v_nats: coalitions common to all images
    assert np.isclose(approx.v_nats[0], table[:, 0].mean()) and np.isclose(approx.v_nats[-1], table[:, -1].mean())


def test_per_image_draws_are_unbiased_on_a_toy_game():
    """Per-image estimates of one game average to its Shapley values: the images' draws are independent."""
    m = 6
    v = smooth_game(m, seed=4)
    exact = exact_shapley(v)
    plan = PermutationEstimator(m, "per-image", 2, seed=0)
    est = plan.phi(np.stack([v[plan.masks(i)] for i in range(400)]), np.arange(400))
    se_of_mean = est.std(0, ddof=1) / np.sqrt(len(est))
    assert np.all(se_of_mean > 0)  # the draws differ
    assert np.all(np.abs(est.mean(0) - exact) < 4 * se_of_mean), est.mean(0) - exact
    # KernelSHAP draws are a regression, biased for small draws: their mean misses, so per-image kernel is refused
    kernel = np.array([v[p.masks] @ kernel_matrix(p) for p in (kernel_plan(m, 20, (0, i)) for i in range(400))])
    assert np.any(np.abs(kernel.mean(0) - exact) > 4 * kernel.std(0, ddof=1) / np.sqrt(len(kernel)))
    with pytest.raises(IasideError, match="--draws per-image needs --estimator permutation"):
        estimator_from_config(iaside.ExplainConfig.build(estimator="kernel", draws="per-image"))
    assert iaside.ExplainConfig.build(estimator="kernel").draws == "shared"
    assert iaside.ExplainConfig.build(estimator="permutation").draws == "per-image"


def test_per_image_shards_merge_to_the_single_run(tmp_path, scripted, image_folder):
    base = [
        "run",
        "--model",
        f"torchscript:{scripted}",
        "--data",
        str(image_folder),
        *TINY,
        "--bands",
        "5",
        "--estimator",
        "permutation",
        "--permutations",
        "2",
    ]
    assert main(base + ["--out", str(tmp_path / "whole")]) == 0
    for i in range(2):
        assert main(base + ["--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")]) == 0
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "merged")]) == 0
    a = json.loads((tmp_path / "whole" / "result.json").read_text())
    b = json.loads((tmp_path / "merged" / "result.json").read_text())
    assert a["estimator"]["draws"] == "per-image" and a["estimator"]["passes_per_image"] == 10
    assert np.allclose(a["phi"]["value"], b["phi"]["value"], atol=1e-9)


def test_run_folders_saved_before_per_image_draws_still_resume(tmp_path, scripted, image_folder, capsys):
    """A run.json written before ``draws`` existed resumes (exact), and its permutation default stays 32."""
    out = tmp_path / "old"
    base = ["run", "--model", f"torchscript:{scripted}", "--data", str(image_folder), *TINY, "--out", str(out)]
    assert main(base) == 0
    run = json.loads((out / "run.json").read_text())
    del run["identity"]["config"]["draws"]
    (out / "run.json").write_text(json.dumps(run))
    assert main(base) == 0, capsys.readouterr().err
    old = iaside.ExplainConfig.from_dict({"bands": 8, "estimator": "permutation", "permutations": None})
    assert old.permutations == 32 and old.draws == "shared"
    assert estimator_from_config(old).n_coalitions < 256 and not estimator_from_config(old).per_image
