"""``iaside.explain``: the one entry point. Model + data in, ``Result`` out (and files, with ``out``)."""
from __future__ import annotations

import datetime as _dt
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .coalitions import CoalitionSynthesizer
from .config import DataConfig, ExplainConfig
from .data.base import PREDICTED
from .engine import Engine, EngineState
from .errors import IasideError
from .fills import make_fill
from .models.base import Classifier, LoadedModel
from .result import Result
from .runtime import apply_malloc_fix
from .spectral import band_masks
from .summary import summarize

RUN_JSON = "run.json"
STATE_NPZ = "state.npz"


def _resolve_model(model, weights, device, data_config, overrides) -> LoadedModel:
    """A spec string, a LoadedModel, a Classifier or any nn.Module -> LoadedModel.

    ``data_config`` then ``overrides`` replace the source's config, mean/std included.
    """
    given = {**(data_config.to_dict() if data_config else {}), **{k: v for k, v in (overrides or {}).items() if v is not None}}
    if isinstance(model, LoadedModel):
        if given:
            raise IasideError("a LoadedModel carries its data config; pass overrides to load_model instead")
        return model
    if isinstance(model, str):
        from .models import load_model

        return load_model(model, weights=weights, device=device, overrides=given)
    if not isinstance(model, nn.Module):
        raise IasideError(f"model must be a spec string or an nn.Module, got {type(model).__name__}")
    cfg = DataConfig(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)).override(**given)
    net = model if isinstance(model, Classifier) else Classifier(model, cfg.mean, cfg.std, name=type(model).__name__)
    return LoadedModel(net, cfg, spec=f"module:{type(model).__name__}", fingerprint=module_fingerprint(net))


def module_fingerprint(module: nn.Module) -> str:
    """sha256 (16 hex) of the parameters and buffers in key order."""
    import hashlib

    h = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _resolve_data(data, cfg: DataConfig, config: ExplainConfig, labels_file: str | None, class_names):
    from .data import open_dataset

    if isinstance(data, str):
        labels = "predicted" if config.labels == "predicted" else labels_file
        return open_dataset(data, cfg, labels=labels, class_names=class_names, samples=config.samples, seed=config.seed)
    if isinstance(data, torch.Tensor):
        from .data.tensors import TensorImages

        dataset = TensorImages(data, None)
    elif isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        from .data.tensors import TensorImages

        dataset = TensorImages(*data)
    else:
        dataset = data
    if config.samples is not None and config.samples < len(dataset):
        dataset = dataset.subset(
            np.sort(np.random.default_rng(config.seed).choice(len(dataset), config.samples, replace=False))
        )
    return dataset


