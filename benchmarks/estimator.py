"""Permutation-sampling estimator against exact I-ASIDE at large M: error versus pass budget.

    python benchmarks/estimator.py [--bands 10 12] [--images 4] [--seeds 20]

One exact run per M (EfficientNet-Lite0, samples:imagenet, zero fill so that no image needs a
partner) gives every coalition's log-probability for every image. The engine evaluates each
(image, coalition) the same way whichever coalitions are asked for, so the permutation
estimator's answer for a budget equals the estimator applied to those columns of the exact
table; the script checks this once against a real ``--estimator permutation`` run, then
reports, per budget, the SID L1 error against exact (mean and 90th percentile over seeds), the
passes per image as a fraction of 2**M, and how often |φ̂ − φ| ≤ 2·SE.
"""
from __future__ import annotations

import argparse

import numpy as np

from iaside.runtime import apply_malloc_fix


def main() -> None:
    apply_malloc_fix()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bands", type=int, nargs="+", default=[10, 12])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[4, 8, 16, 24, 32, 48, 64, 128])
    args = parser.parse_args()

    import iaside
    from iaside.game import permutation_matrix, permutation_plan, permutation_standard_error
    from iaside.models import load_model
    from iaside.summary import sid_from_phi

    loaded = load_model("efficientnet-lite0")
    common = dict(samples=args.images, fill="zero", n_bootstrap=0, show_progress=True, batch_size=64)
    print(f"EfficientNet-Lite0, samples:imagenet N={args.images}, zero fill, {args.seeds} seeds per budget\n")
    print("| M | permutations | passes/image | fraction of 2**M | SID L1 error mean | SID L1 error p90 | "
          "|φ̂−φ| ≤ 2·SE |")
    print("|---|---|---|---|---|---|---|")
    for m in args.bands:
        exact = iaside.explain(loaded, "samples:imagenet", bands=m, **common)
        table = exact.per_image["logp_nats"].mean(axis=0)  # mean game over the images, (2**M,)
        sid_exact = np.asarray(exact.sid.value)
        check = iaside.explain(loaded, "samples:imagenet", bands=m, estimator="permutation", permutations=8,
                               seed=0, **common)
        masks, perms = permutation_plan(m, 8, 0)
        assert np.allclose(check.phi.value, table[masks] @ permutation_matrix(masks, perms), atol=1e-4), \
            "a permutation run must equal the estimator on the exact table's columns"
        for budget in args.budgets:
            errors, covered, passes = [], [], []
            for seed in range(args.seeds):
                masks, perms = permutation_plan(m, budget, seed)
                phi = table[masks] @ permutation_matrix(masks, perms)
                se = permutation_standard_error(table[masks], masks, perms)
                errors.append(np.abs(sid_from_phi(phi) - sid_exact).sum())
                covered.append(np.mean(np.abs(phi - exact.phi.value) <= 2 * se))
                passes.append(len(masks))
            print(f"| {m} | {budget} | {np.mean(passes):.0f} | {np.mean(passes) / 2**m:.3f} | {np.mean(errors):.4f} | "
                  f"{np.quantile(errors, 0.9):.4f} | {np.mean(covered):.2f} |", flush=True)


if __name__ == "__main__":
    main()
