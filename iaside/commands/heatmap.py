"""iaside heatmap: the Fourier heat map of a model (error rate under single Fourier-basis perturbations)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import add_model_arguments, model_options
from .run import batch_size, default_out

NAME = "heatmap"
HELP = (
    "Fourier heat map: error rate and mean Δlog p(y) under an additive Fourier-basis perturbation of ℓ2 norm "
    "eps at each frequency (cells × images passes, printed first)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, help="samples:imagenet, samples:photos, or a folder")
    parser.add_argument("--labels", help="'predicted', 'sorted', or a CSV filename,label (as in `iaside run`)")
    parser.add_argument("--samples", type=int, help="a seeded subset of N images")
    parser.add_argument(
        "--eps",
        type=float,
        default=4.0,
        help="ℓ2 norm of the perturbation, pixels in [0, 1] (default 4.0, as Yin et al. on ImageNet)",
    )
    parser.add_argument(
        "--stride",
        type=int,
        default=1,
        help="measure every S-th frequency in each direction (cost falls about S² times; default 1)",
    )
    parser.add_argument("--batch-size", type=batch_size, default=64, help="perturbed images per forward pass")
    parser.add_argument("--seed", type=int, default=0, help="seeds the per-image, per-channel signs r = ±1")
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder (default: the run folder runs/MODEL_DATA, so the "
        "report shows the map beside the I-ASIDE run); reruns resume",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the cost and stop")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..heatmap import HEATMAP_JSON, HEATMAP_PNG, run_heatmap

    out = args.out or default_out(args.model, args.data)
    summary = run_heatmap(
        args.model,
        args.data,
        labels=args.labels,
        samples=args.samples,
        eps=args.eps,
        stride=args.stride,
        seed=args.seed,
        batch_size=64 if args.batch_size == "auto" else args.batch_size,
        device=args.device,
        precision=args.precision,
        **model_options(args),
        out=out,
        show_progress=not args.quiet,
        dry_run=args.dry_run,
        say=print,
    )
    if summary is None:
        return 0
    err = summary["error_rate"]
    worst = max(range(len(err)), key=err.__getitem__)
    print(
        f"clean error rate {summary['clean_error_rate']:.3f}; mean error rate over frequencies {sum(err) / len(err):.3f};"
        f" worst at (u, v) = {tuple(summary['cells'][worst])}: {err[worst]:.3f}"
    )
    print(f"wrote {out}/{HEATMAP_JSON}, {HEATMAP_PNG}")
    return 0
