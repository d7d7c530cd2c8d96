"""iaside cutoffs: low-pass and high-pass accuracy at any radial cut-off (their own passes)."""

from __future__ import annotations

import argparse

from ._args import add_pass_arguments, pass_options

NAME = "cutoffs"
HELP = (
    "accuracy and mean log p(y) of ideal low-pass (r < c) and high-pass (r >= c) images at each cut-off c "
    "(2 × cut-offs × images passes, printed first)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..spectral import PARTITIONS

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
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples over images")
    add_pass_arguments(
        parser,
        what="filtered",
        seed_help=None,
        out_help="output folder (default: the run folder runs/MODEL_DATA); reruns resume",
    )


def run(args) -> int:
    from ..cutoffs import CUTOFFS_JSON, cutoffs_table, run_cutoffs

    options = pass_options(args)
    summary = run_cutoffs(
        args.model, args.data, args.cutoffs, partition=args.partition, n_bootstrap=args.bootstrap, say=print, **options
    )
    if summary is None:
        return 0
    print(f"clean top-1 accuracy {summary['clean_accuracy']:.3f} over {summary['n_images']} images")
    print(cutoffs_table(summary))
    print(f"wrote {options['out']}/{CUTOFFS_JSON}")
    return 0
