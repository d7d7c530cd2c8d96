"""Does bf16 keep the answer? SID and score under bf16 autocast against float32, model by model.

    python benchmarks/bf16_models.py [--images 8] [--bands 6] [--models ...] [--compile]

For each model: ``iaside.explain`` on the first ``--images`` bundled ImageNet images (the
seeded subset), M = ``--bands``, partner fill, once in float32 and once under bf16 autocast
(``--compile``: also bf16 + ``--optimize compile``, in memory); prints SID L1 and |Δscore|
against float32, with the targets (SID L1 <= 0.01, |Δscore| <= 0.005). Models: the bundled
EfficientNet-Lite0/1/2 (pretrained), and timm CNNs and ViTs with random weights
(``timm:NAME``, built with pretrained=False and a fixed seed: nothing is downloaded).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from iaside.runtime import apply_malloc_fix, configure_threads

DEFAULT_MODELS = [
    "efficientnet-lite0",
    "efficientnet-lite1",
    "efficientnet-lite2",
    "timm:resnet18",
    "timm:vit_tiny_patch16_224",
]


def model_for(spec: str):
    """A spec iaside loads, or (for timm:NAME) a randomly initialised timm model with its data config."""
    if not spec.startswith("timm:"):
        return spec, None
    from iaside.compat import import_timm
    from iaside.config import DataConfig

    timm = import_timm()
    torch.manual_seed(0)
    net = timm.create_model(spec[len("timm:") :], pretrained=False).eval()
    cfg = net.pretrained_cfg
    _, h, w = cfg["input_size"]
    config = DataConfig(
        input_size=(h, w),
        resize_size=int(min(h, w) / cfg.get("crop_pct", 0.875)),
        interpolation=cfg.get("interpolation", "bicubic"),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
    )
    return net, config


def main() -> None:
    apply_malloc_fix()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--bands", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--compile", action="store_true", help="also bf16 + --optimize compile (in memory)")
    args = parser.parse_args()
    threads = configure_threads()
    import iaside

    print(
        f"samples:imagenet, first {args.images} images of the seeded order, M = {args.bands}, partner fill, "
        f"batch {args.batch_size}, {threads} threads, torch {torch.__version__}\n"
    )
    print("| model | weights | variant | SID L1 from fp32 | \\|Δscore\\| | score fp32 | seconds (fp32 / variant) |")
    print("|---|---|---|---|---|---|---|")
    variants = [("bf16", "none")] + ([("bf16", "compile")] if args.compile else [])
    for spec in args.models:
        model, config = model_for(spec)
        run = dict(
            bands=args.bands,
            samples=args.images,
            batch_size=args.batch_size,
            n_bootstrap=200,
            data_config=config,
            show_progress=False,
            cache=False,
        )
        t0 = time.perf_counter()
        ref = iaside.explain(model, "samples:imagenet", precision="fp32", **run)
        t_ref = time.perf_counter() - t0
        for precision, optimize in variants:
            t0 = time.perf_counter()
            got = iaside.explain(model, "samples:imagenet", precision=precision, optimize=optimize, **run)
            seconds = time.perf_counter() - t0
            sid_l1 = float(np.abs(np.asarray(ref.sid.value) - np.asarray(got.sid.value)).sum())
            d_score = abs(float(ref.score.value) - float(got.score.value))
            ok = "" if sid_l1 <= 0.01 and d_score <= 0.005 else " **over**"
            print(
                f"| {spec} | {'random' if config is not None else 'pretrained'} | {precision}"
                f"{' + compile' if optimize == 'compile' else ''} | {sid_l1:.4f}{ok} | {d_score:.4f} | "
                f"{float(ref.score.value):.4f} | {t_ref:.0f} / {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
