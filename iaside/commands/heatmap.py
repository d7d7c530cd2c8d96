"""iaside heatmap: the Fourier heat map of a model (error rate under single Fourier-basis perturbations)."""

from __future__ import annotations

import argparse

from ._args import add_pass_arguments, pass_options

NAME = "heatmap"
HELP = (
    "Fourier heat map: error rate and mean Δlog p(y) under an additive Fourier-basis perturbation of ℓ2 norm "
    "eps at each frequency (cells × images passes, printed first)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    add_pass_arguments(
        parser,
        what="perturbed",
        seed_help="seeds the per-image, per-channel signs r = ±1",
        out_help="output folder (default: the run folder runs/MODEL_DATA, so the "
        "report shows the map beside the I-ASIDE run); reruns resume",
    )


def run(args) -> int:
    from ..heatmap import HEATMAP_JSON, HEATMAP_PNG, run_heatmap

    options = pass_options(args)
    summary = run_heatmap(args.model, args.data, eps=args.eps, stride=args.stride, say=print, **options)
    if summary is None:
        return 0
    err = summary["error_rate"]
    worst = max(range(len(err)), key=err.__getitem__)
    print(
        f"clean error rate {summary['clean_error_rate']:.3f}; mean error rate over frequencies {sum(err) / len(err):.3f};"
        f" worst at (u, v) = {tuple(summary['cells'][worst])}: {err[worst]:.3f}"
    )
    print(f"wrote {options['out']}/{HEATMAP_JSON}, {HEATMAP_PNG}")
    return 0
