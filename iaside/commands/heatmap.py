"""iaside heatmap: the Fourier heat map of a model (error rate under single Fourier-basis perturbations)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .run import add_model_arguments, batch_size, default_out, overrides

NAME = "heatmap"
HELP = ("Fourier heat map: error rate and mean Δlog p(y) under an additive Fourier-basis perturbation of ℓ2 norm "
        "eps at each frequency (cells × images passes, printed first)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, help="samples:imagenet, samples:photos, or a folder")
    parser.add_argument("--labels", help="'predicted', 'sorted', or a CSV filename,label (as in `iaside run`)")
    parser.add_argument("--samples", type=int, help="a seeded subset of N images")
    parser.add_argument("--eps", type=float, default=4.0,
                        help="ℓ2 norm of the perturbation, pixels in [0, 1] (default 4.0, as Yin et al. on ImageNet)")
    parser.add_argument("--stride", type=int, default=1,
                        help="measure every S-th frequency in each direction (cost falls about S² times; default 1)")
    parser.add_argument("--batch-size", type=batch_size, default=64, help="perturbed images per forward pass")
    parser.add_argument("--seed", type=int, default=0, help="seeds the per-image, per-channel signs r = ±1")
    parser.add_argument("--out", type=Path, help="output folder (default: the run folder runs/MODEL_DATA, so the "
                        "report shows the map beside the I-ASIDE run); reruns resume")
    parser.add_argument("--dry-run", action="store_true", help="print the cost and stop")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    import json

    from ..api import _resolve_data, _resolve_model
    from ..config import ExplainConfig
    from ..engine import _Logits, resolve_precision
    from ..errors import IasideError
    from ..heatmap import (
        HEATMAP_JSON, HEATMAP_PNG, HEATMAP_STATE, HeatmapState, fourier_heatmap, frequency_cells, plot_heatmap,
        save_heatmap, summarize_heatmap,
    )
    from ..runtime import apply_malloc_fix

    apply_malloc_fix()
    if args.eps <= 0:
        raise IasideError(f"--eps must be positive, got {args.eps}")
    if args.batch_size == "auto":
        args.batch_size = 64
    loaded = _resolve_model(args.model, args.weights, args.device, None, overrides(args))
    config = ExplainConfig.build(None, labels="predicted" if args.labels == "predicted" else "given",
                                 samples=args.samples, seed=args.seed)
    labels_file = args.labels if args.labels not in (None, "given", "predicted") else None
    dataset = _resolve_data(args.data, loaded.data_config, config, labels_file, loaded.model.class_names)
    _, height, width = dataset[0].pixels.shape
    cells = frequency_cells(height, width, args.stride)
    n = len(dataset)
    print(f"Fourier heat map: {n} images × {len(cells)} frequencies ({height}×{width} grid up to Hermitian symmetry, "
          f"stride {args.stride}) = {n * len(cells)} forward passes, plus {n} clean passes; ε = {args.eps:g}")
    if args.dry_run:
        return 0
    out = args.out or default_out(args.model, args.data)
    out.mkdir(parents=True, exist_ok=True)
    identity = {"model": {"spec": loaded.spec, "fingerprint": loaded.fingerprint},
                "data": {"fingerprint": dataset.fingerprint() if hasattr(dataset, "fingerprint") else None, "n_images": n},
                "data_config": loaded.data_config.to_dict(), "eps": args.eps, "stride": args.stride, "seed": args.seed,
                "precision": args.precision, "labels": config.labels}
    ident_file = out / "heatmap-run.json"
    state = None
    if ident_file.exists():
        if json.loads(ident_file.read_text()) != json.loads(json.dumps(identity)):
            raise IasideError(f"{out} holds a heat map with another model, data or setting; use another --out "
                              f"or delete {ident_file.name} and {HEATMAP_STATE}")
        if (out / HEATMAP_STATE).exists():
            state = HeatmapState.load(out / HEATMAP_STATE)
    else:
        ident_file.write_text(json.dumps(identity, indent=1))
    device = __import__("torch").device(args.device)
    model = _Logits(loaded.model.eval().to(device), device.type, resolve_precision(args.precision, device))
    state, cells, stats = fourier_heatmap(
        model, dataset, eps=args.eps, stride=args.stride, seed=args.seed, batch_size=args.batch_size, device=device,
        state=state, checkpoint=lambda s: s.save(out / HEATMAP_STATE), show_progress=not args.quiet)
    state.save(out / HEATMAP_STATE)
    summary = {**summarize_heatmap(state, cells, height, width), "eps": args.eps, "stride": args.stride,
               "seed": args.seed, "model": identity["model"], "data_spec": getattr(dataset, "description", args.data),
               "forward_passes_this_session": stats["passes"], "seconds_this_session": stats["seconds"]}
    save_heatmap(summary, out)
    plot_heatmap(summary, out / HEATMAP_PNG)
    err = summary["error_rate"]
    worst = max(range(len(err)), key=err.__getitem__)
    print(f"clean error rate {summary['clean_error_rate']:.3f}; mean error rate over frequencies {sum(err) / len(err):.3f};"
          f" worst at (u, v) = {tuple(cells[worst])}: {err[worst]:.3f}")
    print(f"wrote {out}/{HEATMAP_JSON}, {HEATMAP_PNG}")
    return 0
