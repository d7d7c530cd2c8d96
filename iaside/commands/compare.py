"""iaside compare: several models on the same images: score versus measured robustness, with correlations."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import add_bands_argument, add_data_config_arguments, add_external_argument, overrides
from .robustness import add_perturbation_arguments, attacks_of, load_images, measure, slug

NAME = "compare"
HELP = "compare models: I-ASIDE score and SID against mCE and adversarial accuracy, with correlations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..engine import PRECISIONS
    from ..fills import FILLS
    from ..spectral import PARTITIONS

    parser.add_argument(
        "run_dirs",
        nargs="*",
        type=Path,
        metavar="DIR",
        help="finished `iaside run` folders (the same as --run DIR for each)",
    )
    g = parser.add_argument_group("models (at least two in all)")
    g.add_argument(
        "--model",
        action="append",
        default=[],
        help="a model spec to analyse and measure now (repeat the option for several)",
    )
    g.add_argument(
        "--weights",
        action="append",
        default=[],
        help="weights for the --model of the same position ('-' for none); give none or one per --model",
    )
    g.add_argument("--name", action="append", default=[], help="display name of the --model of the same position")
    g.add_argument(
        "--run",
        action="append",
        default=[],
        type=Path,
        help="a finished `iaside run` folder; its robustness.json is looked for in the folder and among --robustness",
    )
    g.add_argument(
        "--robustness",
        action="append",
        default=[],
        type=Path,
        help="a robustness.json from `iaside robustness` (matched to a --run by model fingerprint)",
    )
    parser.add_argument(
        "--reference",
        help="name of the model mCE is relative to (default: the first model); "
        "a .csv or .json file here is read as --external",
    )
    add_external_argument(parser, "then a --run needs no robustness.json and its name is its folder's")
    parser.add_argument("--data", help="samples:imagenet, samples:photos, or a folder (needed with --model)")
    parser.add_argument("--labels", help="'predicted', 'sorted', or a CSV filename,label")
    parser.add_argument("--samples", type=int, help="a seeded subset of N images")
    add_bands_argument(parser)
    parser.add_argument("--partition", choices=PARTITIONS)
    parser.add_argument("--fill", choices=FILLS + ("random",))
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples over images and models")
    add_perturbation_arguments(parser)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="precision of the I-ASIDE runs")
    add_data_config_arguments(parser, "data config overrides, applied to every --model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path("runs") / "compare", help="output folder (default runs/compare)"
    )
    parser.add_argument("--quiet", action="store_true")


def _entries_from_runs(args, external: bool = False):
    from ..errors import IasideError
    from ..result import Result
    from ..robustness.compare import ModelEntry
    from ..robustness.report import ROBUSTNESS_JSON, RobustnessReport

    reports = [RobustnessReport.load(p) for p in args.robustness]
    entries = []
    for run_dir in [*args.run, *args.run_dirs]:
        result = Result.load(run_dir)
        fingerprint = result.model.get("fingerprint")
        matches = [r for r in reports if r.model.get("fingerprint") == fingerprint]
        if (Path(run_dir) / ROBUSTNESS_JSON).exists():
            matches.insert(0, RobustnessReport.load(Path(run_dir) / ROBUSTNESS_JSON))
        if not matches and external:
            entries.append(ModelEntry(Path(run_dir).resolve().name, result, None))
            continue
        if not matches:
            raise IasideError(
                f"no robustness report for the model of {run_dir} (fingerprint {fingerprint}): run "
                f"`iaside robustness --model {result.model.get('spec')} --out {run_dir}` or pass --robustness"
            )
        entries.append(ModelEntry(matches[0].name, result, matches[0]))
    return entries


def _entries_from_models(args, attacks):
    """Analyse and measure every --model; models sharing a data config share the corrupted images."""
    from ..api import explain
    from ..robustness.compare import ModelEntry

    if not args.model:
        return []
    loaded = _load_models(args)
    reports = _measure(args, loaded, attacks)
    entries = []
    for name, lm in loaded.items():
        folder = args.out / slug(name)
        result = explain(
            lm,
            args.data,
            bands=args.bands,
            partition=args.partition,
            fill=args.fill,
            labels=args.labels,
            samples=args.samples,
            seed=args.seed,
            n_bootstrap=args.bootstrap,
            batch_size=args.batch_size,
            device=args.device,
            precision=args.precision,
            out=folder,
            show_progress=not args.quiet,
        )
        reports[name].save(folder)
        entries.append(ModelEntry(name, result, reports[name]))
    return entries


def _load_models(args) -> dict:
    """{display name: LoadedModel} of every --model, with its --weights and --name, in order."""
    from ..errors import IasideError
    from ..models import load_model

    if not args.data:
        raise IasideError("--model needs --data: the images to analyse and corrupt")
    weights = args.weights or ["-"] * len(args.model)
    names = args.name or list(args.model)
    if len(weights) != len(args.model) or len(names) != len(args.model):
        raise IasideError(
            f"{len(args.model)} --model but {len(args.weights)} --weights and {len(args.name)} --name: "
            "give none or one per --model ('-' for no weights)"
        )
    if len(set(names)) != len(names):
        raise IasideError(f"model names must be unique, got {names}; pass --name for each model")
    return {
        name: load_model(
            spec,
            weights=None if w == "-" else w,
            device=args.device,
            data_config=args.data_config,
            overrides=overrides(args),
        )
        for name, spec, w in zip(names, args.model, weights)
    }


def _measure(args, loaded: dict, attacks) -> dict:
    """{name: RobustnessReport}: the models grouped by data config, each group on one set of images."""
    groups: dict[str, dict] = {}
    for name, lm in loaded.items():
        groups.setdefault(repr(sorted(lm.data_config.to_dict().items())), {})[name] = lm
    reports = {}
    for members in groups.values():
        first = next(iter(members.values()))
        images, labels, info = load_images(first, args.data, args.labels, args.samples, args.seed)
        reports.update(measure(members, images, labels, info, args, attacks))
    return reports


def say_preprocessing(entries) -> None:
    """When the compared runs were fed differently, one line per model with its preprocessing."""
    from ..config import DataConfig

    configs = [e.result.data.get("data_config") for e in entries]
    if len({repr(sorted((c or {}).items())) for c in configs}) > 1:
        print("\nthe models were fed differently (each row is that model under its own preprocessing):")
        for e, c in zip(entries, configs):
            print(
                f"  {e.name}: "
                + (DataConfig.from_dict(c, e.result.data.get("data_config_sources")).pipeline() if c else "unknown")
            )


def run(args) -> int:
    from ..robustness.compare import compare_models
    from ..runtime import apply_malloc_fix

    apply_malloc_fix()
    reference, tables = args.reference, list(args.external)
    if reference and Path(reference).suffix.lower() in (".csv", ".json") and Path(reference).is_file():
        print(f"iaside: --reference {reference} is a file: read as --external (mCE is relative to the first model)")
        tables = [*tables, Path(reference)]
        reference = None
    external = None
    if tables:
        from ..robustness.external import read_external

        external = read_external(tables)
    attacks = attacks_of(args)
    entries = _entries_from_models(args, attacks) + _entries_from_runs(args, external=external is not None)
    comparison = compare_models(
        entries, reference=reference, external=external, n_bootstrap=args.bootstrap, seed=args.seed
    )
    comparison.save(args.out)
    if external is not None:
        meta = comparison.meta
        print(
            f"joined {external.source} by model name: {len(entries) - len(meta['external_unmatched_models'])} of "
            f"{len(entries)} models matched"
            + (
                f"; no row for {', '.join(meta['external_unmatched_models'])}"
                if meta["external_unmatched_models"]
                else ""
            )
            + (f"; {len(meta['external_unused_rows'])} rows for other models" if meta["external_unused_rows"] else "")
        )
    print(comparison.table())
    print()
    print(comparison.correlation_table())
    say_preprocessing(entries)
    print()
    print(comparison.partial_table())
    print(f"wrote {args.out}/compare.json, compare.csv, correlations.csv, partial_correlations.csv and the plots")
    return 0
