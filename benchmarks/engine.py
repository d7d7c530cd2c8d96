"""Engine speed against the model alone and against the authors' design, one process, one table.

    python benchmarks/engine.py [--images 20] [--rounds 3] [--bands 8] [--batch-size 64]
                                [--model SPEC [--weights FILE] [--num-classes K]]

``--model`` times any model spec (default efficientnet-lite0), e.g. ``timm:resnet18`` or
``timm:vit_tiny_patch16_224`` with ``--weights`` (a local file, random weights will do: the
timing does not depend on them), each against its own floor.

Rows, measured interleaved in each round (median and min–max over rounds):
- floor: the same N·2**M coalition images, prepared in advance (untimed, 2048 at a time), through the model in
  float32 at the same batch size (and once more under bf16 autocast: the model's own bf16 gain);
- engine fp32 / bf16: ``iaside.explain`` end to end (decode, resize, band split, coalition
  synthesis, model, log-softmax, accumulation, summaries with 1000 bootstrap resamples, files
  and plot); the model is loaded once beforehand, as the floor's is; "+ freeze" rows run with
  ``optimize="freeze"`` (the model traced and frozen: batch norm folded, ops fused); "+ compile"
  rows with ``optimize="compile"`` (inductor with frozen weights), twice per round: with an
  empty compiled-model cache (a fresh ``IASIDE_CACHE`` folder: the run compiles its two batch
  shapes into it; also shown less the run's own compile time, the rate a long run approaches)
  and again with the cache that run filled (it loads them);
- naive: the authors' design (docs/method.md §9): coalitions in the outer loop, every image re-read and
  decoded for every coalition, FFT, mask, inverse FFT, abs and min–max per coalition batch,
  batch size 10, no inference mode.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import numpy as np
import torch

from iaside.runtime import apply_malloc_fix, configure_threads


def floor_seconds(model, dataset, masks, n_bands, batch_size, autocast_dtype=None, max_rows=2048) -> float:
    """Model time alone on the engine's coalition images (partner fill), prepared in advance,
    at most ``max_rows`` at a time (all N·2**M of them would not fit in memory at M = 10; only
    the model calls are timed); ``autocast_dtype`` runs the model under autocast (the model's
    own bf16 speed)."""
    from contextlib import nullcontext

    from iaside.coalitions import CoalitionSynthesizer
    from iaside.fills import partner_index
    from iaside.game import coalition_bits

    synth = CoalitionSynthesizer(masks)
    bits = torch.from_numpy(coalition_bits(n_bands)).float()
    partner = partner_index(len(dataset), 0)
    model = model.to(memory_format=torch.channels_last)
    ctx = torch.autocast("cpu", dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
    seconds, pending = 0.0, []
    with torch.inference_mode(), ctx:
        for i in range(len(dataset)):
            x = dataset[i].pixels[None]
            prep = synth.prepare(x, dataset[int(partner[i])].pixels[None])
            pending.append(synth.render(prep.base[0], prep.deltas[0], bits))
            last = i == len(dataset) - 1
            if sum(len(p) for p in pending) < max_rows and not last:
                continue
            images = torch.cat(pending).contiguous(memory_format=torch.channels_last)
            n_run = len(images) if last else len(images) // batch_size * batch_size
            if seconds == 0.0:
                model(images[:batch_size])  # warm-up
            t0 = time.perf_counter()
            for start in range(0, n_run, batch_size):
                torch.log_softmax(model(images[start : min(start + batch_size, n_run)]).float(), dim=1)
            seconds += time.perf_counter() - t0
            pending = [images[n_run:].clone()] if n_run < len(images) else []  # not a view: frees the rest
    return seconds


def engine_seconds(
    loaded, data_spec, n_images, n_bands, batch_size, precision, optimize, cache: str | None = None
) -> tuple[float, object]:
    """``iaside.explain`` end to end; ``cache``: the compiled-model cache folder (IASIDE_CACHE)."""
    import os

    import iaside

    if cache is not None:
        os.environ["IASIDE_CACHE"] = cache
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = iaside.explain(
            loaded,
            data_spec,
            bands=n_bands,
            samples=n_images,
            batch_size=batch_size,
            precision=precision,
            optimize=optimize,
            out=out,
            record=False,
            show_progress=False,
        )
        return time.perf_counter() - t0, result


def naive_seconds(model, dataset, n_bands, n_images) -> float:
    """The authors' design: for every coalition, re-read every image and filter it in batches of 10."""
    from iaside.data import load_image, preprocess
    from iaside.spectral import square_band_masks_centred

    d = dataset.cfg.input_size[0]
    centred = torch.from_numpy(square_band_masks_centred(d, n_bands))
    paths = dataset.sources[:n_images]
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(2**n_bands):
            mask = (
                centred[[i for i in range(n_bands) if s >> i & 1]].any(0) if s else torch.zeros(d, d, dtype=torch.bool)
            )
            for start in range(0, len(paths), 10):
                x = torch.stack([preprocess(load_image(p), dataset.cfg) for p in paths[start : start + 10]])
                partner = x.roll(1, dims=0)
                spec = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))
                fill = torch.fft.fftshift(torch.fft.fft2(partner), dim=(-2, -1))
                mixed = spec * mask + fill * ~mask
                img = torch.fft.ifft2(torch.fft.ifftshift(mixed, dim=(-2, -1))).abs()
                lo, hi = img.amin(dim=(1, 2, 3), keepdim=True), img.amax(dim=(1, 2, 3), keepdim=True)
                img = ((img - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
                torch.log_softmax(model(img), dim=1)
    return time.perf_counter() - t0


def main() -> None:
    apply_malloc_fix()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bands", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--model",
        default="efficientnet-lite0",
        help="the model spec to time (default "
        "efficientnet-lite0), e.g. timm:resnet18, timm:vit_tiny_patch16_224, hf:DIR",
    )
    parser.add_argument("--weights", help="weights file for the --model (timm:, torchvision:, module:)")
    parser.add_argument("--num-classes", type=int, help="head size of --weights (default: read from them)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["fp32", "bf16", "fp32+freeze", "bf16+freeze"],
        help="engine variants: precision, optionally +freeze or +compile",
    )
    args = parser.parse_args()
    threads = configure_threads()

    from iaside.data import open_dataset
    from iaside.models import load_model
    from iaside.spectral import band_masks

    loaded = load_model(args.model, weights=args.weights, num_classes=args.num_classes)
    dataset = open_dataset("samples:imagenet", loaded.data_config, samples=args.images, seed=0)  # = explain's subset
    n, m, bs = len(dataset), args.bands, args.batch_size
    masks = band_masks(*loaded.data_config.input_size, m, "linf")
    passes = n * 2**m
    variants = [(v.split("+")[0], v.split("+")[1] if "+" in v else "none") for v in args.variants]
    if ("fp32", "none") not in variants:
        variants.insert(0, ("fp32", "none"))
    names = {v: f"engine {v[0]}" + (f" + {v[1]}" if v[1] != "none" else "") for v in variants}
    rows: dict[str, list[float]] = {"floor fp32": [], "floor bf16 (model alone)": []}
    for v in variants:
        rows[names[v]] = []
        if v[1] == "compile":
            rows[names[v] + ", cold cache"] = rows.pop(names[v])
            rows[names[v] + ", cold cache, less compile time"] = []
            rows[names[v] + ", warm cache"] = []
    if not args.skip_naive:
        rows["naive (authors' design) fp32"] = []
    results = {}
    for r in range(args.rounds):
        rows["floor fp32"].append(floor_seconds(loaded.model, dataset, masks, m, bs))
        rows["floor bf16 (model alone)"].append(floor_seconds(loaded.model, dataset, masks, m, bs, torch.bfloat16))
        for v in variants:
            if v[1] != "compile":
                seconds, results[v] = engine_seconds(loaded, "samples:imagenet", n, m, bs, *v)
                rows[names[v]].append(seconds)
                continue
            with tempfile.TemporaryDirectory() as cache:
                seconds, cold = engine_seconds(loaded, "samples:imagenet", n, m, bs, *v, cache=cache)
                rows[names[v] + ", cold cache"].append(seconds)
                rows[names[v] + ", cold cache, less compile time"].append(seconds - cold.meta["timings_s"]["compile"])
                seconds, results[v] = engine_seconds(loaded, "samples:imagenet", n, m, bs, *v, cache=cache)
                rows[names[v] + ", warm cache"].append(seconds)
                compiled = results[v].meta["optimize"]["compiled"]
                built = cold.meta["optimize"]["compiled"]["cache_misses"]
                assert compiled["cache_hits"] == built and compiled["cache_misses"] == 0, compiled  # loads all
                if not np.array_equal(cold.per_image["logp_nats"], results[v].per_image["logp_nats"]):
                    print(f"{names[v]}: the warm-cache run's numbers differ from the cold one's", flush=True)
        if not args.skip_naive:
            rows["naive (authors' design) fp32"].append(naive_seconds(loaded.model, dataset, m, n))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in rows.items()), flush=True)

    floor = statistics.median(rows["floor fp32"])
    size = "×".join(map(str, loaded.data_config.input_size))
    print(f"\n{args.model} at {size}, samples:imagenet N={n}, M={m} ({passes} coalition passes), batch {bs}")
    print(f"machine: {platform.processor() or platform.machine()}, {threads} threads, torch {torch.__version__}\n")
    print(
        "| variant | median s | min–max s | images/s | passes/s | time / floor (medians) | "
        "time / floor per round: median (min–max) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, values in rows.items():
        med = statistics.median(values)
        paired = [v / f for v, f in zip(values, rows["floor fp32"])]  # same round, same machine conditions
        print(
            f"| {name} | {med:.1f} | {min(values):.1f}–{max(values):.1f} | {n / med:.3f} | {passes / med:.0f} | "
            f"{med / floor:.3f} | {statistics.median(paired):.3f} ({min(paired):.3f}–{max(paired):.3f}) |"
        )
    fp32 = results[("fp32", "none")]
    print(f"\nengine fp32 / floor = {statistics.median(rows['engine fp32']) / floor:.3f} (target <= 1.05)")
    print(f"model alone: floor fp32 / floor bf16 = {floor / statistics.median(rows['floor bf16 (model alone)']):.2f}x")
    for v in variants[1:]:
        other = results[v]
        sid_l1 = float(np.abs(np.asarray(fp32.sid.value) - np.asarray(other.sid.value)).sum())
        score_diff = abs(float(fp32.score.value) - float(other.score.value))
        name = names[v] + (", warm cache" if v[1] == "compile" else "")
        steady = (
            (
                f" ({floor / statistics.median(rows[names[v] + ', cold cache']):.2f}x with a cold cache, "
                f"{floor / statistics.median(rows[names[v] + ', cold cache, less compile time']):.2f}x "
                "less its compile time)"
            )
            if v[1] == "compile"
            else ""
        )
        paired = statistics.median(f / e for f, e in zip(rows["floor fp32"], rows[name]))
        print(
            f"{name}: floor / it = {floor / statistics.median(rows[name]):.2f}x by the medians, {paired:.2f}x "
            f"by the per-round median{steady} (bf16 target >= 1.8); "
            f"against engine fp32: SID L1 {sid_l1:.4f} (target <= 0.01), |score diff| {score_diff:.4f} "
            "(target <= 0.005)"
        )


if __name__ == "__main__":
    main()
