"""Band interactions of a finished exact run against shapiq (dev-only dependency).

    python benchmarks/interactions_vs_shapiq.py RUN_DIR

Prints the largest difference between the run's interaction index / Möbius dividends (mean
game and every image) and shapiq's ExactComputer (index "SII", order 2; moebius_transform).
"""

from __future__ import annotations

import sys
from itertools import combinations

import numpy as np


def shapiq_values(table: np.ndarray, m: int):
    import shapiq

    computer = shapiq.ExactComputer(lambda c: table[(c.astype(np.int64) << np.arange(m)).sum(axis=1)], n_players=m)
    sii = computer(index="SII", order=2)
    dividends = computer.moebius_transform
    dividends = dividends() if callable(dividends) else dividends
    return sii, dividends


def main(run_dir: str) -> None:
    from iaside.interactions import mobius, shapley_interactions
    from iaside.result import Result

    r = Result.load(run_dir)
    if r.interactions is None:
        sys.exit(f"{run_dir} has no interactions (not an exact run of this version)")
    logp = r.per_image["logp_nats"]
    m = r.n_bands
    worst_index = worst_mobius = 0.0
    tables = [("mean", logp.mean(axis=0), r.interactions["index"].value, r.interactions["mobius"].value)]
    tables += [(f"image {k}", logp[k], shapley_interactions(logp[k]), mobius(logp[k])) for k in range(len(logp))]
    for _, table, ours_index, ours_mobius in tables:
        sii, dividends = shapiq_values(table, m)
        worst_index = max(worst_index, max(abs(ours_index[i, j] - sii[(i, j)]) for i, j in combinations(range(m), 2)))
        worst_mobius = max(
            worst_mobius,
            max(abs(ours_mobius[t] - dividends[tuple(k for k in range(m) if t >> k & 1)]) for t in range(2**m)),
        )
    print(f"{run_dir}: M={m}, {len(logp)} images + the mean game")
    print(f"max |I_ij - shapiq SII| = {worst_index:.2e}; max |m(T) - shapiq Moebius| = {worst_mobius:.2e}")


if __name__ == "__main__":
    main(*sys.argv[1:])
