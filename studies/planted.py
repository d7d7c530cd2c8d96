"""Planted-frequency study: does I-ASIDE find the band that carries the label?

    python studies/planted.py [--quick]

For each band k and partition, a small CNN is trained on CPU on ``planted_images(band=k)``
(the label lives in band k only, see iaside/synthetic.py), then I-ASIDE (M bands, partner
fill, 1000 bootstrap resamples) runs on held-out images. Prints a markdown table: k,
partition, clean accuracy, SID on band k with its 95 % interval, rank of band k, the signed
share φ_k/Σφ, and the largest SID elsewhere.

Two-band variant: the label is planted in bands k1 and k2 with peak-amplitude strengths
(s1, s2), s1 + s2 = 2 (so the background's scale is the same in every row); prints how the
SID and φ ratios follow s1/s2, with the measured energy ratio of the two planted components.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

import iaside
from iaside.models.base import Classifier
from iaside.runtime import apply_malloc_fix
from iaside.spectral import band_masks, split_bands
from iaside.synthetic import planted_images
from iaside.training import fit_one_cycle


def small_cnn(n_classes: int = 4, pool: int = 1) -> nn.Module:
    """Three 3×3 conv layers with batch norm, average pooling to pool×pool, a linear head."""
    layers, c_in = [], 1
    for c_out, stride in ((16, 1), (32, 2), (32, 2)):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool), nn.Flatten(), nn.Linear(c_in * pool * pool, n_classes))


def fuse_batchnorm(net: nn.Sequential) -> nn.Sequential:
    """Fold every BatchNorm2d into the Conv2d before it: the same eval-mode outputs (to float
    rounding) from a plain conv net, which is what the numbers in docs/proofs.md were run on."""
    layers = list(net)
    out = []
    for layer in layers:
        if isinstance(layer, nn.BatchNorm2d) and out and isinstance(out[-1], nn.Conv2d):
            out[-1] = fuse_conv_bn_eval(out[-1], layer)
        else:
            out.append(layer)
    return nn.Sequential(*out).eval()


def train(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int, lr: float = 3e-3, pool: int = 1) -> nn.Module:
    """Adam with a one-cycle schedule, batch 64; returns the network in eval mode, batch norm folded."""
    torch.manual_seed(seed)
    net = small_cnn(int(y.max()) + 1, pool)
    fit_one_cycle(net, x, y, epochs, lr)
    return fuse_batchnorm(net.eval())


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def explain(net, x, y, args, partition) -> iaside.Result:
    return iaside.explain(
        Classifier(net, (0.0,), (1.0,)),
        (x, y),
        bands=args.bands,
        partition=partition,
        seed=args.seed,
        show_progress=False,
        batch_size=256,
    )


def single_band(args) -> None:
    print(
        f"\n### One planted band (M = {args.bands}, {args.size}×{args.size}, {args.train} training images, "
        f"{args.epochs} epochs, {args.n_explain} explained images, partner fill)\n"
    )
    print(
        "| k | partition | clean acc. | SID on k [95 % CI] | rank of k | φ_k/Σφ | largest SID elsewhere | train s | explain s |"
    )
    print("|---:|---|---:|---|---:|---:|---:|---:|---:|")
    for partition in ("linf", "l2"):
        for k in args.ks:
            common = dict(band=k, partition=partition, n_bands=args.bands, size=args.size)
            t0 = time.perf_counter()
            x, y = planted_images(args.train, seed=args.seed, **common)
            net = train(x, y, args.epochs, args.seed)
            xt, yt = planted_images(args.n_test, seed=args.seed + 1000, **common)
            acc = accuracy(net, xt, yt)
            t1 = time.perf_counter()
            r = explain(net, xt[: args.n_explain], yt[: args.n_explain], args, partition)
            t2 = time.perf_counter()
            sid = r.sid.value
            rank = 1 + int((sid > sid[k]).sum())
            print(
                f"| {k} | {partition} | {acc:.3f} | {sid[k]:.3f} [{r.sid.low[k]:.3f}, {r.sid.high[k]:.3f}] | {rank} "
                f"| {r.shares.value[k]:.3f} | {np.delete(sid, k).max():.3f} | {t1 - t0:.0f} | {t2 - t1:.0f} |",
                flush=True,
            )


def planted_energy_ratio(k1: int, k2: int, strengths, args) -> float:
    """Mean energy of the planted component in band k1 over band k2 (background subtracted)."""
    masks = band_masks(args.size, args.size, args.bands, "linf")
    common = dict(band=(k1, k2), n_bands=args.bands, size=args.size, seed=args.seed + 1000)
    x, _ = planted_images(args.n_explain, strength=strengths, **common)
    bg, _ = planted_images(args.n_explain, strength=(0.0, 0.0), **common)
    scale = (1.0 + 0.0) / (1.0 + sum(strengths))  # A(s)/A(0)
    planted = split_bands(x.double() - 0.5, masks) - scale * split_bands(bg.double() - 0.5, masks)
    energy = planted.square().sum(dim=(2, 3, 4)).mean(0)
    return float(energy[k1] / energy[k2])


def two_bands(args) -> None:
    k1, k2 = args.pair
    print(f"\n### Two planted bands k1 = {k1}, k2 = {k2} (linf, peak strengths s1 + s2 = 2)\n")
    print(
        "| s1/s2 | planted energy ratio | clean acc. | SID k1 | SID k2 | SID k1/(k1+k2) | φ k1/φ k2 | SID elsewhere (sum) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for ratio in args.ratios:
        s2 = 2.0 / (1.0 + ratio)
        strengths = (2.0 - s2, s2)
        common = dict(band=(k1, k2), strength=strengths, n_bands=args.bands, size=args.size)
        x, y = planted_images(args.train, seed=args.seed, **common)
        net = train(x, y, args.epochs, args.seed)
        xt, yt = planted_images(args.n_test, seed=args.seed + 1000, **common)
        acc = accuracy(net, xt, yt)
        r = explain(net, xt[: args.n_explain], yt[: args.n_explain], args, "linf")
        sid, phi = r.sid.value, r.phi.value
        rest = np.delete(sid, [k1, k2]).sum()
        print(
            f"| {ratio:g} | {planted_energy_ratio(k1, k2, strengths, args):.2f} | {acc:.3f} | {sid[k1]:.3f} | {sid[k2]:.3f} "
            f"| {sid[k1] / (sid[k1] + sid[k2]):.3f} | {phi[k1] / phi[k2]:.2f} | {rest:.3f} |",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer bands k, images and ratios (a few minutes)")
    parser.add_argument("--bands", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    apply_malloc_fix()
    torch.set_num_threads(2)
    if args.quick:
        args.ks, args.train, args.epochs, args.n_explain, args.ratios = [0, 4, 7], 1500, 3, 32, [0.25, 1.0, 4.0]
    else:
        args.ks, args.train, args.epochs, args.n_explain, args.ratios = (
            [0, 1, 3, 5, 7],
            3000,
            4,
            100,
            [0.25, 0.5, 1.0, 2.0, 4.0],
        )
    args.n_test, args.pair = 500, (2, 5)
    print(
        f"# Planted-band study ({'quick' if args.quick else 'full'}; torch {torch.__version__}, {torch.get_num_threads()} threads)"
    )
    single_band(args)
    two_bands(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