def _identity(config: ExplainConfig, loaded: LoadedModel, dataset, precision: str) -> dict[str, Any]:
    """What must match for a folder's saved state to be resumed."""
    return {
        "config": config.to_dict(),
        "model": {"spec": loaded.spec, "fingerprint": loaded.fingerprint},
        "data": {"fingerprint": dataset.fingerprint(), "n_images": len(dataset)},
        "data_config": loaded.data_config.to_dict(),
        "precision": precision,
    }


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _open_run_folder(out: Path, identity: dict, n_images: int, n_bands: int) -> EngineState | None:
    """Check ``out`` against this run; return the saved state to resume, if any."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise IasideError(f"cannot write to the output folder {out} ({err.strerror}); choose another --out") from err
    run_file = out / RUN_JSON
    if run_file.exists():
        old = json.loads(run_file.read_text())
        diff = _differences(old, identity)
        if diff:
            raise IasideError(
                f"{out} holds a run with a different configuration ({'; '.join(diff[:4])}); "
                "use another --out or delete the folder"
            )
        if (out / STATE_NPZ).exists():
            state = EngineState.load(out / STATE_NPZ)
            if state.logp_nats.shape == (n_images, 2**n_bands):
                return state
    else:
        run_file.write_text(json.dumps(identity, indent=1))
    return None


def explain(
    model: str | nn.Module | LoadedModel,
    data: Any,
    *,
    bands: int = 8,
    partition: str | None = None,
    fill: str | None = None,
    preset: str | None = None,
    clip: bool | None = None,
    labels: str | None = None,
    samples: int | None = None,
    seed: int = 0,
    n_bootstrap: int = 1000,
    batch_size: int = 64,
    device: str = "cpu",
    precision: str = "fp32",
    num_workers: int = 0,
    weights: str | None = None,
    data_config: DataConfig | None = None,
    overrides: dict | None = None,
    out: str | Path | None = None,
    show_progress: bool = True,
    checkpoint_every_s: float = 60.0,
) -> Result:
    """Exact I-ASIDE of ``model`` over ``data``.

    model: a spec ('efficientnet-lite0', 'onnx:PATH', ...), a LoadedModel, or any nn.Module
    taking (B, C, H, W) pixels (normalised inside with ``data_config``'s mean/std, if given).
    data: a spec ('samples:imagenet', a folder), a data set of ``ImageItem``s, a (N, C, H, W)
    tensor in [0, 1] (predicted labels) or a (images, labels) pair.
    labels: None/'given', 'predicted', or a CSV path for a flat folder.
    With ``out``, the run resumes from that folder's checkpoint and writes its files there.
    """
    apply_malloc_fix()
    label_mode = "predicted" if labels == "predicted" else "given"
    config = ExplainConfig.build(
        preset, bands=bands, partition=partition, fill=fill, clip=clip, labels=label_mode,
        samples=samples, seed=seed, n_bootstrap=n_bootstrap,
    )
    if samples is not None and samples < 1:
        raise IasideError(f"--samples must be at least 1, got {samples}")
    loaded = _resolve_model(model, weights, device, data_config, overrides)
    labels_file = labels if labels not in (None, "given", "predicted") else None
    dataset = _resolve_data(data, loaded.data_config, config, labels_file, loaded.model.class_names)
    if len(dataset) == 0:
        raise IasideError("the data set is empty")
    if hasattr(dataset, "min_side"):
        dataset.min_side = 2 * config.bands
    if config.labels == "predicted" or getattr(dataset, "labels_kind", "given") == "predicted":
        config = ExplainConfig.from_dict({**config.to_dict(), "labels": "predicted"})
    first = dataset[0].pixels
    masks = band_masks(first.shape[-2], first.shape[-1], config.bands, config.partition)
    synth = CoalitionSynthesizer(masks, config.synthesis, config.clip)
    engine_fill = make_fill(config.fill, config.seed)

    out_dir = Path(out) if out is not None else None
    state = None
    checkpoint = None
    if out_dir is not None:
        identity = _identity(config, loaded, dataset, precision)
        state = _open_run_folder(out_dir, identity, len(dataset), config.bands)
        checkpoint = lambda s: s.save(out_dir / STATE_NPZ)  # noqa: E731
    engine = Engine(
        loaded.model, synth, engine_fill, batch_size=batch_size, device=device, precision=precision,
        num_workers=num_workers, seed=config.seed, show_progress=show_progress,
        checkpoint=checkpoint, checkpoint_every_s=checkpoint_every_s,
    )
    t0 = time.perf_counter()
    state, stats = engine.run(dataset, state)
    if checkpoint is not None:
        checkpoint(state)
    t_summary = time.perf_counter()
    result = _build_result(config, loaded, dataset, state, stats, precision, batch_size, device)
    result.meta["timings_s"]["summary"] = time.perf_counter() - t_summary
    result.meta["timings_s"]["wall"] = time.perf_counter() - t0
    if out_dir is not None:
        result.save(out_dir)
        from .report.plots import plot_sid

        plot_sid(result, out_dir / "sid.png")
    return result


def _build_result(config, loaded, dataset, state: EngineState, stats, precision, batch_size, device) -> Result:
    summary = summarize(
        state.logp_nats, state.label, n_bootstrap=config.n_bootstrap, confidence=config.confidence,
        seed=config.seed, beta=config.beta,
    )
    labels_given = config.labels == "given"
    clean_accuracy = float(np.mean(state.clean_top1 == state.label)) if labels_given else None
    names = np.asarray(getattr(dataset, "names", [str(i) for i in range(len(dataset))]), dtype=str)
    meta = {
        "iaside_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "precision": precision,
        "batch_size": batch_size,
        "forward_passes": stats.passes + stats.images,  # coalition passes + one clean pass per image
        "reused_coalitions": stats.reused,
        "images_this_session": stats.images,
        "timings_s": dict(stats.seconds),
        "images_per_s": stats.images / max(stats.seconds.get("total", 0.0), 1e-9) if stats.images else None,
    }
    return Result(
        config=config.to_dict(),
        model={"spec": loaded.spec, "fingerprint": loaded.fingerprint, "num_classes": loaded.model.num_classes},
        data={
            "spec": getattr(dataset, "description", type(dataset).__name__),
            "fingerprint": dataset.fingerprint() if hasattr(dataset, "fingerprint") else None,
            "n_images": len(dataset),
            "labels": config.labels,
            "data_config": loaded.data_config.to_dict(),
        },
        meta=meta,
        v_nats=summary["v"],
        phi=summary["phi"],
        sid=summary["sid"],
        shares=summary["shares"],
        score=summary["score"],
        score_signed=summary["score_signed"],
        per_class=summary["per_class"],
        clean_accuracy=clean_accuracy,
        efficiency_gap=summary["efficiency_gap"],
        per_image={
            "logp_nats": state.logp_nats,
            "phi_per_image": summary["phi_per_image"],
            "label": state.label,
            "clean_top1": state.clean_top1,
            "clean_logp_nats": state.clean_logp_nats,
            "names": names,
        },
    )
