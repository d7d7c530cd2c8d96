"""The paper preset versus the default on a real pretrained ImageNet model.

    python studies/preset_compare.py [--samples 20] [--bands 8] [--out /tmp/iaside-preset]

Runs ``iaside.explain("efficientnet-lite0", "samples:imagenet", ...)`` twice on the same
images: default (ℓ∞ radial bands, band-sum synthesis, partner fill) and ``preset="paper"``
(nested squares on the centred spectrum, abs + per-image min–max + clip, empty coalition = 0,
partner fill). Prints a markdown table: φ and SID per band, score and score_signed with
their 95 % bootstrap intervals, v(∅) and v(N). Each run is resumable from its ``--out``
subfolder (a second call only re-reads the saved state).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import iaside
from iaside.runtime import apply_malloc_fix


def run(name: str, out: Path, **kw) -> tuple[iaside.Result, float]:
    t0 = time.perf_counter()
    result = iaside.explain("efficientnet-lite0", "samples:imagenet", out=out / name, **kw)
    return result, time.perf_counter() - t0


def interval(e, i=None, fmt="{:.3f}") -> str:
    pick = (lambda a: float(a)) if i is None else (lambda a: float(a[i]))
    return f"{fmt.format(pick(e.value))} [{fmt.format(pick(e.low))}, {fmt.format(pick(e.high))}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20, help="images from samples:imagenet (20 = all)")
    parser.add_argument("--bands", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/iaside-preset-compare"))
    args = parser.parse_args(argv)
    apply_malloc_fix()
    common = dict(
        bands=args.bands, samples=args.samples, seed=args.seed, batch_size=args.batch_size, show_progress=False
    )
    default, t_default = run("default", args.out, **common)
    paper, t_paper = run("paper", args.out, preset="paper", **common)

    print(
        f"EfficientNet-Lite0, samples:imagenet, {default.data['n_images']} images, M = {args.bands}, "
        f"clean top-1 {default.clean_accuracy:.2f}; wall time default {t_default:.0f} s, paper {t_paper:.0f} s "
        f"(0 s = resumed from {args.out})\n"
    )
    print("| band | φ default (nats) | φ paper (nats) | SID default | SID paper |")
    print("|---:|---:|---:|---:|---:|")
    for i in range(args.bands):
        print(
            f"| {i} | {interval(default.phi, i, '{:+.3f}')} | {interval(paper.phi, i, '{:+.3f}')} "
            f"| {interval(default.sid, i)} | {interval(paper.sid, i)} |"
        )
    print()
    print("| | default | paper preset |")
    print("|---|---:|---:|")
    print(f"| score | {interval(default.score, fmt='{:.3f}')} | {interval(paper.score, fmt='{:.3f}')} |")
    print(
        f"| score_signed | {interval(default.score_signed, fmt='{:+.3f}')} | {interval(paper.score_signed, fmt='{:+.3f}')} |"
    )
    for label, k in (("v(∅) (nats)", 0), ("v(N) (nats)", -1)):
        print(f"| {label} | {default.v_nats[k]:+.3f} | {paper.v_nats[k]:+.3f} |")
    print(f"| Σφ = v(N) − v(∅) | {default.phi.value.sum():+.3f} | {paper.phi.value.sum():+.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
