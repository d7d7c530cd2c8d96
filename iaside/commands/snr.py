"""iaside snr: spectral SNR of corruptions and adversarial perturbations, per band and per ring."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import add_bands_argument, add_model_arguments, model_options, overrides
from .robustness import add_perturbation_arguments, attacks_of, slug

NAME = "snr"
HELP = "per-band SNR (dB) of the ImageNet-C corruptions and of PGD perturbations, with the fitted decay"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    for action in parser._actions:  # a model is needed only for the attacks
        if "--model" in action.option_strings:
            action.required = False
            action.help = "the attacked model (needed for PGD only); " + (action.help or "")
    parser.add_argument("--data", required=True, help="samples:imagenet, samples:photos, or a folder")
    parser.add_argument("--labels", help="'predicted', 'sorted' or a CSV (the classes PGD attacks away from)")
    parser.add_argument("--samples", type=int, help="a seeded subset of N images")
    add_bands_argument(parser)
    parser.add_argument("--partition", choices=("linf", "l2"), default="linf", help="band shape (default linf)")
    parser.add_argument("--rings", type=int, help="rings of the finer radial grid (default min(32, side/2))")
    add_perturbation_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="output folder (default runs/snr_DATA[_MODEL])")
    parser.add_argument("--quiet", action="store_true")


def run(args) -> int:
    from ..data import check_labels, open_dataset
    from ..errors import IasideError
    from ..models import load_model
    from ..robustness.corruptions import corruption_names
    from ..robustness.evaluate import predict, stack_dataset
    from ..robustness.snr import measure_snr
    from ..robustness.views import plot_snr, plot_snr_levels
    from ..runtime import apply_malloc_fix

    apply_malloc_fix()
    attacks = attacks_of(args)
    loaded = None
    if args.model:
        loaded = load_model(args.model, device=args.device, **model_options(args))
        cfg = loaded.data_config
    elif attacks:
        raise IasideError("PGD needs the attacked model: pass --model, or --linf-eps none --l2-eps none")
    else:
        from ..config import resolve_data_config
        from ..models.registry import data_config_layers, warn_guessed

        cfg = resolve_data_config(data_config_layers([], data_config=args.data_config, overrides=overrides(args)))
        warn_guessed(
            cfg, "iaside snr without --model", None, used=("input_size", "resize_size", "interpolation", "channels")
        )
    dataset = open_dataset(
        args.data,
        cfg,
        labels=args.labels,
        class_names=loaded.model.class_names if loaded else None,
        samples=args.samples,
        seed=args.seed,
    )
    dataset.min_side = 2 * args.bands
    if loaded is not None:
        assert loaded.model.num_classes is not None  # probed when the model is loaded
        check_labels(dataset, loaded.model.num_classes)
    images, labels, _ = stack_dataset(dataset)
    images = images.to(args.device)
    if loaded is not None and (labels < 0).all():
        labels = predict(loaded.model, images, args.batch_size)
    result = measure_snr(
        images,
        corruptions=corruption_names(args.corruptions),
        severities=args.severities,
        attacks=attacks,
        model=loaded.model if loaded else None,
        labels=labels,
        n_bands=args.bands,
        partition=args.partition,
        n_rings=args.rings,
        seed=args.seed,
        batch_size=args.batch_size,
        data={
            "spec": getattr(dataset, "description", args.data),
            "n_images": len(dataset),
            "data_config": cfg.to_dict(),
        },
        model_info=None if loaded is None else {"spec": loaded.spec, "fingerprint": loaded.fingerprint},
        show_progress=not args.quiet,
    )
    out = args.out or Path("runs") / ("snr_" + slug(args.data) + (f"_{slug(args.model)}" if args.model else ""))
    result.save(out)
    plot_snr(result, out / "snr.png")
    plot_snr_levels(result, out / "snr_levels.png")
    print(result.table("family"))
    print()
    print(result.table("name"))
    print(f"wrote {out}/snr.json, snr.csv, snr_grid.csv, snr.png, snr_levels.png")
    return 0
