"""Sampling estimators against exact I-ASIDE at large M: SID error versus forward-pass budget.

    python benchmarks/estimator.py [--bands 10 12] [--images 8] [--seeds 20] [--precision fp32]

One exact run per M (EfficientNet-Lite0, samples:imagenet, zero fill so that no image needs a
partner) gives every coalition's log-probability for every image; it is cached in
``--cache`` (delete the file to recompute). The engine evaluates each (image, coalition) the
same way whichever coalitions are asked for, so an estimator's answer for a budget equals the
estimator applied to those columns of the exact table; the script checks this once per
estimator against a real run, then reports, per budget and over seeds, the SID L1 error
against exact (mean and 90th percentile), the coalitions per image as a fraction of 2**M,
and how often |φ̂ − φ| ≤ 2·SE (the estimator's own standard error).

Estimators: kernel (paired KernelSHAP: sizes 1, M−1, 2, M−2, ... enumerated while they fit,
complement pairs drawn from the rest) and permutation (antithetic permutation sampling).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from iaside.runtime import apply_malloc_fix


def exact_table(loaded, m: int, n_images: int, precision: str, cache: Path) -> np.ndarray:
    """(N, 2**M) log p(y | x_S) in nats for every image and coalition, cached on disk."""
    import iaside

    path = cache / f"exact_lite0_imagenet_N{n_images}_M{m}_{precision}_zero.npz"
    if path.exists():
        return np.load(path)["logp_nats"]
    result = iaside.explain(loaded, "samples:imagenet", bands=m, samples=n_images, fill="zero", n_bootstrap=0,
                            precision=precision, batch_size=64, show_progress=True, record=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, logp_nats=result.per_image["logp_nats"])
    return result.per_image["logp_nats"]


def plan(estimator: str, m: int, budget: int, seed: int):
    """(masks (K,), Shapley map (K, M), standard-error function of the mean game)."""
    from iaside.game import (
        kernel_matrix, kernel_plan, kernel_standard_error, permutation_matrix, permutation_plan,
        permutation_standard_error,
    )

    if estimator == "kernel":
        p = kernel_plan(m, budget, seed)
        return p.masks, kernel_matrix(p), lambda v: kernel_standard_error(v, p, n_resamples=100, seed=seed)
    masks, perms = permutation_plan(m, budget, seed)
    return masks, permutation_matrix(masks, perms), lambda v: permutation_standard_error(v, masks, perms)


def check_against_a_real_run(loaded, estimator: str, m: int, budget: int, n_images: int, precision: str,
                             table: np.ndarray) -> None:
    import iaside

    setting = {"coalitions": budget} if estimator == "kernel" else {"permutations": budget}
    real = iaside.explain(loaded, "samples:imagenet", bands=m, samples=n_images, fill="zero", n_bootstrap=0,
                          precision=precision, estimator=estimator, seed=0, show_progress=False, record=False,
                          **setting)
    masks, mat, _ = plan(estimator, m, budget, 0)
    assert np.allclose(real.phi.value, table.mean(axis=0)[masks] @ mat, atol=1e-4), \
        f"a real {estimator} run must equal the estimator on the exact table's columns"


def main() -> None:
    apply_malloc_fix()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bands", type=int, nargs="+", default=[10, 12])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--estimators", nargs="+", default=["kernel", "permutation"])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2],
                        help="kernel budgets as fractions of 2**M")
    parser.add_argument("--permutations", type=int, nargs="+", default=[8, 16, 32, 48, 64, 128])
    parser.add_argument("--cache", type=Path, default=Path("runs/estimator"))
    parser.add_argument("--skip-check", action="store_true", help="do not compare with real estimator runs")
    args = parser.parse_args()

    from iaside.models import load_model
    from iaside.runtime import configure_threads
    from iaside.summary import sid_from_phi

    configure_threads()
    loaded = load_model("efficientnet-lite0")
    rows = []
    for m in args.bands:
        table = exact_table(loaded, m, args.images, args.precision, args.cache)
        game = table.mean(axis=0)  # the data set's mean game, (2**M,)
        from iaside.game import exact_shapley

        phi_exact = exact_shapley(game)
        sid_exact = sid_from_phi(phi_exact)
        print(f"M={m}: exact phi (nats) {np.round(phi_exact, 3).tolist()}", flush=True)
        for estimator in args.estimators:
            budgets = ([max(2 * m + 2, int(round(f * 2**m))) for f in args.fractions] if estimator == "kernel"
                       else args.permutations)
            if not args.skip_check:
                check_against_a_real_run(loaded, estimator, m, budgets[0], args.images, args.precision, table)
            for budget in budgets:
                errors, covered, passes = [], [], []
                for seed in range(args.seeds):
                    masks, mat, se_of = plan(estimator, m, budget, seed)
                    phi = game[masks] @ mat
                    errors.append(np.abs(sid_from_phi(phi) - sid_exact).sum())
                    covered.append(np.mean(np.abs(phi - phi_exact) <= 2 * se_of(game[masks])))
                    passes.append(len(masks))
                setting = f"{budget} coalitions" if estimator == "kernel" else f"{budget} permutations"
                rows.append(f"| {m} | {estimator} | {setting} | {np.mean(passes):.0f} | {np.mean(passes) / 2**m:.3f} | "
                            f"{np.mean(errors):.4f} | {np.quantile(errors, 0.9):.4f} | {np.mean(covered):.2f} |")
                print(rows[-1], flush=True)
    print(f"\nEfficientNet-Lite0, samples:imagenet N={args.images}, zero fill, {args.precision}, "
          f"{args.seeds} seeds per budget\n")
    print("| M | estimator | setting | coalitions/image | fraction of 2**M | SID L1 error mean | SID L1 error p90 | "
          "|φ̂−φ| ≤ 2·SE |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
