"""Band interactions from an exact run's 2**M table: Shapley interaction index and Möbius dividends.

Coalitions are bit masks as in ``game``: values[..., s] = v(S), band i ∈ S iff bit i of s is
set. Both views are linear in v, so the per-image values average to the values of the mean
game, and need no forward pass beyond the exact estimator's.

- Pairwise Shapley interaction index (Grabisch & Roubens 1999), i ≠ j:
  I_ij = Σ_{S ⊆ N∖{i,j}} |S|!(M−|S|−2)!/(M−1)! · [v(S∪{i,j}) − v(S∪{i}) − v(S∪{j}) + v(S)];
  > 0: synergy (the pair carries more together than apart), < 0: redundancy. I_ii = 0.
- Möbius (Harsanyi) dividends m(T) = Σ_{S ⊆ T} (−1)^{|T|−|S|} v(S);
  Σ_{T ∋ i} m(T)/|T| = φ_i and I_ij = Σ_{T ⊇ {i,j}} m(T)/(|T|−1).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .game import coalition_bits, shapley_weight
from .summary import Estimate, bootstrap_draws


def _n_players(n_coalitions: int) -> int:
    m = int(round(np.log2(n_coalitions)))
    if m < 1 or 2**m != n_coalitions:
        raise ValueError(f"last axis must have 2**M entries (M >= 1), got {n_coalitions}")
    return m


@lru_cache(maxsize=16)
def _interaction_map(n_players: int) -> np.ndarray:
    bits = coalition_bits(n_players).astype(np.int64)  # (2**M, M)
    size = bits.sum(axis=1)
    mat = np.zeros((2**n_players, n_players, n_players))
    if n_players >= 2:
        # the weight of S = T∖{i,j} is the Shapley weight of a game with M−1 players
        w = np.array([shapley_weight(n_players - 1, k) for k in range(n_players - 1)])
        rest = size[:, None, None] - bits[:, :, None] - bits[:, None, :]  # |T∖{i,j}|
        sign = np.where(bits[:, :, None] == bits[:, None, :], 1.0, -1.0)
        mat = w[np.clip(rest, 0, n_players - 2)] * sign
        mat[:, np.arange(n_players), np.arange(n_players)] = 0.0
    mat.setflags(write=False)
    return mat


def interaction_map(n_players: int) -> np.ndarray:
    """The linear map from a game to its pairwise interaction index, (2**M, M, M) float64:
    I = einsum('...s,sij->...ij', v, map); symmetric in i, j, zero diagonal."""
    return _interaction_map(n_players)


def shapley_interactions(values) -> np.ndarray:
    """Pairwise Shapley interaction index of games, (..., 2**M) -> (..., M, M) float64."""
    v = np.asarray(values, np.float64)
    return np.einsum("...s,sij->...ij", v, interaction_map(_n_players(v.shape[-1])))


def mobius(values) -> np.ndarray:
    """Möbius dividends of games, (..., 2**M) -> (..., 2**M) float64, indexed by bit mask like v.

    The fast transform: for each band in turn, subtract the value without it from the value with it.
    """
    v = np.array(values, np.float64)  # a copy: transformed in place
    m = _n_players(v.shape[-1])
    lead = v.shape[:-1]
    cube = v.reshape(*lead, *([2] * m))  # axis len(lead) + a holds bit M−1−a
    for a in range(m):
        axis = len(lead) + a
        hi: list[slice | int] = [slice(None)] * cube.ndim
        lo: list[slice | int] = [slice(None)] * cube.ndim
        hi[axis], lo[axis] = 1, 0
        cube[tuple(hi)] -= cube[tuple(lo)]
    return cube.reshape(v.shape)


def bootstrap_means_by_counts(per_image: np.ndarray, n_resamples: int, seed: int, chunk: int = 64) -> np.ndarray:
    """The resamples of ``summary.bootstrap_means`` (same seed, same image draws), as counts:
    (N, D) -> (R, D) float64, memory O(chunk·N) whatever D (wide tables such as 2**M dividends)."""
    n = per_image.shape[0]
    out = np.empty((n_resamples, per_image.shape[1]))
    for start, stop, rows in bootstrap_draws(n, n_resamples, seed, chunk):
        flat = (np.arange(stop - start)[:, None] * n + rows).ravel()
        counts = np.bincount(flat, minlength=(stop - start) * n).reshape(stop - start, n)
        out[start:stop] = counts @ per_image / n
    return out


def mean_with_interval(per_image: np.ndarray, n_bootstrap: int, confidence: float, seed: int) -> Estimate:
    """Mean over images (axis 0) with a percentile bootstrap interval over images, any trailing shape."""
    x = np.asarray(per_image, np.float64)
    shape = x.shape[1:]
    flat = x.reshape(len(x), -1)
    value = flat.mean(axis=0)
    if n_bootstrap > 0 and len(x) > 1:
        boot = bootstrap_means_by_counts(flat, n_bootstrap, seed)
        alpha = (1.0 - confidence) / 2
        low, high = np.quantile(boot, alpha, axis=0), np.quantile(boot, 1 - alpha, axis=0)
    else:
        low = high = np.full_like(value, np.nan)
    return Estimate(value.reshape(shape), low.reshape(shape), high.reshape(shape))


def summarize_interactions(
    logp_nats: np.ndarray, *, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """From an exact run's per-image table (N, 2**M) nats: {"index": Estimate (M, M), "mobius":
    Estimate (2**M,), "per_image": (N, M, M)} (means over images, bootstrap over images with
    the same resamples as φ)."""
    per_image = shapley_interactions(logp_nats)
    return {
        "index": mean_with_interval(per_image, n_bootstrap, confidence, seed),
        "mobius": mean_with_interval(mobius(logp_nats), n_bootstrap, confidence, seed),
        "per_image": per_image,
    }


def strongest_pairs(index: Estimate) -> dict:
    """The strongest synergy (largest I_ij > 0) and redundancy (most negative I_ij), each
    {"bands": [i, j], "value", "low", "high"}, or None when there is no such pair."""
    value = np.asarray(index.value)
    i_up, j_up = np.triu_indices(value.shape[0], k=1)
    out: dict[str, dict[str, object] | None] = {"synergy": None, "redundancy": None}
    if not i_up.size:
        return out
    pairs = value[i_up, j_up]
    for key, k in (("synergy", int(np.argmax(pairs))), ("redundancy", int(np.argmin(pairs)))):
        if (pairs[k] > 0) if key == "synergy" else (pairs[k] < 0):
            i, j = int(i_up[k]), int(j_up[k])
            out[key] = {
                "bands": [i, j],
                "value": float(value[i, j]),
                "low": float(np.asarray(index.low)[i, j]),
                "high": float(np.asarray(index.high)[i, j]),
            }
    return out


def interactions_sentence(index: Estimate, confidence: float = 0.95) -> str:
    """One sentence on the strongest synergy and redundancy, saying whether each interval excludes 0."""
    best = strongest_pairs(index)
    ci = int(round(100 * confidence))
    parts = []
    for key, word in (("synergy", "synergy"), ("redundancy", "redundancy")):
        b = best[key]
        if b is None:
            parts.append(f"no pair of bands shows {word}")
            continue
        sure = "" if b["low"] <= 0 <= b["high"] else ", its interval excludes 0"
        parts.append(
            f"the strongest {word} is bands {b['bands'][0]} and {b['bands'][1]} "
            f"(I = {b['value']:+.3f} nats, {ci}% CI {b['low']:+.3f} – {b['high']:+.3f}{sure})"
        )
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def interactions_to_json(views: dict) -> dict:
    """{"index", "mobius"} of Estimates -> plain JSON, with the strongest pairs written out."""
    return {
        "index": views["index"].to_dict(),
        "mobius": views["mobius"].to_dict(),
        "strongest": strongest_pairs(views["index"]),
    }


def interactions_from_json(d: dict) -> dict:
    return {"index": Estimate.from_dict(d["index"]), "mobius": Estimate.from_dict(d["mobius"])}


def interactions_table(index: Estimate, confidence: float = 0.95) -> str:
    """The M×M interaction index in nats ('*' where the interval excludes 0), then the sentence
    on the strongest synergy and redundancy."""
    value, low, high = (np.asarray(a) for a in (index.value, index.low, index.high))
    m = value.shape[0]
    lines = [
        "pairwise Shapley interaction index I_ij (nats; > 0 synergy, < 0 redundancy; "
        f"* = {int(round(100 * confidence))}% interval excludes 0)",
        "band " + "".join(f"{j:>9}" for j in range(m)),
    ]
    for i in range(m):
        cells = []
        for j in range(m):
            if i == j:
                cells.append(f"{'.':>9}")
            else:
                star = "*" if not (low[i, j] <= 0 <= high[i, j]) else " "
                cells.append(f"{value[i, j]:>+8.4f}{star}")
        lines.append(f"{i:>4} " + "".join(cells))
    lines.append(interactions_sentence(index, confidence))
    return "\n".join(lines)
