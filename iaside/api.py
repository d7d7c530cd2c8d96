"""``iaside.explain``: the one entry point. Model + data in, ``Result`` out (and files, with ``out``)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__, distributed
from .coalitions import CoalitionSynthesizer
from .compile_cache import CompileCache
from .config import ExplainConfig
from .data.resolve import find_bad_images, resolve_data
from .engine import Engine, EngineState
from .errors import IasideError
from .estimators import Estimator, estimator_from_config, resolve_budget
from .fills import make_fill
from .models.base import LoadedModel
from .models.registry import resolve_model
from .options import RunOptions, SourceOptions, split_options
from .result import SID_PNG, Result
from .runs import STATE_NPZ, atomic_write_json, checked_write, open_run, run_identity, run_owner, skips_file, state_file
from .runtime import apply_malloc_fix
from .spectral import band_masks
from .summary import summarize
from .validate import check_run_arguments, check_still_readable


def _open_shared_folder(out: Path, run_info: dict, shard, n_images: int, n_coalitions: int, rank):
    """``runs.open_run``; under torchrun rank 0 (the folder's owner) first, the other ranks after it."""
    if rank is None:
        return open_run(out, run_info, shard, n_images, n_coalitions)
    import torch.distributed as dist

    state = open_run(out, run_info, shard, n_images, n_coalitions) if rank[0] == 0 else None
    dist.barrier()
    return state if rank[0] == 0 else open_run(out, run_info, shard, n_images, n_coalitions)


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


@contextlib.contextmanager
def _training_modes_kept(model):
    """Leaves every submodule of an ``nn.Module`` model in the training mode it had."""
    module = model.model if isinstance(model, LoadedModel) else model
    modes = [(m, m.training) for m in module.modules()] if isinstance(module, nn.Module) else []
    try:
        yield
    finally:
        for m, training in modes:
            m.train(training)


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


def explain(
    model: str | nn.Module | LoadedModel,
    data: Any,
    config: ExplainConfig | None = None,
    *,
    run: RunOptions | None = None,
    **options: Any,
) -> Result | None:
    """I-ASIDE of ``model`` over ``data``: ``explain(model, data, bands=8, out="runs/x")``.

    model: a spec ('efficientnet-lite0', 'onnx:PATH', 'timm:NAME', 'hf:DIR', ...), a
    LoadedModel, or any nn.Module taking (B, C, H, W) pixels (normalised inside with the data
    config's mean/std, if given).
    data: a spec ('samples:imagenet', a folder); PIL images or image paths (resized by the data
    config); a numpy array or tensor of pixels, (N, C, H, W) or (N, H, W, C), float in [0, 1]
    or uint8 (read as /255); an (images, labels) pair; a Dataset or DataLoader yielding (image,
    label) or images alone (predicted labels); see ``iaside.data.inputs``.
    config: an ``ExplainConfig`` (everything that decides the numbers) to start from; run: a
    ``RunOptions`` (how the run executes) to start from.

    options, by name (``None`` = not given; an unknown name is refused with the closest one):
    - the configuration's fields, over ``config``: bands, partition, fill, preset, clip, labels
      ('given', 'predicted', or a CSV path of labels for a flat folder), samples, seed,
      estimator ('exact': 2**M passes per image; 'kernel': paired KernelSHAP on ``coalitions``
      coalitions per image, default 10 % of 2**M, at most 1024; 'permutation': ``permutations``
      antithetic permutations per image), permutations, coalitions, draws ('per-image': each
      image draws its own coalitions, so the intervals include the sampling error; 'shared'),
      n_bootstrap, confidence, beta. Defaults: 8 bands, the ℓ∞ partition, partner fill, exact.
    - how to read the inputs (``SourceOptions``): weights, data_config (a DataConfig, dict or
      JSON file; with ``overrides``, resolved as in ``iaside.models.load_model``: given > file
      or sidecar > the model's own > fallback, one warning line; sources in result.json),
      overrides, num_classes, outputs ('logits' or 'probs').
    - how to run (``RunOptions``, over ``run``): batch_size, device, precision, num_workers,
      optimize ('none', 'freeze', 'compile', 'auto'; compile seconds in
      ``meta["timings_s"]["compile"]``), cache (compiled models kept in ``IASIDE_CACHE``, default
      ~/.cache/iaside), shard (i, n: process the i-th of n blocks, ``iaside merge`` combines;
      under torchrun each rank takes its block and rank 0 writes the result, others get None),
      on_bad_image ('error' or 'skip': unreadable images counted and listed in the result), out,
      record, show_progress, checkpoint_every_s, views (band interactions and band-limited
      curves from the same passes, exact plans), target_ci (stop once the score's 95 %
      half-width is below it).
    With ``out``, the run resumes from that folder's checkpoint and writes its files there, and
    (with ``record``) is recorded in the results store (``iaside runs``). It owns the folder
    while it runs (``iaside.runs.owner``): another process on it is refused, naming this one.
    """
    apply_malloc_fix()
    config, run, sources = split_options(config, run, options)
    with run_owner(run.out, run.shard), _training_modes_kept(model):
        return _explain(model, data, config, run, sources)


def _explain(model, data, config: ExplainConfig, run: RunOptions, sources: SourceOptions) -> Result | None:
    check_run_arguments(
        bands=config.bands,
        seed=config.seed,
        workers=run.num_workers,
        samples=config.samples,
        confidence=config.confidence,
        beta=config.beta,
    )
    config = resolve_budget(config)
    rank, device = distributed.setup(run.device)
    if rank is not None:
        if run.shard is not None:
            raise IasideError("--shard and torchrun both split the data; use one of them")
        if run.target_ci is not None:
            raise IasideError("--target-ci needs one process over the whole data set; drop --shard/torchrun")
        run = replace(run, shard=rank)
    loaded, dataset, config, bad = _open_inputs(model, data, config, run, sources, device)
    plan = estimator_from_config(config)
    engine = _make_engine(loaded, dataset, config, plan, run, device, rank)
    run_info = _run_info(loaded, dataset, config, data, sources, engine.precision)
    out_dir = Path(run.out) if run.out is not None else None
    state = None
    if out_dir is not None:
        state = _open_shared_folder(out_dir, run_info, run.shard, len(dataset), plan.n_coalitions, rank)
        check_still_readable(state, bad, run_info["names"], out_dir)
        path = out_dir / state_file(run.shard)
        engine.checkpoint = lambda s: checked_write("the checkpoint", path, lambda: s.save(path))
    indices = distributed.shard_indices(len(dataset), config.seed, run.shard) if run.shard is not None else None
    stop = None if run.target_ci is None else _target_ci_stop(plan, config, len(dataset), run.target_ci)
    t0 = time.perf_counter()
    state, stats = engine.run(dataset, state, indices=indices, stop=stop, exclude=sorted(bad))
    if engine.checkpoint is not None:
        engine.checkpoint(state)
    run_meta = _run_meta(engine, stats, run, device, out_dir, {run_info["names"][i]: why for i, why in bad.items()})
    if rank is not None:
        state = distributed.all_reduce(state, device)
        if rank[0] != 0:
            return None
        if out_dir is not None:
            checked_write("the checkpoint", out_dir / STATE_NPZ, lambda: state.save(out_dir / STATE_NPZ))
        run_meta["world_size"] = rank[1]
    elif run.shard is not None:
        if out_dir is not None:  # for 'iaside merge': the state keeps no reasons
            reasons = skips_file(out_dir / state_file(run.shard))
            if bad:
                checked_write("the skip reasons", reasons, lambda: atomic_write_json(reasons, run_meta["skip_reasons"]))
            else:
                reasons.unlink(missing_ok=True)  # an earlier session's, for images now readable
        return None
    t_summary = time.perf_counter()
    result = build_result(run_info, state, run_meta, views=run.views)
    result.meta["timings_s"]["summary"] = time.perf_counter() - t_summary
    result.meta["timings_s"]["wall"] = time.perf_counter() - t0
    if out_dir is not None:
        _write_run_files(result, out_dir, run.record)
    return result


def _open_inputs(model, data, config: ExplainConfig, run: RunOptions, sources: SourceOptions, device):
    """The loaded model, the data set, the configuration with the labels the data set turned
    out to have, and the unreadable images ({index: reason}; only with on_bad_image='skip')."""
    used = None if isinstance(data, (str, os.PathLike)) else ("mean", "std")  # tensors skip resize and crop
    loaded = resolve_model(
        model,
        sources.weights,
        device,
        sources.data_config,
        sources.overrides,
        sources.num_classes,
        sources.outputs,
        used,
    )
    dataset = resolve_data(data, loaded.data_config, config, sources.labels_file, loaded.model.class_names)
    if len(dataset) == 0:
        raise IasideError("the data set is empty")
    if hasattr(dataset, "min_side"):
        dataset.min_side = 2 * config.bands
    bad = find_bad_images(dataset, run.num_workers) if run.on_bad_image == "skip" else {}
    if config.labels == "predicted" or getattr(dataset, "labels_kind", "given") == "predicted":
        config = replace(config, labels="predicted")
    return loaded, dataset, config, bad


def _make_engine(loaded, dataset, config: ExplainConfig, plan: Estimator, run: RunOptions, device, rank) -> Engine:
    first = dataset[0].pixels
    masks = band_masks(first.shape[-2], first.shape[-1], config.bands, config.partition)
    return Engine(
        loaded.model,
        CoalitionSynthesizer(masks, config.synthesis, config.clip),
        make_fill(config.fill, config.seed),
        batch_size=run.batch_size,
        device=device,
        precision=run.precision,
        num_workers=run.num_workers,
        seed=config.seed,
        coalitions=plan.bits if plan.per_image else plan.bits(),
        optimize=run.optimize,
        compile_cache=CompileCache() if run.cache else None,
        show_progress=run.show_progress and (rank is None or rank[0] == 0),
        checkpoint_every_s=run.checkpoint_every_s,
        record_top1=run.views,
    )


def _run_info(loaded, dataset, config: ExplainConfig, data, sources: SourceOptions, precision: str) -> dict[str, Any]:
    """run.json: what identifies the run (to resume or merge it) and what it ran on."""
    return {
        "identity": run_identity(config, loaded, dataset, precision),
        "model": {"spec": loaded.spec, "fingerprint": loaded.fingerprint, "num_classes": loaded.model.num_classes},
        "data": {
            "spec": getattr(dataset, "description", type(dataset).__name__),
            "source": source_record(data, sources.labels_file, config),
            "fingerprint": dataset.fingerprint() if hasattr(dataset, "fingerprint") else None,
            "n_images": len(dataset),
            "labels": config.labels,
            "data_config": loaded.data_config.to_dict(),
            "data_config_sources": dict(loaded.data_config.sources or {}),
        },
        "names": [str(n) for n in getattr(dataset, "names", range(len(dataset)))],
    }


def _run_meta(engine: Engine, stats, run: RunOptions, device, out_dir: Path | None, skip_reasons: dict) -> dict:
    """How this session ran: device, precision, batch, optimisation, passes, timings."""
    return {
        "device": str(device),
        "precision": engine.precision,
        "precision_requested": run.precision,
        "batch_size": engine.batch_size,
        "optimize": {
            "requested": run.optimize,
            "applied": engine.optimized_as,
            **({"compiled": engine.compile_info()} if engine.compile_info() else {}),
        },
        "forward_passes": stats.passes + stats.images,  # coalition passes + one clean pass per image
        "reused_coalitions": stats.reused,
        "images_this_session": stats.images,
        "timings_s": dict(stats.seconds),
        "images_per_s": stats.images / max(stats.seconds.get("total", 0.0), 1e-9) if stats.images else None,
        "target_ci": run.target_ci,
        "run_dir": None if out_dir is None else str(out_dir.resolve()),
        "skip_reasons": skip_reasons,
    }


def _write_run_files(result: Result, out_dir: Path, record: bool) -> None:
    """result.json and per_image.npz, the SID plot, and (with ``record``) the store's row."""
    from .report.plots import plot_sid
    from .store import record_run

    checked_write("the result", out_dir / "result.json", lambda: result.save(out_dir))
    checked_write("the SID plot", out_dir / SID_PNG, lambda: plot_sid(result, out_dir / SID_PNG))
    if record:
        record_run(result, out_dir)


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
