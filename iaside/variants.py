"""Modified copies of every image through the model, resumable: the loop the Fourier heat map
and the cut-off curves share.

A views command with passes of its own (``heatmap``, ``cutoffs``) makes K copies of each image
(perturbed, filtered), runs them through the engine's model runner and keeps log p(y) and the
top-1 hit per (image, copy) in a ``VariantState`` (N, K). ``VariantsRun`` resolves the model
and the data as ``iaside.explain`` does, keys its folder by an identity (model, data, setting)
and checkpoints the state there, so a stopped run resumes; its options are ``explain``'s, by
the same names (``PASS_OPTIONS``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import IasideError
from .options import RunOptions, split_options
from .runs import atomic_write


@dataclass
class VariantState:
    """Per image and copy: logp (N, K) of the label, hit (N, K) top-1 == y; clean_logp (N,),
    clean_hit (N,), label (N,), done (N,)."""

    logp: np.ndarray
    hit: np.ndarray
    clean_logp: np.ndarray
    clean_hit: np.ndarray
    label: np.ndarray
    done: np.ndarray

    @classmethod
    def empty(cls, n_images: int, n_cells: int) -> VariantState:
        return cls(
            np.zeros((n_images, n_cells)),
            np.zeros((n_images, n_cells), np.int8),
            np.zeros(n_images),
            np.zeros(n_images, np.int8),
            np.zeros(n_images, np.int64),
            np.zeros(n_images, np.int64),
        )

    def save(self, path: Path) -> None:
        atomic_write(path, lambda fh: np.savez(fh, **self.__dict__))

    @classmethod
    def load(cls, path: Path) -> VariantState:
        try:
            with np.load(path) as z:
                return cls(**{k: z[k].copy() for k in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError) as err:
            raise IasideError(f"the saved heat-map state {path} is damaged ({err}); delete it to start over") from err


def stream_variants(
    model: Callable[[torch.Tensor], torch.Tensor],
    dataset,
    n_variants: int,
    variants: Callable[[torch.Tensor, Any, int, int], torch.Tensor],
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    state: VariantState | None = None,
    checkpoint: Callable[[VariantState], None] | None = None,
    checkpoint_every_s: float = 30.0,
    show_progress: bool = True,
    desc: str = "variants",
) -> tuple[VariantState, dict[str, Any]]:
    """log p(y) and top-1 == y of ``n_variants`` modified copies of every image not yet done.

    ``variants(x, item, start, stop)`` returns copies start…stop−1 of image x (C, H, W) on the
    device, (stop − start, C, H, W); ``model``: pixels -> logits (the run's precision inside).
    Returns (state, stats: passes (with one clean pass per image), images_this_session, seconds).
    """
    from tqdm.auto import tqdm

    from .data.base import PREDICTED

    device = torch.device(device)
    shape = tuple(dataset[0].pixels.shape)
    n = len(dataset)
    state = state or VariantState.empty(n, n_variants)
    todo = [i for i in range(n) if not state.done[i]]
    passes, t0, last = 0, time.perf_counter(), time.perf_counter()
    bar = tqdm(total=len(todo), unit="img", desc=desc, disable=not show_progress, dynamic_ncols=True)
    try:
        with torch.inference_mode():
            for i in todo:
                item = dataset[i]
                x = item.pixels.to(device)
                if tuple(x.shape) != shape:
                    raise IasideError(
                        f"image {item.name!r} is {tuple(x.shape)}, the first one {shape}: resize the "
                        "data to one size (--input-size)"
                    )
                clean = model(x[None]).float()
                y = int(clean.argmax()) if item.label == PREDICTED else int(item.label)
                if not 0 <= y < clean.shape[1]:
                    raise IasideError(
                        f"image {item.name!r} has label {y}, outside the model's {clean.shape[1]} classes"
                    )
                logp, hit = np.empty(n_variants), np.empty(n_variants, np.int8)
                for s in range(0, n_variants, batch_size):
                    e = min(s + batch_size, n_variants)
                    out = model(variants(x, item, s, e)).float()
                    logp[s:e] = torch.log_softmax(out, 1)[:, y].double().cpu().numpy()
                    hit[s:e] = (out.argmax(1) == y).cpu().numpy()
                    passes += e - s
                state.logp[i], state.hit[i] = logp, hit
                state.clean_logp[i] = float(torch.log_softmax(clean, 1)[0, y])
                state.clean_hit[i], state.label[i], state.done[i] = int(clean.argmax()) == y, y, 1
                bar.update(1)
                if checkpoint is not None and time.perf_counter() - last >= checkpoint_every_s:
                    checkpoint(state)
                    last = time.perf_counter()
    except BaseException:
        if checkpoint is not None:
            checkpoint(state)
        raise
    finally:
        bar.close()
    return state, {"passes": passes + len(todo), "images_this_session": len(todo), "seconds": time.perf_counter() - t0}


def open_variants_folder(
    out: Path | None, identity: dict[str, Any], ident_name: str, state_name: str, what: str
) -> tuple[VariantState | None, Callable[[VariantState], None] | None]:
    """A variants run's folder (heat map, cut-offs): its saved state to resume (None for a new
    run) and the checkpoint that saves it; a folder holding another setting is refused."""
    if out is None:
        return None, None
    out.mkdir(parents=True, exist_ok=True)
    ident_file = out / ident_name
    state = None
    if ident_file.exists():
        if json.loads(ident_file.read_text()) != json.loads(json.dumps(identity)):
            raise IasideError(
                f"{out} holds {what} with another model, data or setting; use another --out "
                f"or delete {ident_file.name} and {state_name}"
            )
        if (out / state_name).exists():
            state = VariantState.load(out / state_name)
    else:
        atomic_write(ident_file, json.dumps(identity, indent=1))
    return state, lambda s: s.save(out / state_name)


PASS_OPTIONS = (
    "labels",
    "samples",
    "seed",
    "weights",
    "data_config",
    "overrides",
    "num_classes",
    "outputs",
    "batch_size",
    "device",
    "precision",
    "out",
    "show_progress",
)
"""``explain``'s options that a view with passes of its own takes too, by the same names: the
labels ('given', 'predicted' or a CSV file) and a seeded subset, the source options, and the run
options that apply (batch size, device, precision, output folder, progress bar)."""


@dataclass
class VariantsRun:
    """One heat-map or cut-off run: its run options, the loaded model, its data set
    (ImageItems), the label mode ('given' or 'predicted') and the ``data`` it was given."""

    run: RunOptions
    loaded: Any
    dataset: Any
    labels: str
    data: Any

    @classmethod
    def resolve(cls, model, data, **options) -> VariantsRun:
        """``model`` and ``data`` in the forms ``iaside.explain`` takes, read with ``options``
        (``PASS_OPTIONS``) sorted as ``explain`` sorts them (``options.split_options``)."""
        from .data.resolve import resolve_data
        from .models.registry import resolve_model
        from .runtime import apply_malloc_fix

        apply_malloc_fix()
        other = sorted(set(options) - set(PASS_OPTIONS))
        if other:
            raise IasideError(f"{other[0]!r} does not apply here; the options are {', '.join(PASS_OPTIONS)}")
        config, run, source = split_options(None, None, options)
        loaded = resolve_model(
            model, source.weights, run.device, source.data_config, source.overrides, source.num_classes, source.outputs
        )
        dataset = resolve_data(data, loaded.data_config, config, source.labels_file, loaded.model.class_names)
        return cls(run, loaded, dataset, config.labels, data)

    @property
    def folder(self) -> Path | None:
        return Path(self.run.out) if self.run.out is not None else None

    def identity(self, **setting) -> dict[str, Any]:
        """What keys the run folder: model, data, data config, the view's ``setting``, precision, labels."""
        dataset = self.dataset
        return {
            "model": {"spec": self.loaded.spec, "fingerprint": self.loaded.fingerprint},
            "data": {
                "fingerprint": dataset.fingerprint() if hasattr(dataset, "fingerprint") else None,
                "n_images": len(dataset),
            },
            "data_config": self.loaded.data_config.to_dict(),
            **setting,
            "precision": self.run.precision,
            "labels": self.labels,
        }

    def stream(self, identity: dict[str, Any], ident_name: str, state_name: str, what: str) -> dict[str, Any]:
        """``stream_variants``' keywords: batch size, device, the saved state to resume and its
        checkpoint (``open_variants_folder``), the progress bar."""
        state, checkpoint = open_variants_folder(self.folder, identity, ident_name, state_name, what)
        run = self.run
        return {
            "batch_size": 64 if run.batch_size == "auto" else int(run.batch_size),
            "device": torch.device(run.device),
            "state": state,
            "checkpoint": checkpoint,
            "checkpoint_every_s": run.checkpoint_every_s,
            "show_progress": run.show_progress,
        }

    def forward(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The engine's model runner: (B, C, H, W) pixels -> (B, classes) logits."""
        from .engine import ModelRunner

        run = self.run
        return ModelRunner(self.loaded.model, device=torch.device(run.device), precision=run.precision).logits

    def session(self, identity: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
        """The summary's closing fields: model, data description, passes and seconds of this session."""
        return {
            "model": identity["model"],
            "data_spec": getattr(self.dataset, "description", str(self.data)),
            "forward_passes_this_session": stats["passes"],
            "seconds_this_session": stats["seconds"],
        }
