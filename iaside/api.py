"""``iaside.explain``: the one entry point. Model + data in, ``Result`` out (and files, with ``out``)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__, distributed
from .coalitions import CoalitionSynthesizer
from .compile_cache import CompileCache
from .config import DataConfig, ExplainConfig
from .engine import Engine, EngineState
from .errors import IasideError
from .estimators import Estimator, estimator_from_config, resolve_budget
from .fills import make_fill, processing_order
from .models import state_fingerprint
from .models.base import LoadedModel
from .result import SID_PNG, Result
from .runs import (
    STATE_NPZ,
    atomic_write_json,
    checked_write,
    open_run,
    owns_out_folder,
    run_identity,
    skips_file,
    state_file,
)
from .runtime import apply_malloc_fix
from .spectral import band_masks
from .summary import summarize
from .validate import check_run_arguments, check_still_readable


def _resolve_model(
    model, weights, device, data_config, overrides, num_classes=None, outputs="logits", used=None
) -> LoadedModel:
    """A spec string, a LoadedModel, a Classifier or any nn.Module -> LoadedModel, its data config
    resolved by the one rule (``iaside.models.registry.data_config_layers``)."""
    if isinstance(model, LoadedModel):
        if data_config is not None or any(v is not None for v in (overrides or {}).values()):
            raise IasideError("a LoadedModel carries its data config; pass overrides to load_model instead")
        return model
    if isinstance(model, str):
        from .models import load_model

        return load_model(
            model,
            weights=weights,
            device=device,
            overrides=overrides,
            data_config=data_config,
            num_classes=num_classes,
            outputs=outputs,
        )
    if not isinstance(model, nn.Module):
        raise IasideError(f"model must be a spec string or an nn.Module, got {type(model).__name__}")
    from .models.registry import wrap_module

    return wrap_module(
        model,
        fingerprint=state_fingerprint(model),
        data_config=data_config,
        overrides=overrides,
        outputs=outputs,
        used=used,
    )


def _resolve_data(data, cfg: DataConfig, config: ExplainConfig, labels_file: str | None, class_names):
    from .data import open_dataset

    if isinstance(data, (str, os.PathLike)) and not os.path.isfile(data):
        labels = "predicted" if config.labels == "predicted" else labels_file
        return open_dataset(data, cfg, labels=labels, class_names=class_names, samples=config.samples, seed=config.seed)
    from .data.inputs import as_dataset

    if labels_file is not None:
        raise IasideError(
            f"labels={labels_file!r} labels the images of a folder; with in-memory data pass (images, labels) instead"
        )
    dataset: Any = as_dataset(data, cfg, predicted=config.labels == "predicted")
    if config.samples is not None and config.samples < len(dataset):
        dataset = dataset.subset(
            np.sort(np.random.default_rng(config.seed).choice(len(dataset), config.samples, replace=False))
        )
    return dataset


class _Probe(torch.utils.data.Dataset):
    """Decodes image i and reports (i, None) or (i, the reason it is unreadable)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        try:
            self.dataset[i]
            return i, None
        except IasideError as err:
            return i, str(err)


def find_bad_images(dataset, num_workers: int = 0) -> dict[int, str]:
    """Decode every image once: {index: reason} for the unreadable ones (``--on-bad-image skip``)."""
    loader = torch.utils.data.DataLoader(_Probe(dataset), batch_size=None, num_workers=num_workers)
    bad = {int(i): reason for i, reason in loader if reason is not None}
    if len(bad) == len(dataset):
        raise IasideError(f"all {len(dataset)} images are unreadable; first: {next(iter(bad.values()))}")
    return bad


def _open_shared_folder(out: Path, run_info: dict, shard, n_images: int, n_coalitions: int, rank):
    """``runs.open_run``; under torchrun rank 0 (the folder's owner) first, the other ranks after it."""
    if rank is None:
        return open_run(out, run_info, shard, n_images, n_coalitions)
    import torch.distributed as dist

    state = open_run(out, run_info, shard, n_images, n_coalitions) if rank[0] == 0 else None
    dist.barrier()
    return state if rank[0] == 0 else open_run(out, run_info, shard, n_images, n_coalitions)


