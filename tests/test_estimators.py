"""The estimators (iaside/estimators/) against computations written here from their definitions:
which coalitions a plan holds, the Shapley kernel's weights by its formula, the constrained
KernelSHAP regression by a KKT solve, permutation estimates by walking the orders by hand,
standard errors by hand and the info records key by key. Tiny games and no model, so that the
`estimators_*` modules of benchmarks/mutation.py run fast (docs/proofs.md §6.1)."""

from __future__ import annotations

import warnings
from itertools import permutations
from math import comb, factorial

import numpy as np
import pytest

from iaside.config import ExplainConfig
from iaside.errors import IasideError
from iaside.estimators import ESTIMATORS, REGISTRY, estimator_from_config, resolve_budget
from iaside.estimators.base import Estimator, draw_rng
from iaside.estimators.exact import ExactEstimator
from iaside.estimators.kernel import (
    KernelEstimator,
    _size_mass,
    default_kernel_coalitions,
    kernel_matrix,
    kernel_plan,
    kernel_standard_error,
    kernel_weights,
)
from iaside.estimators.permutation import (
    PermutationEstimator,
    antithetic_permutations,
    default_permutations,
    permutation_matrix,
    permutation_plan,
    permutation_standard_error,
    permutation_walk,
    walk_masks,
)


def popcount(s) -> int:
    return bin(int(s)).count("1")


def random_game(m: int, seed: int = 0) -> np.ndarray:
    """v(S) for every bit mask S, (2**M,): no structure, so every coalition's value matters."""
    return np.random.default_rng(seed).normal(size=2**m)


def brute_shapley(v: np.ndarray, m: int) -> np.ndarray:
    """φ_i = Σ_{S ∌ i} |S|!(M−|S|−1)!/M! (v(S ∪ i) − v(S)), term by term."""
    phi = np.zeros(m)
    for i in range(m):
        for s in range(2**m):
            if not s >> i & 1:
                k = popcount(s)
                phi[i] += factorial(k) * factorial(m - k - 1) / factorial(m) * (v[s | 1 << i] - v[s])
    return phi


def marginal_estimate(v: np.ndarray, perms) -> np.ndarray:
    """Mean over the orders of v(before i, and i) − v(before i); v indexed by bit mask."""
    m = len(perms[0])
    phi = np.zeros(m)
    for perm in perms:
        before = 0
        for i in perm:
            phi[int(i)] += v[before | 1 << int(i)] - v[before]
            before |= 1 << int(i)
    return phi / len(perms)


