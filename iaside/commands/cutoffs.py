"""iaside cutoffs: low-pass and high-pass accuracy at any radial cut-off (their own passes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import add_model_arguments, model_options
from .run import batch_size, default_out

NAME = "cutoffs"
HELP = (
    "accuracy and mean log p(y) of ideal low-pass (r < c) and high-pass (r >= c) images at each cut-off c "
    "(2 × cut-offs × images passes, printed first)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..spectral import PARTITIONS

    add_model_arguments(parser)
    parser.add_argument("--data", required=True, help="samples:imagenet, samples:photos, or a folder")
    parser.add_argument(
        "--cutoffs",
        default="0.05,0.1,0.15,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0",
        help="normalised radii in (0, 1], Nyquist = 1 (default 0.05,0.1,...,1.0: 12 cut-offs)",
    )
    parser.add_argument(
        "--partition",
        choices=[p for p in PARTITIONS if p != "square"],
        default="linf",
        help="radius: linf (square rings, as the bands by default) or l2 (default linf)",
    )
    parser.add_argument("--labels", help="'predicted', 'sorted', or a CSV filename,label (as in `iaside run`)")
    parser.add_argument("--samples", type=int, help="a seeded subset of N images")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples over images")
    parser.add_argument("--batch-size", type=batch_size, default=64, help="filtered images per forward pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, help="output folder (default: the run folder runs/MODEL_DATA); reruns resume"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the cost and stop")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..cutoffs import CUTOFFS_JSON, cutoffs_table, run_cutoffs

    out = args.out or default_out(args.model, args.data)
    summary = run_cutoffs(
        args.model,
        args.data,
        args.cutoffs,
        partition=args.partition,
        labels=args.labels,
        samples=args.samples,
        seed=args.seed,
        n_bootstrap=args.bootstrap,
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
    print(f"clean top-1 accuracy {summary['clean_accuracy']:.3f} over {summary['n_images']} images")
    print(cutoffs_table(summary))
    print(f"wrote {out}/{CUTOFFS_JSON}")
    return 0
