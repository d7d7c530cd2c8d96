"""iaside robustness: corruption errors, CE/mCE against a reference model, adversarial accuracy."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ._args import add_images_arguments, add_model_arguments, model_options, overrides

NAME = "robustness"
HELP = "measure top-1 error under the ImageNet-C corruptions (CE, mCE) and PGD accuracy"


def severities(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated severities 1..5, got {text!r}") from None


def add_perturbation_arguments(parser: argparse.ArgumentParser, *, default_corruptions: str = "all") -> None:
    """--corruptions, --severities, --linf-eps, --l2-eps, --steps (shared by snr, robustness, compare)."""
    g = parser.add_argument_group("perturbations")
    g.add_argument(
        "--corruptions",
        default=default_corruptions,
        help="all (19), common (15), extra (4), noise|blur|weather|digital, none, or a comma list "
        f"(default {default_corruptions})",
    )
    g.add_argument("--severities", type=severities, default=(1, 2, 3, 4, 5), help="default 1,2,3,4,5")
    g.add_argument(
        "--linf-eps",
        default="1/255,2/255,4/255",
        help="PGD-linf radii in pixel units, comma list, fractions allowed; 'none' for no attack "
        "(default 1/255,2/255,4/255)",
    )
    g.add_argument("--l2-eps", default="0.25,0.5,1", help="PGD-l2 radii in pixel units; 'none' (default 0.25,0.5,1)")
    g.add_argument("--steps", type=int, default=10, help="PGD steps (default 10; step size 2.5·eps/steps)")


def attacks_of(args):
    from ..robustness.attacks import attacks_from, parse_eps

    return attacks_from(parse_eps(args.linf_eps), parse_eps(args.l2_eps), args.steps)


def slug(text: str) -> str:
    text = Path(text).name if "/" in text else text
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_images_arguments(parser)
    parser.add_argument(
        "--reference",
        help="the model CE and mCE are relative to: a robustness.json (or its "
        "folder) from an earlier run on the same data, or a model spec evaluated now",
    )
    parser.add_argument("--reference-weights", help="weights file for a module:/timm:/torchvision: --reference")
    add_perturbation_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="seeds the corruptions (per image) and PGD starts")
    parser.add_argument("--out", type=Path, help="output folder (default runs/robustness_MODEL_DATA)")
    parser.add_argument("--quiet", action="store_true")


def load_images(loaded, data: str, labels: str | None, samples: int | None, seed: int):
    """(images (N, C, H, W), labels (N,), data description) preprocessed for ``loaded``'s data config."""
    from ..data import check_labels, open_dataset
    from ..robustness.evaluate import images_fingerprint, source_fingerprint, stack_dataset

    dataset = open_dataset(
        data, loaded.data_config, labels=labels, class_names=loaded.model.class_names, samples=samples, seed=seed
    )
    check_labels(dataset, loaded.model.num_classes)
    images, y, names = stack_dataset(dataset)
    info = {
        "spec": getattr(dataset, "description", data),
        "n_images": int(images.shape[0]),
        "labels": getattr(dataset, "labels_kind", "given"),
        "data_config": loaded.data_config.to_dict(),
        "images_fingerprint": images_fingerprint(images, y),
        "source_fingerprint": source_fingerprint(names, y),
    }
    return images, y, info


def measure(models: dict, images, labels, info, args, attacks) -> dict:
    """Each model's RobustnessReport on the same prepared images, {name: LoadedModel} -> {name:
    report}; the corrupted images are made once for all of them."""
    from ..robustness.corruptions import corruption_names
    from ..robustness.evaluate import evaluate_robustness
    from ..robustness.report import build_report

    corruptions = corruption_names(args.corruptions)
    measured = evaluate_robustness(
        {name: loaded.model for name, loaded in models.items()},
        images.to(args.device),
        labels,
        corruptions=corruptions,
        severities=args.severities,
        attacks=attacks,
        seed=args.seed,
        batch_size=args.batch_size,
        show_progress=not args.quiet,
    )
    return {
        name: build_report(
            measured[name],
            model={"name": name, "spec": loaded.spec, "fingerprint": loaded.fingerprint},
            data=info,
            corruptions=corruptions,
            severities=args.severities,
            seed=args.seed,
            attacks=attacks,
        )
        for name, loaded in models.items()
    }


def run(args) -> int:
    from ..models import load_model
    from ..robustness.report import RobustnessReport
    from ..runtime import apply_malloc_fix

    apply_malloc_fix()
    attacks = attacks_of(args)
    loaded = load_model(args.model, device=args.device, **model_options(args))
    images, labels, info = load_images(loaded, args.data, args.labels, args.samples, args.seed)
    report = measure({args.model: loaded}, images, labels, info, args, attacks)[args.model]
    if args.reference:
        ref_path = Path(args.reference)
        if ref_path.suffix == ".json" or ref_path.is_dir():
            reference = RobustnessReport.load(ref_path)
        else:
            ref_loaded = load_model(
                args.reference, weights=args.reference_weights, device=args.device, overrides=overrides(args)
            )
            ref_images, ref_labels, ref_info = load_images(ref_loaded, args.data, args.labels, args.samples, args.seed)
            reference = measure({args.reference: ref_loaded}, ref_images, ref_labels, ref_info, args, [])[
                args.reference
            ]
        report = report.with_reference(reference)
    out = args.out or Path("runs") / f"robustness_{slug(args.model)}_{slug(args.data)}"
    report.save(out)
    print(report.table())
    print(f"wrote {out}/robustness.json, corruption_errors.csv, corruption_ce.csv, adversarial.csv")
    return 0