def orders_of_walk(masks: np.ndarray, m: int) -> list[list[int]]:
    """The orders behind a permutation walk's masks: its M−1 proper prefixes per order, in turn."""
    inner = [int(s) for s in masks[1:-1]]
    assert len(inner) % (m - 1) == 0
    orders = []
    for p in range(len(inner) // (m - 1)):
        order, before = [], 0
        for s in inner[p * (m - 1) : (p + 1) * (m - 1)]:
            added = s ^ before
            assert s & before == before and popcount(added) == 1  # each prefix adds one band
            order.append(added.bit_length() - 1)
            before = s
        order.append(((2**m - 1) ^ before).bit_length() - 1)
        orders.append(order)
    return orders


def kernel_pi(m: int, k: int) -> float:
    """The Shapley kernel weight of one coalition of size k: (M−1)/(C(M,k)·k·(M−k))."""
    return (m - 1) / (comb(m, k) * k * (m - k))


def expected_enumerated_below(m: int, budget: int) -> int:
    """Sizes (1, M−1), (2, M−2), ... are enumerated whole while they fit in budget − 2."""
    left, low = min(budget, 2**m) - 2, 1
    for s in range(1, m // 2 + 1):
        n = comb(m, s) * (1 if 2 * s == m else 2)
        if n > left:
            break
        left, low = left - n, s + 1
    return low


def weights_by_formula(plan, draws=None) -> np.ndarray:
    """Enumerated coalitions carry their kernel weight; a drawn one the remaining sizes' total
    kernel mass times its share of the draws; the empty and grand ones 0."""
    m, low = plan.n_players, plan.enumerated_below
    draws = plan.draws if draws is None else draws
    rest = sum(kernel_pi(m, k) * comb(m, k) for k in range(low, m - low + 1))
    w = []
    for s in plan.masks.tolist():
        k = popcount(s)
        if k in (0, m):
            w.append(0.0)
        elif k < low or k > m - low:
            w.append(kernel_pi(m, k))
        else:
            w.append(rest * list(draws).count(s) / len(draws))
    return np.array(w)


def constrained_wls(values: np.ndarray, masks: np.ndarray, weights: np.ndarray, m: int) -> np.ndarray:
    """argmin Σ w(S)(v(S) − v(∅) − Σ_{i∈S} φ_i)² subject to Σφ = v(N) − v(∅), by its KKT system."""
    z = np.array([[s >> i & 1 for i in range(m)] for s in masks.tolist()], dtype=float)
    y = values - values[0]
    kkt = np.zeros((m + 1, m + 1))
    kkt[:m, :m] = 2 * z.T @ (weights[:, None] * z)
    kkt[:m, m] = kkt[m, :m] = 1.0
    rhs = np.concatenate([2 * z.T @ (weights * y), [values[-1] - values[0]]])
    return np.linalg.solve(kkt, rhs)[:m]


# ---------------------------------------------------------------- registry, budgets, config


def test_the_registry_names_three_estimators_and_refuses_others_saying_which():
    assert ESTIMATORS == ("exact", "kernel", "permutation")
    assert {name: cls.name for name, cls in REGISTRY.items()} == {e: e for e in ESTIMATORS}
    message = r"^--estimator 'shap' is not one of exact, kernel, permutation$"
    with pytest.raises(IasideError, match=message):
        estimator_from_config(ExplainConfig(bands=4, estimator="shap"))
    with pytest.raises(IasideError, match=message):
        resolve_budget(ExplainConfig(bands=4, estimator="shap"))


@pytest.mark.parametrize("m", range(1, 21))
def test_default_budgets_follow_their_documented_rules(m):
    """kernel: 10 % of 2**M, at most 1024, at least 2M + 2; permutation: the largest even P
    whose 2 + P(M − 1) coalitions fit in that (one band: the minimum, one antithetic pair);
    exact: 2**M. Integers, as the config stores them."""
    kernel = max(2 * m + 2, min(int(0.1 * 2**m), 1024))
    perms = 2 if m == 1 else max(p for p in range(2, 4000, 2) if 2 + p * (m - 1) <= kernel)
    assert type(default_kernel_coalitions(m)) is int and default_kernel_coalitions(m) == kernel
    assert type(default_permutations(m)) is int and default_permutations(m) == perms
    assert KernelEstimator.default_budget(m) == kernel and PermutationEstimator.default_budget(m) == perms
    assert ExactEstimator.default_budget(m) == 2**m


def test_resolve_budget_writes_the_default_and_keeps_what_is_given():
    exact = ExplainConfig(bands=5)
    assert resolve_budget(exact) is exact  # no budget field
    given = ExplainConfig(bands=6, estimator="kernel", coalitions=20)
    assert resolve_budget(given) is given
    for estimator, field, budget in [("kernel", "coalitions", 102), ("permutation", "permutations", 10)]:
        config = ExplainConfig(bands=10, estimator=estimator, seed=3)  # kernel: 10 % of 1024; 2 + 9·10 ≤ 102
        assert resolve_budget(config).to_dict() == {**config.to_dict(), field: budget}


def test_from_config_refuses_unknown_draws_and_per_image_draws_of_shared_estimators():
    with pytest.raises(IasideError, match=r"^--draws 'each' is not one of per-image, shared$"):
        estimator_from_config(ExplainConfig(bands=4, estimator="permutation", draws="each"))
    for name in ("exact", "kernel"):
        with pytest.raises(
            IasideError,
            match=rf"^--draws per-image needs --estimator permutation \({name} shares its coalitions between "
            r"images\); use --draws shared$",
        ):
            estimator_from_config(ExplainConfig(bands=4, estimator=name, draws="per-image"))
    per_image = estimator_from_config(ExplainConfig(bands=4, estimator="permutation", permutations=4))
    shared = estimator_from_config(ExplainConfig(bands=4, estimator="permutation", permutations=4, draws="shared"))
    assert per_image.per_image and not shared.per_image
    assert not estimator_from_config(ExplainConfig(bands=4, estimator="kernel", coalitions=12)).per_image
    # a constructed exact estimator with per-image draws still shares them: it draws nothing per image
    assert not ExactEstimator(3, "per-image", 8, 0).per_image


def test_a_given_budget_is_the_estimators_setting_and_a_bad_one_fails_before_any_work():
    kernel = estimator_from_config(ExplainConfig(bands=6, estimator="kernel", coalitions=20, seed=1))
    assert kernel.setting == 20 != default_kernel_coalitions(6) and kernel.n_coalitions in (19, 20)
    perm = estimator_from_config(ExplainConfig(bands=6, estimator="permutation", permutations=6, seed=1))
    assert perm.setting == 6 != default_permutations(6) and perm.n_coalitions == 2 + 6 * 5
    zero = estimator_from_config(ExplainConfig(bands=6, estimator="permutation", permutations=0))
    assert zero.setting == default_permutations(6)  # 0 reads as "not given"
    for p in (2, 4):
        assert PermutationEstimator._build(5, "per-image", p, 0).setting == p
    for p in (1, 3, 5):
        with pytest.raises(IasideError, match=rf"^--permutations must be an even number >= 2, got {p}$"):
            estimator_from_config(ExplainConfig(bands=5, estimator="permutation", permutations=p))
    with pytest.raises(IasideError, match=r"^--coalitions: KernelSHAP with 2 bands needs at least 4 coalitions"):
        estimator_from_config(ExplainConfig(bands=2, estimator="kernel", coalitions=3))


# ---------------------------------------------------------------- exact


def test_exact_estimator_is_every_coalition_with_the_shapley_map_up_to_16_bands():
    big = ExactEstimator._build(16, "per-image", None, 5)  # built, not drawn (2**16 coalitions)
    assert (big.n_bands, big.draws, big.setting, big.seed) == (16, "shared", 2**16, 5)
    for bands in (17, 20):
        with pytest.raises(
            IasideError,
            match=rf"^exact I-ASIDE with {bands} bands needs 2\*\*{bands} passes per image; "
            r"use --estimator kernel \(or permutation\)$",
        ):
            estimator_from_config(ExplainConfig(bands=bands))
    est = estimator_from_config(ExplainConfig(bands=3, seed=2))
    assert est.masks().tolist() == list(range(8)) and est.n_coalitions == 8 and est.setting == 8
    assert est.bits().tolist() == [[bool(s >> i & 1) for i in range(3)] for s in range(8)]
    logp = np.stack([random_game(3, seed) for seed in range(4)])
    np.testing.assert_allclose(est.phi(logp, np.arange(4)), [brute_shapley(v, 3) for v in logp], atol=1e-12)
    masks, means = est.common_values(logp, np.arange(4))
    assert masks.tolist() == list(range(8)) and np.allclose(means, logp.mean(axis=0))
    assert est.info(logp, est.phi(logp, np.arange(4))) == {"name": "exact"}  # no sampling error to report


# ---------------------------------------------------------------- the base class, per image


class Toy(Estimator):
    """A per-image estimator written here: image i is evaluated on ∅, {j} and N with
    j = (seed + 2i) mod M, and credits band j with v({j}) − v(∅) and the others equally with
    the rest. It uses the base class's ``masks``, ``phi``, ``common_values`` and ``info``."""

    name = "toy"
    per_image_draws = True

    def _draw(self, index):
        seed = self._seed(index)
        j = (seed[0] + 2 * seed[1]) % self.n_bands if isinstance(seed, tuple) else seed % self.n_bands
        full = 2**self.n_bands - 1
        mat = np.zeros((3, self.n_bands))
        mat[1, j], mat[0, j] = 1.0, -1.0
        others = [i for i in range(self.n_bands) if i != j]
        mat[2, others], mat[1, others] = 1 / len(others), -1 / len(others)
        return np.array([0, 1 << j, full], np.int64), mat

    def _describe(self):
        return {"toy": 1}


def test_the_base_class_gives_each_image_its_own_draw():
    toy = Toy(4, "per-image", 1, seed=1)
    assert toy.per_image and toy.n_coalitions == 3
    for i in range(6):
        j = (1 + 2 * i) % 4
        assert toy.masks(i).tolist() == [0, 1 << j, 15]
        assert toy.bits(i).tolist() == [[False] * 4, [k == j for k in range(4)], [True] * 4]
    assert toy.masks().tolist() == toy.masks(0).tolist() == [0, 2, 15]  # index 0 by default
    assert toy.bits().tolist() == toy.bits(0).tolist()
    np.testing.assert_array_equal(toy.shapley_map(), toy.shapley_map(0))
    assert not np.array_equal(toy.shapley_map(0), toy.shapley_map(1))
    logp = np.array([[0.5, 2.0, 4.5], [1.0, 1.5, 7.0]])
    phi = toy.phi(logp, np.array([3, 4]))  # image 3: j = 3; image 4: j = 1
    np.testing.assert_allclose(phi, [[2.5 / 3, 2.5 / 3, 2.5 / 3, 1.5], [5.5 / 3, 0.5, 5.5 / 3, 5.5 / 3]])
    assert toy.phi(np.zeros((0, 3)), np.array([], np.int64)).shape == (0, 4)
    masks, means = toy.common_values(logp, np.array([3, 4]))  # only ∅ and N are common
    assert masks.tolist() == [0, 15] and masks.dtype == np.int64 and means.tolist() == [0.75, 5.75]
    shared = Toy(4, "shared", 1, seed=3)  # shared draws: the run's seed for every image
    assert not shared.per_image and shared.masks(0).tolist() == shared.masks(5).tolist() == [0, 8, 15]


def test_per_image_standard_error_is_over_images_and_none_with_one():
    toy = Toy(4, "per-image", 1, seed=1)
    phi = np.array([[1.0, 2.0, 0.0, -1.0], [3.0, 2.0, 1.0, 0.0]])  # two images: SE = |a − b| / 2
    info = toy.info(np.zeros((2, 3)), phi)
    assert info == {
        "name": "toy",
        "draws": "per-image",
        "passes_per_image": 3,
        "toy": 1,
        "phi_se": pytest.approx([1.0, 0.0, 0.5, 0.5], abs=1e-15),
    }
    three = np.array([[0.0, 0, 0, 0], [3.0, 0, 0, 0], [6.0, 0, 0, 0]])  # std (ddof 1) 3, over √3
    assert toy.info(np.zeros((3, 3)), three)["phi_se"] == pytest.approx([np.sqrt(3), 0, 0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one image: nothing to estimate it from, quietly
        assert toy.info(np.zeros((1, 3)), phi[:1])["phi_se"] == [None] * 4


def test_draw_generators_are_seeded_per_run_and_per_image():
    a = draw_rng(3, 7).integers(0, 2**62, 4)
    assert np.array_equal(a, draw_rng(3, 7).integers(0, 2**62, 4))
    others = [draw_rng(4, 7), draw_rng(3, 8), draw_rng((3, 0), 7), draw_rng((3, 1), 7)]
    draws = [tuple(g.integers(0, 2**62, 4)) for g in others]
    assert len({tuple(a), *draws}) == 5
    assert np.array_equal(draw_rng((3, 1), 7).integers(0, 2**62, 4), draws[3])
    # no run seed reproduces an image's draw: SeedSequence reads the seed 3 + 2**32 as the
    # 32-bit words [3, 1], the words of image 1 of seed 3
    assert np.array_equal(
        np.random.SeedSequence([3 + 2**32, 7]).generate_state(4), np.random.SeedSequence([3, 1, 7]).generate_state(4)
    )
    assert not np.array_equal(draw_rng(3 + 2**32, 7).integers(0, 2**62, 4), draws[3])


# ---------------------------------------------------------------- kernel


@pytest.mark.parametrize("m", range(2, 9))
def test_kernel_plans_enumerate_whole_size_pairs_then_draw_complement_pairs(m):
    full = 2**m - 1
    smallest = min(2 * m + 2, 2**m)
    budgets = sorted({b for b in (smallest, 2 * m + 3, 2**m // 2 + 1, 2**m - 1, 2**m, 2**m + 5) if b >= smallest})
    for budget in budgets:
        for seed in (0, 1, (2, 5)):
            plan = kernel_plan(m, budget, seed)
            k = min(budget, 2**m)
            low = expected_enumerated_below(m, budget)
            assert plan.n_players == m and plan.enumerated_below == low
            assert plan.masks.dtype == np.int64 and plan.draws.dtype == np.int64
            masks = plan.masks.tolist()
            assert masks[0] == 0 and masks[-1] == full and masks == sorted(set(masks))
            enumerated = {s for s in range(1, full) if popcount(s) < low or popcount(s) > m - low}
            drawn = set(plan.draws.tolist())
            assert set(masks) == {0, full} | enumerated | drawn and not drawn & enumerated
            assert all(low <= popcount(s) <= m - low for s in drawn)
            assert plan.draws[1::2].tolist() == [full ^ s for s in plan.draws[::2].tolist()]  # complement pairs
            assert len(masks) in (k - 1, k)  # the budget is spent but for one odd coalition
            if low > m - low:
                assert masks == list(range(2**m)) and not len(plan.draws)
    # an exact fit enumerates the pair: 2 + 8 coalitions for sizes 1 and 3 of 4 bands
    assert kernel_plan(4, 10).enumerated_below == 2 and not len(kernel_plan(4, 10).draws)
    assert kernel_plan(4, 16).enumerated_below == 3  # size 2 counted once: its complements are its own


def test_kernel_plans_refuse_too_few_bands_or_coalitions_saying_so():
    with pytest.raises(ValueError, match=r"^KernelSHAP needs at least 2 bands, got 1; use --estimator exact$"):
        kernel_plan(1, 4)
    for m, budget, smallest in [(2, 3, 4), (3, 7, 8), (5, 11, 12)]:  # min(2M + 2, 2**M)
        with pytest.raises(
            ValueError,
            match=rf"^KernelSHAP with {m} bands needs at least {smallest} coalitions per image, got {budget}$",
        ):
            kernel_plan(m, budget)
        assert len(kernel_plan(m, smallest).masks) in (smallest - 1, smallest)
    assert len(kernel_plan(2, 4).masks) == 4


def test_kernel_draws_follow_the_kernel_mass_with_uniform_bands():
    """Sizes of the drawn coalitions (first of each pair) ∝ (M−1)/(s(M−s)) over the sizes not
    enumerated; each band equally often within a size; reproducible from the seed."""
    m, budget = 10, 40  # sizes 1 and 9 enumerated (20); 18 coalitions left for drawn pairs
    firsts = np.concatenate([kernel_plan(m, budget, seed).draws[::2] for seed in range(150)])
    sizes = np.array([popcount(s) for s in firsts])
    want = np.array([1 / (s * (m - s)) for s in range(2, m - 1)])
    want /= want.sum()
    got = np.array([(sizes == s).sum() for s in range(2, m - 1)]) / len(sizes)
    assert len(sizes) > 1000 and sizes.min() >= 2 and sizes.max() <= m - 2
    assert np.all(np.abs(got - want) < 5 * np.sqrt(want * (1 - want) / len(sizes))), (got, want)
    for s in (2, 5):  # within a size, every band is in the coalition with probability s / M
        chosen = np.array([[c >> i & 1 for i in range(m)] for c in firsts[sizes == s]])
        assert np.all(np.abs(chosen.mean(axis=0) - s / m) < 5 * np.sqrt(s / m * (1 - s / m) / len(chosen)))
    assert np.array_equal(kernel_plan(m, budget, 4).draws, kernel_plan(m, budget, 4).draws)
    assert not np.array_equal(kernel_plan(m, budget, 4).draws, kernel_plan(m, budget, (4, 0)).draws)


@pytest.mark.parametrize("m", range(2, 8))
def test_size_mass_and_kernel_weights_are_the_shapley_kernel(m):
    mass = _size_mass(m)
    assert mass.dtype == np.float64
    np.testing.assert_allclose(mass, [0.0, *[(m - 1) / (s * (m - s)) for s in range(1, m)], 0.0], rtol=1e-15)
    full = kernel_plan(m, 2**m)
    want = [0.0, *[kernel_pi(m, popcount(s)) for s in range(1, 2**m - 1)], 0.0]
    np.testing.assert_allclose(kernel_weights(full), want, rtol=1e-13)


@pytest.mark.parametrize("m, budget, seed", [(4, 14, 0), (5, 20, 1), (6, 30, 2), (7, 40, 3), (8, 64, 4)])
def test_kernel_weights_and_matrix_are_the_constrained_weighted_regression(m, budget, seed):
    plan = kernel_plan(m, budget, seed)
    assert len(plan.draws) >= 4
    v = random_game(m, seed)[plan.masks]
    weights = weights_by_formula(plan)
    np.testing.assert_allclose(kernel_weights(plan), weights, rtol=1e-12)
    phi = v @ kernel_matrix(plan)
    np.testing.assert_allclose(phi, constrained_wls(v, plan.masks, weights, m), atol=1e-10)
    assert phi.sum() == pytest.approx(v[-1] - v[0], abs=1e-12)  # efficient
    resample = np.concatenate([plan.draws[:2], plan.draws[:2], plan.draws[2:4]])  # a bootstrap draw
    weights = weights_by_formula(plan, resample)
    np.testing.assert_allclose(kernel_weights(plan, resample), weights, rtol=1e-12)
    np.testing.assert_allclose(
        v @ kernel_matrix(plan, resample), constrained_wls(v, plan.masks, weights, m), atol=1e-10
    )
    # draws that are not complement pairs: the weights are no longer symmetric under S ↔ N∖S, so
    # a game equal to 1 on every proper coalition (0 on ∅ and N) no longer has φ = 0, and v(∅)
    # enters through every weighted coalition (y = v − v(∅)), not only through Δ
    lone = plan.draws[::2]
    weights = weights_by_formula(plan, lone)
    ones = np.r_[0.0, np.ones(len(v) - 2), 0.0]
    assert np.abs(constrained_wls(ones, plan.masks, weights, m)).max() > 1e-3
    for game in (v, ones):
        want = constrained_wls(game, plan.masks, weights, m)
        np.testing.assert_allclose(game @ kernel_matrix(plan, lone), want, atol=1e-10)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_kernel_shap_on_every_coalition_is_the_shapley_value(m):
    v = random_game(m, m)
    plan = kernel_plan(m, 2**m)
    np.testing.assert_allclose(v @ kernel_matrix(plan), brute_shapley(v, m), atol=1e-12)
    se = kernel_standard_error(v, plan)
    assert se.shape == (m,) and se.tolist() == [0.0] * m  # nothing drawn: exact


def test_kernel_standard_error_is_the_spread_over_resampled_pairs():
    """With two drawn pairs each bootstrap resample is one of four ordered pair choices, so with
    two resamples SE·√2 (ddof 1) is the gap between two of their four estimates; with many, SE
    nears the spread of the four; under two pairs it is unknown (NaN, shape M)."""
    plan = next(p for p in (kernel_plan(5, 16, s) for s in range(50)) if len(p.draws) == 4)
    pairs = plan.draws.reshape(2, 2)
    v = random_game(5, 7)[plan.masks]
    outcomes = np.stack([v @ kernel_matrix(plan, pairs[list(c)].ravel()) for c in [(0, 0), (0, 1), (1, 0), (1, 1)]])
    gaps = [np.abs(a - b) for a in outcomes for b in outcomes]
    nonzero = 0
    for seed in range(4):
        se = kernel_standard_error(v, plan, n_resamples=2, seed=seed)
        assert any(np.allclose(se * np.sqrt(2), g, atol=1e-12) for g in gaps)
        nonzero += bool(se.max() > 1e-6)
    assert nonzero >= 2  # the seed matters and some resamples differ
    se = kernel_standard_error(v, plan, n_resamples=1500, seed=1)
    np.testing.assert_allclose(se, outcomes.std(axis=0), rtol=0.12)
    one_pair = next(p for p in (kernel_plan(5, 14, s) for s in range(50)) if len(p.draws) == 2)
    se = kernel_standard_error(random_game(5)[one_pair.masks], one_pair)
    assert se.shape == (5,) and np.isnan(se).all()


def test_kernel_estimator_uses_its_seeded_plan_and_reports_it():
    rng = np.random.default_rng(3)
    for m, budget, sizes in [(4, 16, [1, 2, 3]), (6, 30, [1, 5]), (8, 64, [1, 7])]:
        est = estimator_from_config(ExplainConfig(bands=m, estimator="kernel", coalitions=budget, seed=9))
        plan = kernel_plan(m, budget, 9)
        assert np.array_equal(est.masks(), plan.masks) and np.array_equal(est.masks(3), plan.masks)
        np.testing.assert_allclose(est.shapley_map(2), kernel_matrix(plan), atol=1e-15)
        logp = rng.normal(size=(3, len(plan.masks)))
        np.testing.assert_allclose(est.phi(logp, np.array([4, 0, 1])), logp @ kernel_matrix(plan), atol=1e-12)
        masks, means = est.common_values(logp, np.array([4, 0, 1]))
        assert np.array_equal(masks, plan.masks) and np.allclose(means, logp.mean(axis=0))
        se = kernel_standard_error(logp.mean(axis=0), plan, seed=9)
        info = est.info(logp, np.zeros((3, m)))
        assert info == {
            "name": "kernel",
            "draws": "shared",
            "passes_per_image": len(plan.masks),
            "coalitions": len(plan.masks),
            "enumerated_sizes": sizes,
            "phi_se": pytest.approx(se.tolist(), rel=1e-12),
        }
    one_pair = next(s for s in range(50) if len(kernel_plan(5, 14, s).draws) == 2)
    est = estimator_from_config(ExplainConfig(bands=5, estimator="kernel", coalitions=14, seed=one_pair))
    assert est.info(np.zeros((2, est.n_coalitions)), np.zeros((2, 5)))["phi_se"] == [None] * 5


# ---------------------------------------------------------------- permutation


def test_antithetic_permutations_are_uniform_orders_and_their_reverses():
    for p in (0, 1, 3, 7):
        with pytest.raises(ValueError, match=rf"^n_permutations must be an even number >= 2, got {p}$"):
            antithetic_permutations(4, p)
    for m, p, seed in [(4, 2, 0), (5, 6, 1), (3, 8, (1, 2))]:
        perms = antithetic_permutations(m, p, seed)
        assert perms.shape == (p, m) and perms.dtype == np.int64
        assert all(sorted(row) == list(range(m)) for row in perms.tolist())
        assert np.array_equal(perms[p // 2 :], perms[: p // 2, ::-1])  # pair k and k + P/2
        assert np.array_equal(perms, antithetic_permutations(m, p, seed))
    perms = antithetic_permutations(3, 1200, 5)[:600]  # the uniform half: 600 orders of 3 bands
    counts = [sum(row == list(o) for row in perms.tolist()) for o in permutations(range(3))]
    assert all(abs(c - 100) < 5 * np.sqrt(600 / 6 * 5 / 6) for c in counts), counts
    assert not np.array_equal(antithetic_permutations(6, 4, 1), antithetic_permutations(6, 4, (1, 0)))


@pytest.mark.parametrize("m, p, seed", [(4, 2, 0), (5, 6, 3), (6, 4, (2, 7))])
def test_permutation_plans_and_walks_are_the_prefixes_of_their_orders(m, p, seed):
    full = 2**m - 1
    perms = antithetic_permutations(m, p, seed)
    prefixes = [sum(1 << int(i) for i in row[:j]) for row in perms.tolist() for j in range(1, m)]
    masks, plan_perms = permutation_plan(m, p, seed)
    assert np.array_equal(plan_perms, perms) and masks.dtype == np.int64
    assert masks.tolist() == [0, *sorted(set(prefixes) - {0, full}), full]
    walk, mat = permutation_walk(m, p, seed)
    assert walk.tolist() == [0, *prefixes, full] == walk_masks(perms).tolist() and walk.dtype == np.int64
    assert mat.shape == (2 + p * (m - 1), m)
    v = random_game(m, 11)
    want = marginal_estimate(v, perms.tolist())
    np.testing.assert_allclose(v[walk] @ mat, want, atol=1e-12)
    np.testing.assert_allclose(v[masks] @ permutation_matrix(masks, perms), want, atol=1e-12)
    half = p // 2
    pairs = np.stack([marginal_estimate(v, [perms[k], perms[k + half]]) for k in range(half)])
    se = permutation_standard_error(v[masks], masks, perms)
    if half > 1:
        np.testing.assert_allclose(se, pairs.std(axis=0, ddof=1) / np.sqrt(half), rtol=1e-12)
    else:
        assert se.shape == (m,) and np.isnan(se).all()


def test_per_image_permutation_draws_walk_each_images_own_orders():
    est = estimator_from_config(ExplainConfig(bands=5, estimator="permutation", permutations=4, seed=6))
    assert est.per_image and est.n_coalitions == 2 + 4 * 4
    v = random_game(5, 2)
    drawn = []
    for i in (0, 1, 7):
        masks = est.masks(i)
        orders = orders_of_walk(masks, 5)
        assert len(orders) == 4 and orders[2:] == [o[::-1] for o in orders[:2]]  # antithetic
        np.testing.assert_allclose(v[masks] @ est.shapley_map(i), marginal_estimate(v, orders), atol=1e-12)
        assert np.array_equal(masks, walk_masks(antithetic_permutations(5, 4, (6, i))))
        drawn.append(tuple(masks.tolist()))
    assert len(set(drawn)) == 3 and np.array_equal(est.masks(), est.masks(0))
    logp = np.stack([v[est.masks(i)] for i in (7, 1)])
    want = [marginal_estimate(v, orders_of_walk(est.masks(i), 5)) for i in (7, 1)]
    np.testing.assert_allclose(est.phi(logp, np.array([7, 1])), want, atol=1e-12)


def test_shared_permutation_draws_report_the_spread_of_their_antithetic_pairs():
    for m, p, seed in [(5, 6, 7), (4, 8, 2)]:
        est = estimator_from_config(
            ExplainConfig(bands=m, estimator="permutation", permutations=p, draws="shared", seed=seed)
        )
        perms = antithetic_permutations(m, p, seed)
        prefixes = {sum(1 << int(i) for i in row[:j]) for row in perms.tolist() for j in range(m + 1)}
        masks = est.masks()
        assert masks.tolist() == sorted(prefixes) and np.array_equal(est.masks(4), masks)
        logp = np.random.default_rng(seed).normal(size=(3, len(masks)))
        games = [dict(zip(masks.tolist(), row)) for row in logp]
        np.testing.assert_allclose(
            est.phi(logp, np.arange(3)), [marginal_estimate(g, perms.tolist()) for g in games], atol=1e-12
        )
        mean = dict(zip(masks.tolist(), logp.mean(axis=0)))
        pairs = np.stack([marginal_estimate(mean, [perms[k], perms[k + p // 2]]) for k in range(p // 2)])
        assert est.info(logp, np.zeros((3, m))) == {
            "name": "permutation",
            "draws": "shared",
            "passes_per_image": len(prefixes),
            "permutations": p,
            "phi_se": pytest.approx((pairs.std(axis=0, ddof=1) / np.sqrt(p // 2)).tolist(), rel=1e-12),
        }
    one_pair = estimator_from_config(ExplainConfig(bands=4, estimator="permutation", permutations=2, draws="shared"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert one_pair.info(np.zeros((2, one_pair.n_coalitions)), np.zeros((2, 4)))["phi_se"] == [None] * 4


def test_per_image_permutation_info_names_its_cost_and_the_error_over_images():
    est = estimator_from_config(ExplainConfig(bands=4, estimator="permutation", permutations=4, seed=2))
    phi = np.random.default_rng(5).normal(size=(7, 4))
    assert est.info(np.zeros((7, est.n_coalitions)), phi) == {
        "name": "permutation",
        "draws": "per-image",
        "passes_per_image": 2 + 4 * 3,
        "permutations": 4,
        "phi_se": pytest.approx([float(np.std(phi[:, i], ddof=1) / np.sqrt(7)) for i in range(4)], rel=1e-12),
    }
    masks, means = est.common_values(np.arange(28.0).reshape(2, 14), np.array([0, 1]))
    assert masks.tolist() == [0, 15] and means.tolist() == [7.0, 20.0]


def test_permutation_masks_stay_exact_bit_masks_beyond_float64_integers():
    """60 bands: prefix masks up to 2**60 − 1, past the 2**53 a float64 holds exactly, so a
    plan built through floats would name the wrong coalitions."""
    m = 60
    perms = antithetic_permutations(m, 2, 4)
    prefixes = [sum(1 << int(i) for i in row[:j]) for row in perms.tolist() for j in range(1, m)]
    assert max(prefixes) > 2**53 and float(2**m - 1) != 2**m - 1
    masks, _ = permutation_plan(m, 2, 4)
    assert masks.dtype == np.int64 and masks.tolist() == [0, *sorted(set(prefixes)), 2**m - 1]
    assert walk_masks(perms).tolist() == [0, *prefixes, 2**m - 1]


def test_more_bands_than_a_signed_bit_mask_holds_are_refused_before_any_work():
    """64 bands: the grand coalition 2**64 − 1 does not fit an int64 mask (it overflowed, or
    per image became a wrong mask evaluated on every image before the run failed); 63 is the most."""
    for estimator, draws in [("kernel", "shared"), ("permutation", "shared"), ("permutation", "per-image")]:
        with pytest.raises(
            IasideError, match=r"^--bands 64: coalitions are stored as 64-bit signed bit masks, so at most 63 bands$"
        ):
            estimator_from_config(ExplainConfig(bands=64, estimator=estimator, draws=draws))
    with pytest.raises(IasideError, match=r"^exact I-ASIDE with 64 bands needs 2\*\*64 passes per image"):
        estimator_from_config(ExplainConfig(bands=64))
    full = 2**63 - 1
    per_image = estimator_from_config(ExplainConfig(bands=63, estimator="permutation", permutations=2, seed=1))
    masks = per_image.masks(5)
    assert masks[-1] == full and len(orders_of_walk(masks, 63)) == 2
    assert per_image.common_values(np.zeros((1, len(masks))), np.array([5]))[0].tolist() == [0, full]
    kernel = estimator_from_config(ExplainConfig(bands=63, estimator="kernel", coalitions=200))
    assert kernel.masks()[-1] == full and (kernel.masks()[1:-1] > 0).all()
    assert all(0 < popcount(s) < 63 for s in kernel.masks()[1:-1])
