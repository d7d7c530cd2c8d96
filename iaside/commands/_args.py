"""Command-line options shared by several commands, each written once."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..config import DEFAULT_BANDS, INTERPOLATIONS

DATA_CONFIG_FIELDS = ("input_size", "resize_size", "interpolation", "mean", "std", "channels")


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def size(text: str) -> tuple[int, int]:
    try:
        values = tuple(int(p) for p in re.split(r"[x,]", text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None
    if len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}")
    return (values[0], values[-1])


def add_bands_argument(parser: argparse.ArgumentParser) -> None:
    """--bands M, with the one default."""
    parser.add_argument(
        "--bands", type=int, default=DEFAULT_BANDS, help=f"number of spectral bands M (default {DEFAULT_BANDS})"
    )


def add_data_config_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """The data-config overrides: how the model wants its pixels (crop, resize, interpolation, mean/std)."""
    cfg = parser.add_argument_group(title)
    cfg.add_argument(
        "--data-config",
        type=Path,
        metavar="FILE.json",
        help="a JSON object of DataConfig fields (input_size, resize_size, interpolation, mean, std, channels)",
    )
    cfg.add_argument("--input-size", type=size, help="crop size N or HxW")
    cfg.add_argument("--resize-size", type=int, help="shorter side before the crop")
    cfg.add_argument("--interpolation", choices=INTERPOLATIONS)
    cfg.add_argument("--mean", type=floats, help="per-channel mean in [0, 1] units, e.g. 0.485,0.456,0.406")
    cfg.add_argument("--std", type=floats, help="per-channel std in [0, 1] units")
    cfg.add_argument("--channels", type=int, help="input channels (1 for grayscale models)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --weights, --num-classes, --outputs, --device, --precision and the data config (shared by commands)."""
    from ..engine import PRECISIONS
    from ..models.outputs import OUTPUTS

    parser.add_argument(
        "--model",
        required=True,
        help="efficientnet-lite0|1|2, torchscript:PATH, onnx:PATH, "
        "module:pkg.mod:factory, timm:NAME, torchvision:NAME, hf:NAME_OR_DIR",
    )
    parser.add_argument("--weights", help="weights file (.pth or .safetensors) for module:/timm:/torchvision: models")
    parser.add_argument("--num-classes", type=int, help="head size of the weights (default: read from them)")
    parser.add_argument(
        "--outputs",
        choices=OUTPUTS,
        default="logits",
        help="what the model returns: logits (default) or probabilities (their log is taken)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="model precision (default fp32)")
    add_data_config_arguments(
        parser,
        "data config (the flags > --data-config FILE, else a sidecar MODEL_FILE.json > the model's own > "
        "a fallback that warns)",
    )


def overrides(args) -> dict:
    """The data-config overrides given on the command line (None = not given)."""
    return {k: getattr(args, k) for k in DATA_CONFIG_FIELDS}


def model_options(args) -> dict:
    """``load_model`` keywords from the shared model arguments (all but the spec and device)."""
    return {
        "weights": args.weights,
        "num_classes": args.num_classes,
        "outputs": args.outputs,
        "data_config": args.data_config,
        "overrides": overrides(args),
    }


def add_images_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --labels, --samples: which images, labelled how (as in `iaside run`)."""
    parser.add_argument("--data", required=True, help="samples:imagenet, samples:photos, or a folder")
    parser.add_argument("--labels", help="'predicted', 'sorted', or a CSV filename,label (as in `iaside run`)")
    parser.add_argument("--samples", type=int, help="a seeded subset of N images")


def add_pass_arguments(parser: argparse.ArgumentParser, *, what: str, seed_help: str | None, out_help: str) -> None:
    """The options of a view with passes of its own (heatmap, cutoffs), after its own: the model,
    the images, batch size, seed, output folder, --dry-run and --quiet. ``what``: the images one
    forward pass takes (perturbed, filtered)."""
    from .run import batch_size

    add_model_arguments(parser)
    add_images_arguments(parser)
    parser.add_argument("--batch-size", type=batch_size, default=64, help=f"{what} images per forward pass")
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    parser.add_argument("--out", type=Path, help=out_help)
    parser.add_argument("--dry-run", action="store_true", help="print the cost and stop")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def pass_options(args) -> dict:
    """The keywords ``run_heatmap`` and ``run_cutoffs`` share (``variants.PASS_OPTIONS`` and
    --dry-run), from ``add_pass_arguments``' options; ``out`` defaults to the run folder."""
    from .run import default_out

    return {
        "labels": args.labels,
        "samples": args.samples,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "device": args.device,
        "precision": args.precision,
        **model_options(args),
        "out": args.out or default_out(args.model, args.data),
        "show_progress": not args.quiet,
        "dry_run": args.dry_run,
    }


def add_external_argument(parser: argparse.ArgumentParser, use: str) -> None:
    """--external FILE (repeatable): per-model robustness numbers the user already has; ``use``
    says what the command does with them."""
    parser.add_argument(
        "--external",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="per-model numbers you already have, joined by model name (repeatable): a CSV "
        f"model,<metric>,... or RobustBench model_info JSON (a file, or a folder of them); {use}",
    )