def shard_indices(n_images: int, seed: int, shard: tuple[int, int]) -> np.ndarray:
    """Shard i of n: the i-th contiguous block of the seeded processing order (keeps partners
    together, and every shard is a random sample)."""
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise IasideError(f"--shard {i}/{n} is not valid: use i/n with 0 <= i < n")
    order = processing_order(n_images, seed)
    return order[i * n_images // n : (i + 1) * n_images // n]


def _target_ci_stop(plan: Estimator, config: ExplainConfig, n_images: int, target_ci: float):
    """``stop(state)`` for --target-ci: True once the score's 95 % half-width over the finished
    images (200 bootstrap resamples) is below ``target_ci``. Each image's φ is computed once."""
    phi = np.zeros((n_images, config.bands))
    known = np.zeros(n_images, dtype=bool)

    def stop(state: EngineState) -> bool:
        done = state.done == 1
        new = done & ~known
        phi[new] = plan.phi(state.logp_nats[new], np.flatnonzero(new))
        known[new] = True
        if done.sum() < 10:
            return False
        s = summarize(
            phi[done],
            state.label[done],
            n_bootstrap=200,
            seed=config.seed,
            beta=config.beta,
            confidence=config.confidence,
        )
        return float(s["score"].high - s["score"].low) / 2 < target_ci

    return stop


def _restores_training_mode(fn):
    """``fn(model, ...)`` leaves every submodule of an ``nn.Module`` model in the training mode it had."""
    import functools

    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        module = model.model if isinstance(model, LoadedModel) else model
        modes = [(m, m.training) for m in module.modules()] if isinstance(module, nn.Module) else []
        try:
            return fn(model, *args, **kwargs)
        finally:
            for m, training in modes:
                m.train(training)

    wrapper.__kwdefaults__ = fn.__kwdefaults__  # the same defaults, not a copy
    return wrapper


def source_record(data: Any, labels_file: str | None, config: ExplainConfig) -> dict[str, Any]:
    """Where the images came from, to open them again: {kind: samples|folder|in-memory, spec (a
    samples name), path (absolute), labels (a CSV path absolute), samples, seed}. The run folder
    it was written in is ``meta["run_dir"]``, so moved run and data folders still find each other."""
    record: dict[str, Any] = {"samples": config.samples, "seed": config.seed, "labels": config.labels}
    if labels_file is not None:
        record["labels"] = os.path.abspath(labels_file)
    if not isinstance(data, (str, os.PathLike)):
        return {"kind": "in-memory", "type": type(data).__name__, **record}
    spec = os.fspath(data)
    if spec.startswith("samples:"):
        return {"kind": "samples", "spec": spec, **record}
    return {"kind": "folder", "path": os.path.abspath(os.path.expanduser(spec)), **record}


@owns_out_folder
@_restores_training_mode
def explain(
    model: str | nn.Module | LoadedModel,
    data: Any,
    config: ExplainConfig | None = None,
    *,
    bands: int | None = None,
    partition: str | None = None,
    fill: str | None = None,
    preset: str | None = None,
    clip: bool | None = None,
    labels: str | None = None,
    samples: int | None = None,
    seed: int | None = None,
    estimator: str | None = None,
    permutations: int | None = None,
    coalitions: int | None = None,
    draws: str | None = None,
    n_bootstrap: int | None = None,
    target_ci: float | None = None,
    batch_size: int | str = 64,
    device: str = "cpu",
    precision: str = "fp32",
    num_workers: int = 0,
    optimize: str = "none",
    cache: bool = True,
    shard: tuple[int, int] | None = None,
    on_bad_image: str = "error",
    weights: str | None = None,
    data_config: DataConfig | dict | str | Path | None = None,
    overrides: dict | None = None,
    num_classes: int | None = None,
    outputs: str = "logits",
    out: str | Path | None = None,
    record: bool = True,
    show_progress: bool = True,
    checkpoint_every_s: float = 30.0,
    views: bool = True,
) -> Result | None:
    """I-ASIDE of ``model`` over ``data``.

    config: an ``ExplainConfig`` (everything that decides the numbers) to start from; the
    keyword options below that it also has (bands, partition, fill, preset, clip, samples, seed,
    estimator, permutations, coalitions, draws, n_bootstrap) override it when given. Without it,
    the configuration's own defaults apply (8 bands, the ℓ∞ partition, the partner fill, exact).

    model: a spec ('efficientnet-lite0', 'onnx:PATH', ...), a LoadedModel, or any nn.Module
    taking (B, C, H, W) pixels (normalised inside with ``data_config``'s mean/std, if given).
    data: a spec ('samples:imagenet', a folder); PIL images or image paths (resized by the
    data config); a numpy array or tensor of pixels, (N, C, H, W) or (N, H, W, C), float in
    [0, 1] or uint8 (read as /255); an (images, labels) pair; a Dataset or DataLoader yielding
    (image, label) or images alone (predicted labels); see ``iaside.data.inputs``.
    data_config: a DataConfig or dict of its fields (given values), or a JSON file of them; with
    ``overrides`` (given, highest) it resolves as in ``iaside.models.load_model``: given > file or
    sidecar > the model's own > fallback (one warning line); sources in result.json.
    num_classes: the head size of a hub model's weights; outputs: 'logits' or 'probs'.
    labels: None/'given', 'predicted', or a CSV path for a flat folder.
    estimator: 'exact' (2**M passes per image), 'kernel' (paired KernelSHAP on ``coalitions``
    coalitions per image; default 10 % of 2**M, at most 1024) or 'permutation'
    (``permutations`` antithetic permutations per image); the last two for large M.
    draws: 'per-image' (default; each image draws its own coalitions, so the intervals include
    the sampling error) or 'shared' (one draw for all images). target_ci: stop once the
    score's 95 % half-width is below it.
    shard (i, n): process the i-th of n blocks and save its state (``iaside merge`` combines);
    under torchrun each rank takes its block and rank 0 writes the result (others get None).
    on_bad_image: 'error' (stop at the first unreadable image, naming it) or 'skip' (check
    every image first; skipped ones are counted and listed in the result).
    optimize: 'none', 'freeze' (trace and freeze the model, checked against it on the first
    batch; falls back with a warning) or 'compile' (torch.compile with frozen weights, short
    batches padded to one of two fixed shapes; its compile seconds are in
    ``meta["timings_s"]["compile"]``) or 'auto' (compile when the compiled-model cache holds the
    model or the run is long enough to pay for compiling). cache: keep compiled models in the
    cache folder (``IASIDE_CACHE``, default ~/.cache/iaside) so a later run loads them
    (``meta["timings_s"]["compile_cache_load"]``) instead of compiling; False compiles in memory.
    views: with an exact plan, also the band interactions and the band-limited curves
    (``Result.interactions``, ``Result.band_limited``), from the same passes: the engine records
    top-1 correctness per coalition beside log p(y).
    With ``out``, the run resumes from that folder's checkpoint and writes its files there, and
    (with ``record``) is recorded in the results store (``iaside runs``). It owns the folder
    while it runs (``iaside.runs.owner``): another process on it is refused, naming this one.
    """
    apply_malloc_fix()
    if on_bad_image not in ("error", "skip"):
        raise IasideError(f"--on-bad-image {on_bad_image!r} is not one of error, skip")
    config = ExplainConfig.build(
        preset,
        base=config,
        bands=bands,
        partition=partition,
        fill=fill,
        clip=clip,
        labels="predicted" if labels == "predicted" else None,
        samples=samples,
        seed=seed,
        n_bootstrap=n_bootstrap,
        estimator=estimator,
        permutations=permutations,
        coalitions=coalitions,
        draws=draws,
    )
    check_run_arguments(bands=config.bands, seed=config.seed, workers=num_workers, samples=config.samples)
    config = resolve_budget(config)
    rank, device = distributed.setup(device)
    if rank is not None:
        if shard is not None:
            raise IasideError("--shard and torchrun both split the data; use one of them")
        shard = rank
    if target_ci is not None and shard is not None:
        raise IasideError("--target-ci needs one process over the whole data set; drop --shard/torchrun")
    used = None if isinstance(data, (str, os.PathLike)) else ("mean", "std")  # tensors skip resize and crop
    loaded = _resolve_model(model, weights, device, data_config, overrides, num_classes, outputs, used)
    labels_file = labels if labels not in (None, "given", "predicted") else None
    dataset = _resolve_data(data, loaded.data_config, config, labels_file, loaded.model.class_names)
    if len(dataset) == 0:
        raise IasideError("the data set is empty")
    if hasattr(dataset, "min_side"):
        dataset.min_side = 2 * config.bands
    bad = find_bad_images(dataset, num_workers) if on_bad_image == "skip" else {}
    if config.labels == "predicted" or getattr(dataset, "labels_kind", "given") == "predicted":
        config = ExplainConfig.from_dict({**config.to_dict(), "labels": "predicted"})
    first = dataset[0].pixels
    masks = band_masks(first.shape[-2], first.shape[-1], config.bands, config.partition)
    plan = estimator_from_config(config)
    engine = Engine(
        loaded.model,
        CoalitionSynthesizer(masks, config.synthesis, config.clip),
        make_fill(config.fill, config.seed),
        batch_size=batch_size,
        device=device,
        precision=precision,
        num_workers=num_workers,
        seed=config.seed,
        coalitions=plan.bits if plan.per_image else plan.bits(),
        optimize=optimize,
        compile_cache=CompileCache() if cache else None,
        show_progress=show_progress and (rank is None or rank[0] == 0),
        checkpoint_every_s=checkpoint_every_s,
        record_top1=views,
    )
    out_dir = Path(out) if out is not None else None
    run_info: dict[str, Any] = {
        "identity": run_identity(config, loaded, dataset, engine.precision),
        "model": {"spec": loaded.spec, "fingerprint": loaded.fingerprint, "num_classes": loaded.model.num_classes},
        "data": {
            "spec": getattr(dataset, "description", type(dataset).__name__),
            "source": source_record(data, labels_file, config),
            "fingerprint": dataset.fingerprint() if hasattr(dataset, "fingerprint") else None,
            "n_images": len(dataset),
            "labels": config.labels,
            "data_config": loaded.data_config.to_dict(),
            "data_config_sources": dict(loaded.data_config.sources or {}),
        },
        "names": [str(n) for n in getattr(dataset, "names", range(len(dataset)))],
    }
    state = None
    if out_dir is not None:
        state = _open_shared_folder(out_dir, run_info, shard, len(dataset), plan.n_coalitions, rank)
        check_still_readable(state, bad, run_info["names"], out_dir)
        path = out_dir / state_file(shard)
        engine.checkpoint = lambda s: checked_write("the checkpoint", path, lambda: s.save(path))
    indices = shard_indices(len(dataset), config.seed, shard) if shard is not None else None
    stop = None if target_ci is None else _target_ci_stop(plan, config, len(dataset), target_ci)
    t0 = time.perf_counter()
    state, stats = engine.run(dataset, state, indices=indices, stop=stop, exclude=sorted(bad))
    if engine.checkpoint is not None:
        engine.checkpoint(state)
    run_meta = {
        "device": str(device),
        "precision": engine.precision,
        "precision_requested": precision,
        "batch_size": engine.batch_size,
        "optimize": {
            "requested": optimize,
            "applied": engine.optimized_as,
            **({"compiled": engine.compile_info()} if engine.compile_info() else {}),
        },
        "forward_passes": stats.passes + stats.images,  # coalition passes + one clean pass per image
        "reused_coalitions": stats.reused,
        "images_this_session": stats.images,
        "timings_s": dict(stats.seconds),
        "images_per_s": stats.images / max(stats.seconds.get("total", 0.0), 1e-9) if stats.images else None,
        "target_ci": target_ci,
        "run_dir": None if out_dir is None else str(out_dir.resolve()),
        "skip_reasons": {run_info["names"][i]: reason for i, reason in bad.items()},
    }
    if rank is not None:
        state = distributed.all_reduce(state, device)
        if rank[0] != 0:
            return None
        if out_dir is not None:
            checked_write("the checkpoint", out_dir / STATE_NPZ, lambda: state.save(out_dir / STATE_NPZ))
        run_meta["world_size"] = rank[1]
    elif shard is not None:
        if out_dir is not None and bad:  # for 'iaside merge': the state keeps no reasons
            reasons = skips_file(out_dir / state_file(shard))
            checked_write("the skip reasons", reasons, lambda: atomic_write_json(reasons, run_meta["skip_reasons"]))
        return None
    t_summary = time.perf_counter()
    result = build_result(run_info, state, run_meta, views=views)
    result.meta["timings_s"]["summary"] = time.perf_counter() - t_summary
    result.meta["timings_s"]["wall"] = time.perf_counter() - t0
    if out_dir is not None:
        from .report.plots import plot_sid
        from .store import record_run

        checked_write("the result", out_dir / "result.json", lambda: result.save(out_dir))
        checked_write("the SID plot", out_dir / SID_PNG, lambda: plot_sid(result, out_dir / SID_PNG))
        if record:
            record_run(result, out_dir)
    return result


def build_result(run_info: dict, state: EngineState, run_meta: dict | None = None, views: bool = True) -> Result:
    """Summarise the finished images of a state into a Result (also used by ``iaside merge``);
    ``views``: band interactions and band-limited curves too, when the plan is exact."""
    config = ExplainConfig.from_dict(run_info["identity"]["config"])
    done = state.done == 1
    if not done.any():
        raise IasideError("no image is finished yet: nothing to summarise")
    plan = estimator_from_config(config)
    logp, index = state.logp_nats[done], np.flatnonzero(done)
    if logp.shape[1] != plan.n_coalitions:
        raise IasideError(
            f"the saved state has {logp.shape[1]} coalitions per image but its configuration's plan "
            f"has {plan.n_coalitions}; it was written by another version: rerun it"
        )
    phi_per_image = plan.phi(logp, index)
    summary = summarize(
        phi_per_image,
        state.label[done],
        n_bootstrap=config.n_bootstrap,
        confidence=config.confidence,
        seed=config.seed,
        beta=config.beta,
    )
    coalitions, v_nats = plan.common_values(logp, index)
    efficiency_gap = float(abs(phi_per_image.mean(axis=0).sum() - (logp[:, -1].mean() - logp[:, 0].mean())))
    estimator = plan.info(logp, phi_per_image)
    labels_given = config.labels == "given"
    reasons = (run_meta or {}).pop("skip_reasons", {})
    skipped = [
        {"name": run_info["names"][i], "reason": reasons.get(run_info["names"][i], "unreadable")}
        for i in np.flatnonzero(state.skipped)
    ]
    data = {**run_info["data"], "n_images": int(done.sum()), "n_images_available": int(len(done)), "skipped": skipped}
    meta = {
        "iaside_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **(run_meta or {}),
    }
    meta.setdefault("timings_s", {})
    exact_views = _exact_views(config, plan, state, done) if views else {}
    return Result(
        config=config.to_dict(),
        model=run_info["model"],
        data=data,
        meta=meta,
        v_nats=v_nats,
        phi=summary["phi"],
        sid=summary["sid"],
        shares=summary["shares"],
        score=summary["score"],
        score_signed=summary["score_signed"],
        per_class=summary["per_class"],
        clean_accuracy=float(np.mean(state.clean_top1[done] == state.label[done])) if labels_given else None,
        efficiency_gap=efficiency_gap,
        coalitions=coalitions,
        estimator=estimator,
        interactions=exact_views.get("interactions"),
        band_limited=exact_views.get("band_limited"),
        per_image={
            "logp_nats": logp,
            "phi_per_image": summary["phi_per_image"],
            "label": state.label[done],
            "clean_top1": state.clean_top1[done],
            "clean_logp_nats": state.clean_logp_nats[done],
            "index": index,
            "names": np.asarray(run_info["names"], dtype=str)[done],
            **exact_views.get("per_image", {}),
        },
    )


MAX_INTERACTION_BANDS = 12
"""Band interactions are summarised up to this M (4096 dividends per image, bootstrapped)."""


def _exact_views(config: ExplainConfig, plan: Estimator, state: EngineState, done: np.ndarray) -> dict:
    """Band-limited curves of the finished images and (M ≤ MAX_INTERACTION_BANDS) their band
    interactions, when every image has all 2**M coalitions in bit-mask order (else {}).
    Accuracy uses the images whose top-1 was recorded."""
    from .bandlimited import band_limited
    from .interactions import summarize_interactions

    if plan.per_image or not np.array_equal(plan.masks(0), np.arange(2**config.bands)):
        return {}
    logp = state.logp_nats[done]
    recorded = state.top1_recorded[done] == 1
    opts: dict[str, Any] = {"n_bootstrap": config.n_bootstrap, "confidence": config.confidence, "seed": config.seed}
    hits = state.top1_hit[done][recorded].astype(bool) if recorded.any() else None
    out: dict = {"band_limited": band_limited(logp, hits, fill=config.fill, **opts), "per_image": {}}
    if recorded.any():
        out["per_image"].update(top1_hit=state.top1_hit[done].astype(bool), top1_recorded=recorded)
    if config.bands <= MAX_INTERACTION_BANDS:  # 2**M dividends per image, bootstrapped: bounded work
        inter = summarize_interactions(logp, **opts)
        out["interactions"] = {"index": inter["index"], "mobius": inter["mobius"]}
        out["per_image"]["interactions_per_image"] = inter["per_image"]
    return out
