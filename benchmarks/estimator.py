"""Sampling estimators against exact I-ASIDE at large M: SID error versus forward-pass budget.

    python benchmarks/estimator.py [--source lite0|mnist] [--bands 10 12] [--images 8] [--seeds 20]

One exact run per M (zero fill, so that no image needs a partner) gives every coalition's
log-probability for every image; it is cached in ``--cache`` (delete the file to recompute).
Sources: lite0 (EfficientNet-Lite0 on the bundled ImageNet samples, at most 20 images) and
mnist (the small CNN of ``studies/stability.py`` on held-out real MNIST digits, thousands of
images at a few seconds per 100 images at M = 12). The engine evaluates each (image,
coalition) the same way whichever coalitions are asked for, so an estimator's answer for a
budget equals the estimator applied to those entries of the exact table; the script checks
this once per estimator against a real run, then reports, per budget and over seeds, the SID
L1 error against exact on the same images (mean and 90th percentile), the coalitions per image
as a fraction of 2**M, and how often |φ̂ − φ| ≤ 2·SE (the estimator's own standard error).

Estimators: kernel (paired KernelSHAP on coalitions shared by all images: sizes 1, M−1, 2,
M−2, ... enumerated while they fit, complement pairs drawn from the rest), permutation
(antithetic permutations shared by all images) and permutation-per-image (each image draws its
own antithetic permutations, the tool's default for --estimator permutation: its sampling
error averages out over images).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "studies"))

from iaside.runtime import apply_malloc_fix


def source_model(source: str):
    """(model, data) of a source: the data is a spec or an (images, labels) pair."""
    if source == "lite0":
        from iaside.models import load_model

        return load_model("efficientnet-lite0"), "samples:imagenet"
    from stability import mnist_source

    from iaside.models.base import Classifier

    net, x, y = mnist_source()
    return Classifier(net, (0.0,), (1.0,)), (x, y)


def subset(data, n_images: int):
    return data if isinstance(data, str) else (data[0][:n_images], data[1][:n_images])


def exact_table(source: str, model, data, m: int, n_images: int, precision: str, cache: Path) -> np.ndarray:
    """(N, 2**M) log p(y | x_S) in nats for every image and coalition, cached on disk."""
    import iaside

    name = "lite0_imagenet" if source == "lite0" else "mnist_cnn"
    path = cache / f"exact_{name}_N{n_images}_M{m}_{precision}_zero.npz"
    if path.exists():
        return np.load(path)["logp_nats"]
    result = iaside.explain(
        model,
        subset(data, n_images),
        bands=m,
        samples=n_images if source == "lite0" else None,
        fill="zero",
        n_bootstrap=0,
        precision=precision,
        batch_size=64 if source == "lite0" else 256,
        show_progress=True,
        record=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, logp_nats=result.per_image["logp_nats"])
    return result.per_image["logp_nats"]


def estimate(estimator: str, table: np.ndarray, m: int, budget: int, seed: int):
    """(φ̂ of the data set (M,), its standard error (M,), coalitions per image) from the exact table."""
    from iaside.estimators.kernel import kernel_matrix, kernel_plan, kernel_standard_error
    from iaside.estimators.permutation import (
        PermutationEstimator,
        permutation_matrix,
        permutation_plan,
        permutation_standard_error,
    )

    game = table.mean(axis=0)  # the data set's mean game, (2**M,)
    if estimator == "kernel":
        p = kernel_plan(m, budget, seed)
        return (
            game[p.masks] @ kernel_matrix(p),
            kernel_standard_error(game[p.masks], p, n_resamples=100, seed=seed),
            len(p.masks),
        )
    if estimator == "permutation":
        masks, perms = permutation_plan(m, budget, seed)
        return (
            game[masks] @ permutation_matrix(masks, perms),
            permutation_standard_error(game[masks], masks, perms),
            len(masks),
        )
    plan = PermutationEstimator(m, "per-image", budget, seed)
    index = np.arange(len(table))
    phi = plan.phi(np.stack([table[i, plan.masks(i)] for i in index]), index)  # (N, M)
    return phi.mean(axis=0), phi.std(axis=0, ddof=1) / np.sqrt(len(phi)), plan.n_coalitions


def check_against_a_real_run(
    source: str, model, data, estimator: str, m: int, budget: int, n_images: int, precision: str, table: np.ndarray
) -> None:
    import iaside

    setting = {"coalitions": budget} if estimator == "kernel" else {"permutations": budget}
    draws = "per-image" if estimator == "permutation-per-image" else "shared"
    real = iaside.explain(
        model,
        subset(data, n_images),
        bands=m,
        samples=n_images if source == "lite0" else None,
        fill="zero",
        n_bootstrap=0,
        precision=precision,
        estimator=estimator.split("-")[0],
        draws=draws,
        seed=0,
        show_progress=False,
        record=False,
        **setting,
    )
    assert np.allclose(real.phi.value, estimate(estimator, table, m, budget, 0)[0], atol=1e-4), (
        f"a real {estimator} run must equal the estimator on the exact table's entries"
    )


def main() -> None:
    apply_malloc_fix()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=["lite0", "mnist"], default="lite0")
    parser.add_argument("--bands", type=int, nargs="+", default=[10, 12])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument(
        "--estimators",
        nargs="+",
        default=["kernel", "permutation", "permutation-per-image"],
        choices=["kernel", "permutation", "permutation-per-image"],
    )
    parser.add_argument(
        "--fractions", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2], help="kernel budgets as fractions of 2**M"
    )
    parser.add_argument(
        "--permutations",
        type=int,
        nargs="+",
        default=[8, 16, 32, 48, 64, 128],
        help="permutations (shared) or permutations per image (per-image)",
    )
    parser.add_argument("--cache", type=Path, default=Path("runs/estimator"))
    parser.add_argument("--skip-check", action="store_true", help="do not compare with real estimator runs")
    args = parser.parse_args()

    from iaside.game import exact_shapley
    from iaside.runtime import configure_threads
    from iaside.summary import sid_from_phi

    configure_threads()
    model, data = source_model(args.source)
    rows = []
    for m in args.bands:
        table = exact_table(args.source, model, data, m, args.images, args.precision, args.cache)
        phi_exact = exact_shapley(table.mean(axis=0))
        sid_exact = sid_from_phi(phi_exact)
        print(f"M={m}: exact phi (nats) {np.round(phi_exact, 3).tolist()}", flush=True)
        for estimator in args.estimators:
            budgets = (
                [max(2 * m + 2, int(round(f * 2**m))) for f in args.fractions]
                if estimator == "kernel"
                else args.permutations
            )
            if not args.skip_check:
                check_against_a_real_run(
                    args.source, model, data, estimator, m, budgets[0], args.images, args.precision, table
                )
            for budget in budgets:
                errors, covered, passes = [], [], []
                for seed in range(args.seeds):
                    phi, se, k = estimate(estimator, table, m, budget, seed)
                    errors.append(np.abs(sid_from_phi(phi) - sid_exact).sum())
                    covered.append(np.mean(np.abs(phi - phi_exact) <= 2 * se))
                    passes.append(k)
                setting = f"{budget} coalitions" if estimator == "kernel" else f"{budget} permutations"
                rows.append(
                    f"| {m} | {estimator} | {setting} | {np.mean(passes):.0f} | {np.mean(passes) / 2**m:.3f} | "
                    f"{np.mean(errors):.4f} | {np.quantile(errors, 0.9):.4f} | {np.mean(covered):.2f} |"
                )
                print(rows[-1], flush=True)
    what = "EfficientNet-Lite0, samples:imagenet" if args.source == "lite0" else "small CNN, held-out real MNIST digits"
    print(f"\n{what}, N={args.images}, zero fill, {args.precision}, {args.seeds} seeds per budget\n")
    print(
        "| M | estimator | setting | coalitions/image | fraction of 2**M | SID L1 error mean | SID L1 error p90 | "
        "|φ̂−φ| ≤ 2·SE |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
