"""iaside run: analyse a model on a data set."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ._args import add_bands_argument, add_model_arguments, model_options

NAME = "run"
HELP = "analyse a model on a data set (exact I-ASIDE)"


def shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n, e.g. 0/4, got {text!r}") from None
    return i, n


def batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}") from None


def default_out(model: str, data: str) -> Path:
    slug = lambda s: re.sub(r"[^A-Za-z0-9.-]+", "-", Path(s).name if "/" in s else s).strip("-")
    return Path("runs") / f"{slug(model)}_{slug(data)}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..engine import OPTIMIZATIONS
    from ..estimators import DRAWS, ESTIMATORS
    from ..fills import FILLS
    from ..spectral import PARTITIONS

    add_model_arguments(parser)
    parser.add_argument("--data", required=True, help="samples:imagenet, samples:photos, or a folder")
    parser.add_argument(
        "--labels",
        help="'predicted' (the model's own top-1), 'sorted' (class folders in "
        "sorted order), or a CSV filename,label for a flat folder",
    )
    add_bands_argument(parser)
    parser.add_argument("--partition", choices=PARTITIONS, help="band shape (default linf; the paper preset: square)")
    parser.add_argument("--fill", choices=FILLS + ("random",), help="what replaces a removed band (default partner)")
    parser.add_argument("--preset", choices=["paper"], help="'paper' reproduces the authors' script")
    parser.add_argument("--clip", action="store_true", default=None, help="clip coalition images to [0, 1]")
    parser.add_argument("--samples", type=int, help="analyse a seeded subset of N images")
    parser.add_argument(
        "--batch-size",
        type=batch_size,
        default=64,
        help="coalition images per forward pass, or 'auto' (a short probe picks it; default 64)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--estimator",
        choices=ESTIMATORS,
        default="exact",
        help="exact: all 2**M coalitions; kernel: paired KernelSHAP, permutation: antithetic "
        "permutation sampling (both for large M)",
    )
    parser.add_argument(
        "--permutations",
        type=int,
        help="permutations per image for --estimator permutation "
        "(even; default: about as many passes as the kernel default)",
    )
    parser.add_argument(
        "--coalitions",
        type=int,
        help="coalitions per image for --estimator kernel (default 10%% of 2**M, at most 1024)",
    )
    parser.add_argument(
        "--draws",
        choices=DRAWS,
        help="for --estimator permutation: per-image (default) draws "
        "each image's own permutations, so the sampling error averages out over images and the "
        "intervals include it; shared: one draw for all images (always so for kernel)",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--target-ci", type=float, help="stop once the score's 95%% CI half-width is below this")
    parser.add_argument("--shard", type=shard, help="process block i of n (e.g. 0/4); combine with 'iaside merge'")
    parser.add_argument("--workers", type=int, default=0, help="data-loader processes (default 0)")
    parser.add_argument(
        "--on-bad-image",
        choices=["error", "skip"],
        default="error",
        help="error: stop at an unreadable image, naming it; skip: drop it and list it in the result",
    )
    parser.add_argument(
        "--optimize",
        choices=OPTIMIZATIONS,
        default="none",
        help="freeze: trace and freeze the model (folds batch norm; checked against the model, "
        "falls back with a warning); compile: torch.compile with frozen weights at two fixed batch shapes "
        "(compiled once per machine and kept in the cache, then the fastest); auto: compile when "
        "the cache holds the model or the run is long enough to pay for compiling (default none)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="compile in memory for this run only: do not "
        "load or keep compiled models in the cache folder (IASIDE_CACHE, default ~/.cache/iaside)",
    )
    parser.add_argument("--out", type=Path, help="output folder (default runs/MODEL_DATA); reruns resume")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..runs import Stopped, stop_on_signals

    out = args.out or default_out(args.model, args.data)
    try:
        with stop_on_signals():  # SIGTERM, SIGHUP: the engine checkpoints as for Ctrl-C
            result = _explain(args, out)
    except Stopped as stop:
        print(
            f"iaside: stopped by {stop}; the finished images are saved in {out}: rerun the same command to resume",
            file=sys.stderr,
        )
        return stop.exit_code
    if result is None:  # a shard, or a torchrun rank other than 0
        if args.shard is not None:
            print(f"shard {args.shard[0]}/{args.shard[1]} done: state saved in {out}; combine with 'iaside merge'")
        return 0
    print(result.table())
    for bad in result.data.get("skipped", []):
        print(f"skipped {bad['name']}: {bad['reason']}")
    if result.meta.get("precision_requested") == "auto":
        print(
            f"precision: {result.meta['precision']} (--precision auto: bf16 where the device computes it "
            "natively, else fp32; --precision fp32 for float32)"
        )
    rate = result.meta.get("images_per_s")
    if rate:
        passes = result.meta["forward_passes"]
        print(
            f"{passes} forward passes, {rate:.2f} images/s "
            f"({rate * passes / result.meta['images_this_session']:.0f} passes/s)"
        )
    print(f"wrote {out}/result.json, per_image.npz, sid.png")
    return 0


def _explain(args, out: Path):
    from ..api import explain

    return explain(
        args.model,
        args.data,
        bands=args.bands,
        partition=args.partition,
        fill=args.fill,
        preset=args.preset,
        clip=args.clip,
        labels=args.labels,
        samples=args.samples,
        seed=args.seed,
        n_bootstrap=args.bootstrap,
        estimator=args.estimator,
        permutations=args.permutations,
        coalitions=args.coalitions,
        draws=args.draws,
        target_ci=args.target_ci,
        shard=args.shard,
        on_bad_image=args.on_bad_image,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        num_workers=args.workers,
        optimize=args.optimize,
        cache=not args.no_cache,
        **model_options(args),
        out=out,
        show_progress=not args.quiet,
    )
