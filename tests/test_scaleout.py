"""Shards, merge, torchrun, early stopping and the permutation estimator."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import iaside
from iaside.api import shard_indices
from iaside.cli import main
from iaside.engine import EngineState
from iaside.errors import IasideError
from iaside.game import (
    exact_shapley, permutation_matrix, permutation_plan, permutation_standard_error,
)

from conftest import TINY_ARGS as TINY
from conftest import tiny_cnn





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
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "iaside",
         *args, "--out", str(tmp_path / "two")],
        capture_output=True, text=True, env=env, timeout=240,
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
    approx = iaside.explain(model, x, bands=8, show_progress=False, n_bootstrap=0, estimator="permutation",
                            permutations=64)
    se = np.asarray(approx.estimator["phi_se"])
    assert approx.estimator["passes_per_image"] < 256 and approx.coalitions.shape[0] < 256
    assert np.all(np.abs(approx.phi.value - exact.phi.value) < 5 * se + 1e-9)
    assert abs(approx.phi.value.sum() - exact.phi.value.sum()) < 1e-6  # efficiency: same v(N) − v(∅)
