"""Command line: parse, call the library, print. ``iaside run``, ``iaside show``, ``iaside models``."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .runtime import apply_malloc_fix


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _size(text: str) -> tuple[int, int]:
    parts = re.split(r"[x,]", text)
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values
    raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}")


def _default_out(model: str, data: str) -> Path:
    slug = lambda s: re.sub(r"[^A-Za-z0-9.-]+", "-", Path(s).name if "/" in s else s).strip("-")  # noqa: E731
    return Path("runs") / f"{slug(model)}_{slug(data)}"


def build_parser() -> argparse.ArgumentParser:
    from .config import INTERPOLATIONS
    from .engine import PRECISIONS
    from .fills import FILLS
    from .spectral import PARTITIONS

    parser = argparse.ArgumentParser(
        prog="iaside", description="I-ASIDE: spectral importance of an image classifier by exact Shapley values."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="analyse a model on a data set")
    run.add_argument("--model", required=True, help="efficientnet-lite0|1|2, torchscript:PATH, onnx:PATH, "
                     "module:pkg.mod:factory, timm:NAME, torchvision:NAME")
    run.add_argument("--weights", help="weights file for module:/timm:/torchvision: models")
    run.add_argument("--data", required=True, help="samples:imagenet, samples:photos, or a folder")
    run.add_argument("--labels", help="'predicted' (the model's own top-1), 'sorted' (class folders in "
                     "sorted order), or a CSV filename,label for a flat folder")
    run.add_argument("--bands", type=int, default=8, help="number of spectral bands M (default 8)")
    run.add_argument("--partition", choices=PARTITIONS, help="band shape (default linf; the paper preset: square)")
    run.add_argument("--fill", choices=FILLS + ("random",), help="what replaces a removed band (default partner)")
    run.add_argument("--preset", choices=["paper"], help="'paper' reproduces the authors' script")
    run.add_argument("--clip", action="store_true", default=None, help="clip coalition images to [0, 1]")
    run.add_argument("--samples", type=int, help="analyse a seeded subset of N images")
    run.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    run.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    run.add_argument("--precision", choices=PRECISIONS, default="fp32", help="model precision (default fp32)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    run.add_argument("--workers", type=int, default=0, help="data-loader processes (default 0)")
    run.add_argument("--out", type=Path, help="output folder (default runs/MODEL_DATA); reruns resume")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    cfg = run.add_argument_group("data config overrides (a TorchScript or ONNX file does not say these)")
    cfg.add_argument("--input-size", type=_size, help="crop size N or HxW")
    cfg.add_argument("--resize-size", type=int, help="shorter side before the crop")
    cfg.add_argument("--interpolation", choices=INTERPOLATIONS)
    cfg.add_argument("--mean", type=_floats, help="per-channel mean in [0, 1] units, e.g. 0.485,0.456,0.406")
    cfg.add_argument("--std", type=_floats, help="per-channel std in [0, 1] units")
    cfg.add_argument("--channels", type=int, help="input channels (1 for grayscale models)")

    show = sub.add_parser("show", help="print a finished result")
    show.add_argument("run_dir", type=Path)

    sub.add_parser("models", help="list the built-in models")
    return parser


def _cmd_run(args) -> int:
    from .api import explain

    overrides = {
        "input_size": args.input_size, "resize_size": args.resize_size, "interpolation": args.interpolation,
        "mean": args.mean, "std": args.std, "channels": args.channels,
    }
    out = args.out or _default_out(args.model, args.data)
    result = explain(
        args.model, args.data, bands=args.bands, partition=args.partition, fill=args.fill, preset=args.preset,
        clip=args.clip, labels=args.labels, samples=args.samples, seed=args.seed, n_bootstrap=args.bootstrap,
        batch_size=args.batch_size, device=args.device, precision=args.precision, num_workers=args.workers,
        weights=args.weights, overrides=overrides, out=out, show_progress=not args.quiet,
    )
    print(result.table())
    rate = result.meta.get("images_per_s")
    if rate:
        print(f"{result.meta['forward_passes']} forward passes, {rate:.2f} images/s "
              f"({rate * 2 ** result.n_bands:.0f} passes/s)")
    print(f"wrote {out}/result.json, per_image.npz, sid.png")
    return 0


def _cmd_show(args) -> int:
    from .result import Result

    print(Result.load(args.run_dir).table())
    return 0


def _cmd_models(args) -> int:
    from .models import available_models

    for name in available_models():
        print(name)
    return 0


def _one_line(err: Exception) -> str:
    """The message itself, also when a data-loader worker wrapped it in its traceback."""
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split("IasideError: ", 1)[-1]
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    apply_malloc_fix()
    from .errors import IasideError

    args = build_parser().parse_args(argv)
    try:
        return {"run": _cmd_run, "show": _cmd_show, "models": _cmd_models}[args.command](args)
    except IasideError as err:
        print(f"iaside: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iaside: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
