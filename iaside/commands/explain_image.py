"""iaside explain-image: one image's band images, its own φ over bands, and the coalitions that
keep or flip its prediction (the local counterpart of the global SID; 2**M passes per fill)."""

from __future__ import annotations

from pathlib import Path

from ._args import add_bands_argument

NAME = "explain-image"
HELP = "explain one image: band images, its own φ over bands, the coalition that keeps or flips its top-1"


def add_arguments(parser) -> None:
    from ._args import add_model_arguments

    parser.add_argument("image", type=Path, help="an image file (any format PIL reads)")
    add_model_arguments(parser)
    parser.add_argument(
        "--label",
        help="the class whose log-probability is explained: an index or one of the "
        "model's class names (default: the full image's top-1)",
    )
    add_bands_argument(parser)
    parser.add_argument("--partition", choices=["linf", "l2"], default="linf", help="band shape (default linf)")
    parser.add_argument(
        "--fill",
        choices=["image-mean", "zero"],
        default="image-mean",
        help="what replaces a removed band: the image's own mean colour (default; keeps its "
        "brightness) or zero (an ideal band-stop)",
    )
    parser.add_argument(
        "--fill-from",
        type=Path,
        metavar="FOLDER",
        help="use images from FOLDER as partners instead (the global run's partner fill), averaging v(S) over them",
    )
    parser.add_argument(
        "--partners",
        type=int,
        default=4,
        help="how many --fill-from images to average over (default 4; cost 2**M passes each)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    parser.add_argument("--run", type=Path, metavar="DIR", help="a run folder whose global SID is printed alongside")
    parser.add_argument("-o", "--output", type=Path, help="the PNG to write (default ./IMAGE_STEM.explain.png)")


def _label(text: str | None, class_names) -> int | None:
    from ..errors import IasideError

    if text is None:
        return None
    if text.isdigit():
        return int(text)
    names = [n.lower() for n in class_names or []]
    if text.lower() in names:
        return names.index(text.lower())
    raise IasideError(f"--label {text!r} is neither a class index nor one of the model's class names")


def _partners(folder: Path, k: int, image: Path, cfg) -> list:
    """Up to k images of ``folder`` (sorted names, the explained image excluded), preprocessed like it."""
    from ..data import open_dataset
    from ..errors import IasideError

    dataset = open_dataset(str(folder), cfg, labels="predicted")
    chosen = [
        i
        for i, src in enumerate(dataset.sources)
        if not (isinstance(src, str) and Path(src).resolve() == image.resolve())
    ][:k]
    if not chosen or k < 1:
        raise IasideError(f"--fill-from {folder}: no partner image to use (need --partners >= 1 and another image)")
    return [dataset[i].pixels for i in chosen]


def run(args) -> int:
    from ..runtime import apply_malloc_fix

    apply_malloc_fix()
    import numpy as np

    from ..data import load_image, preprocess
    from ..errors import IasideError
    from ..models import load_model
    from ..report.local import explain_image, plot_local
    from ._args import model_options

    if not args.image.is_file():
        raise IasideError(f"image {args.image} does not exist or is not a regular file")
    out = args.output or Path(args.image.stem + ".explain.png")
    if out.is_dir():
        raise IasideError(
            f"-o {out} is a folder; give the PNG file to write, e.g. {out / (args.image.stem + '.explain.png')}"
        )
    loaded = load_model(args.model, device=args.device, **model_options(args))
    cfg = loaded.data_config
    try:
        pixels = preprocess(load_image(str(args.image), cfg.channels), cfg)
    except OSError as err:
        raise IasideError(f"cannot read image {args.image} ({err})") from err
    partners = _partners(args.fill_from, args.partners, args.image, cfg) if args.fill_from else []
    exp = explain_image(
        loaded.model,
        pixels,
        label=_label(args.label, loaded.model.class_names),
        bands=args.bands,
        partition=args.partition,
        fill=args.fill,
        fill_from=partners,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        class_names=loaded.model.class_names,
    )
    global_sid = None
    if args.run is not None:
        from ..result import Result

        result = Result.load(args.run)
        if result.n_bands != args.bands:
            raise IasideError(f"--run {args.run} has M = {result.n_bands} bands, this view M = {args.bands}")
        global_sid = np.asarray(result.sid.value)
    print(f"{args.image.name} with {args.model}")
    print(exp.table(global_sid))
    plot_local(exp, out, title=f"{args.image.name}: {args.model}, M = {args.bands}, fill {exp.fill}")
    print(f"wrote {out}")
    return 0
