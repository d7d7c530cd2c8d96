"""Exact Shapley values against hand values, brute-force permutations and captum."""

import itertools
import math

import numpy as np
import pytest
import torch

from iaside.game import coalition_bits, coalition_size, exact_shapley, shapley_weight


def brute_force_shapley(v: np.ndarray) -> np.ndarray:
    """Average marginal contribution over all M! orders (an independent definition)."""
    m = int(np.log2(v.shape[-1]))
    phi = np.zeros(m)
    for order in itertools.permutations(range(m)):
        s = 0
        for player in order:
            phi[player] += v[s | (1 << player)] - v[s]
            s |= 1 << player
    return phi / math.factorial(m)


def test_coalition_bits_order():
    assert coalition_bits(2).astype(int).tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]
    assert coalition_size(3).tolist() == [0, 1, 1, 2, 1, 2, 2, 3]
    assert shapley_weight(3, 0) == pytest.approx(1 / 3) and shapley_weight(3, 1) == pytest.approx(1 / 6)


def test_two_player_game_by_hand():
    # v(∅)=0, v({0})=1, v({1})=2, v({0,1})=5: φ0 = ½·1 + ½·3 = 2, φ1 = ½·2 + ½·4 = 3.
    assert exact_shapley(np.array([0.0, 1.0, 2.0, 5.0])) == pytest.approx([2.0, 3.0])


def test_majority_game_by_hand():
    v = (coalition_size(3) >= 2).astype(float)
    assert exact_shapley(v) == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 6])
def test_matches_brute_force_and_is_efficient(m):
    rng = np.random.default_rng(m)
    v = rng.normal(size=2**m)
    phi = exact_shapley(v)
    assert phi == pytest.approx(brute_force_shapley(v), abs=1e-12)
    assert phi.sum() == pytest.approx(v[-1] - v[0], abs=1e-12)


def test_batched_games_and_linearity():
    rng = np.random.default_rng(1)
    v1, v2 = rng.normal(size=(2, 7, 16))
    assert np.allclose(exact_shapley(np.stack([v1, v2])), np.stack([exact_shapley(v1), exact_shapley(v2)]))
    assert np.allclose(exact_shapley(v1 + 3 * v2), exact_shapley(v1) + 3 * exact_shapley(v2))
    assert np.allclose(exact_shapley(v1).mean(0), exact_shapley(v1.mean(0)))  # mean of φ = φ of the mean game


def test_symmetry_and_null_player():
    m = 4
    bits = coalition_bits(m)
    # players 0 and 1 symmetric, player 3 null: v depends on |S ∩ {0,1}| and on player 2 only
    v = (bits[:, 0].astype(float) + bits[:, 1]) ** 2 + 0.5 * bits[:, 2] * bits[:, 0]
    phi = exact_shapley(v)
    assert phi[3] == pytest.approx(0.0, abs=1e-12)
    v_sym = (bits[:, 0].astype(float) + bits[:, 1]) ** 2 + 0.5 * bits[:, 2]
    phi_sym = exact_shapley(v_sym)
    assert phi_sym[0] == pytest.approx(phi_sym[1])


def test_matches_captum_shapley_values():
    captum = pytest.importorskip("captum.attr")
    m = 4
    rng = np.random.default_rng(7)
    v = rng.normal(size=2**m)
    table = torch.tensor(v)

    def game(mask: torch.Tensor) -> torch.Tensor:  # (B, M) in {0, 1} -> (B,) v(S)
        index = (mask.round().long() * (2 ** torch.arange(m))).sum(1)
        return table[index]

    phi = captum.ShapleyValues(game).attribute(
        torch.ones(1, m, dtype=torch.float64), baselines=torch.zeros(1, m, dtype=torch.float64)
    )
    assert exact_shapley(v) == pytest.approx(phi[0].numpy(), abs=1e-6)  # captum accumulates in float32


def test_bit_masks_of_any_integer_type_and_shapley_values_always_float64():
    """masks_to_bits reads unsigned and Python-int masks as well as int64 ones (bit i of 6 = 0b110
    is set for i = 1, 2); exact_shapley returns float64 whatever real dtype the game comes in."""
    from iaside.game import masks_to_bits

    expected = [[False, True, True], [True, False, False], [True, True, True]]
    for masks in ([6, 1, 7], np.array([6, 1, 7], np.uint64), np.array([6, 1, 7], np.uint8)):
        got = masks_to_bits(masks, 3)
        assert got.dtype == bool and got.tolist() == expected
    v = np.array([0.0, 1.0, 2.0, 5.0])  # φ = (2, 3) by hand (test_two_player_game_by_hand)
    for game in (
        v.astype(np.longdouble),
        v.astype(np.float32),
        v.astype(np.int32),
        torch.tensor(v, dtype=torch.float16),
    ):
        phi = exact_shapley(game)
        assert phi.dtype == np.float64 and phi.tolist() == [2.0, 3.0]
