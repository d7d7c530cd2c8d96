"""The one streaming engine: images -> bands -> coalition images -> model -> log-probabilities.

Every image is evaluated on all 2**M coalitions with the same fill (common random numbers).
Pairs (image, coalition) are packed into model batches of exactly ``batch_size`` across image
boundaries; each image's band split is done once. The result is an ``EngineState``: a
per-image table that merges by addition, so shards, ranks and resumed runs combine exactly.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .coalitions import CoalitionSynthesizer
from .data.base import PREDICTED, ImageItem
from .errors import IasideError
from .fills import Fill, partner_index
from .game import coalition_bits

PRECISIONS = ("fp32", "bf16", "fp16", "auto")


@dataclass
class EngineState:
    """Per-image results of a run. Merges by addition: rows of unfinished images are zero.

    logp_nats: (N, 2**M) float64, log p(y | x_S) for coalition bit mask S;
    done: (N,) int64, 1 where the image's row is complete; label: (N,) int64, the class
    scored (ground truth, or the clean top-1 for predicted labels); clean_top1: (N,) int64;
    clean_logp_nats: (N,) float64, log p(y | x) of the unmodified image.
    """

    logp_nats: np.ndarray
    done: np.ndarray
    label: np.ndarray
    clean_top1: np.ndarray
    clean_logp_nats: np.ndarray

    @classmethod
    def empty(cls, n_images: int, n_bands: int) -> "EngineState":
        return cls(
            logp_nats=np.zeros((n_images, 2**n_bands)),
            done=np.zeros(n_images, np.int64),
            label=np.zeros(n_images, np.int64),
            clean_top1=np.zeros(n_images, np.int64),
            clean_logp_nats=np.zeros(n_images),
        )

    @property
    def n_images(self) -> int:
        return self.done.shape[0]

    @property
    def n_bands(self) -> int:
        return int(round(np.log2(self.logp_nats.shape[1])))

    @property
    def complete(self) -> bool:
        return bool((self.done == 1).all())

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def merge(self, other: "EngineState") -> "EngineState":
        """The sum of two states over the same data set; refuses overlapping images."""
        if other.logp_nats.shape != self.logp_nats.shape:
            raise IasideError(
                f"cannot merge states of shape {self.logp_nats.shape} and {other.logp_nats.shape}: "
                "they come from different data sets or band counts"
            )
        both = np.flatnonzero((self.done > 0) & (other.done > 0))
        if both.size:
            raise IasideError(f"cannot merge: {both.size} images are in both states (first: index {both[0]})")
        return EngineState(**{k: v + other.arrays()[k] for k, v in self.arrays().items()})

    def clear_unfinished(self) -> None:
        """Zero the rows of images that are not done (they will be recomputed)."""
        todo = self.done == 0
        for v in self.arrays().values():
            v[todo] = 0

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: temporary file in the same folder, fsync, rename."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".state-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **self.arrays())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EngineState":
        with np.load(path) as z:
            return cls(**{k: z[k].copy() for k in cls.__dataclass_fields__})


@dataclass
class EngineStats:
    """What the run cost: images and forward passes done here, wall-clock seconds by stage."""

    images: int = 0
    passes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def add_time(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


class _EngineItems(Dataset):
    """Wraps a data set so one item carries the image and, for the partner fill, its partner."""

    def __init__(self, dataset: Dataset, indices: Sequence[int], partner: np.ndarray | None) -> None:
        self.dataset, self.indices, self.partner = dataset, list(indices), partner

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        item: ImageItem = self.dataset[self.indices[k]]
        other = self.dataset[int(self.partner[item.index])].pixels if self.partner is not None else None
        return item, other


def _collate(batch):
    items = [b[0] for b in batch]
    partners = [b[1] for b in batch]
    return (
        torch.stack([it.pixels for it in items]),
        torch.tensor([it.label for it in items], dtype=torch.int64),
        torch.tensor([it.index for it in items], dtype=torch.int64),
        [it.name for it in items],
        torch.stack(partners) if partners[0] is not None else None,
    )


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for a precision name, or None for float32. 'auto' = bf16 where supported."""
    if precision not in PRECISIONS:
        raise IasideError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    return torch.bfloat16 if ("avx512_bf16" in flags or "amx_bf16" in flags) else None


class _Chunk:
    """One loader batch in flight: its prepared terms and the rows being filled."""

    def __init__(self, names, indices, labels, prepared, n_coalitions):
        self.names, self.indices, self.labels, self.prepared = names, indices, labels, prepared
        self.rows = torch.empty((len(names), n_coalitions), dtype=torch.float64)
        self.remaining = len(names) * n_coalitions


class Engine:
    """Streams a data set through a model for one synthesizer and fill.

    ``run(dataset)`` returns the filled ``EngineState``; pass ``state`` to resume (images
    already done are skipped) and ``indices`` to process a subset (a shard).
    """

    def __init__(
        self,
        model: nn.Module,
        synthesizer: CoalitionSynthesizer,
        fill: Fill,
        *,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        num_workers: int = 0,
        seed: int = 0,
        show_progress: bool = True,
        checkpoint: Callable[[EngineState], None] | None = None,
        checkpoint_every_s: float = 60.0,
    ) -> None:
        if batch_size < 1:
            raise IasideError(f"--batch-size must be at least 1, got {batch_size}")
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.channels_last = any(isinstance(m, nn.Conv2d) for m in self.model.modules())
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.synth, self.fill = synthesizer, fill
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.show_progress = show_progress
        self.checkpoint, self.checkpoint_every_s = checkpoint, checkpoint_every_s
        self.n_bands = synthesizer.n_bands
        self.bits_np = coalition_bits(self.n_bands)
        self.bits = torch.from_numpy(self.bits_np).to(self.device, torch.float32)

    # -- model -----------------------------------------------------------------------------
    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) pixels -> (B, K) float32 logits, checked for shape."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        ctx = (
            torch.autocast(self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else nullcontext()
        )
        with ctx:
            out = self.model(images)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if hasattr(out, "logits"):
            out = out.logits
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != images.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise IasideError(
                f"the model returned {shape} for a batch of {images.shape[0]} images; "
                "expected (B, K) logits — wrap it so forward returns class scores"
            )
        return out.float()

    @staticmethod
    def _check_finite(logits: torch.Tensor, describe: Callable[[int], str]) -> None:
        """Raise naming the image and coalition of the first row with NaN/inf logits."""
        bad = ~torch.isfinite(logits).all(dim=1)
        if bool(bad.any()):
            raise IasideError(
                f"the model returned NaN/inf logits for {describe(int(torch.nonzero(bad)[0]))}; "
                "check the model and its input normalisation (try --precision fp32)"
            )

    # -- streaming -------------------------------------------------------------------------
    def _prepare_chunk(self, batch, state: EngineState) -> _Chunk:
        pixels, labels, indices, names, partners = batch
        x = pixels.to(self.device, non_blocking=True)
        clean = self._logits(x)
        self._check_finite(clean, lambda k: f"image {names[k]!r} (the clean image)")
        n_classes = clean.shape[1]
        top1 = clean.argmax(dim=1).cpu()
        y = torch.where(labels == PREDICTED, top1, labels)
        bad = (y < 0) | (y >= n_classes)
        if bool(bad.any()):
            k = int(torch.nonzero(bad)[0])
            raise IasideError(
                f"image {names[k]!r} has label {int(y[k])}, outside the model's {n_classes} classes; "
                "check the labels file or class folders"
            )
        clean_logp = torch.log_softmax(clean, dim=1).gather(1, y.to(self.device)[:, None])[:, 0]
        idx = indices.numpy()
        state.label[idx] = y.numpy()
        state.clean_top1[idx] = top1.numpy()
        state.clean_logp_nats[idx] = clean_logp.double().cpu().numpy()
        fill = self.fill(x, indices, None if partners is None else partners.to(self.device))
        prepared = self.synth.prepare(x, fill)
        return _Chunk(names, idx, y.to(self.device), prepared, 2**self.n_bands)

    def _describe_pair(self, segments, k: int) -> str:
        """'image NAME, coalition {bands}' for row k of a model batch built from segments."""
        for c, i, s0, s1 in segments:
            if k < s1 - s0:
                bands = ",".join(str(b) for b in np.flatnonzero(self.bits_np[s0 + k]))
                return f"image {c.names[i]!r}, coalition {{{bands}}} (bit mask {s0 + k})"
            k -= s1 - s0
        raise IndexError(k)

    def _run_batch(self, segments, state: EngineState, stats: EngineStats, on_image_done) -> None:
        """segments: [(chunk, image row, first coalition, end coalition)] totalling ≤ batch_size."""
        t0 = time.perf_counter()
        images = torch.cat(
            [self.synth.render(c.prepared.base[i], c.prepared.deltas[i], self.bits[s0:s1]) for c, i, s0, s1 in segments]
        )
        t1 = time.perf_counter()
        logits = self._logits(images)
        t2 = time.perf_counter()
        self._check_finite(logits, lambda k: self._describe_pair(segments, k))
        y = torch.cat([c.labels[i].expand(s1 - s0) for c, i, s0, s1 in segments])
        logp = torch.log_softmax(logits, dim=1).gather(1, y[:, None])[:, 0].double().cpu()
        stats.passes += images.shape[0]
        stats.add_time("synthesis", t1 - t0)
        stats.add_time("model", t2 - t1)
        at = 0
        for c, i, s0, s1 in segments:
            c.rows[i, s0:s1] = logp[at : at + s1 - s0]
            at += s1 - s0
            c.remaining -= s1 - s0
            if c.remaining == 0:
                state.logp_nats[c.indices] = c.rows.numpy()
                state.done[c.indices] = 1
                on_image_done(len(c.indices))

    def _loader(self, dataset: Dataset, indices: Sequence[int], images_per_batch: int) -> DataLoader:
        partner = partner_index(len(dataset), self.seed) if self.fill.needs_partner else None
        return DataLoader(
            _EngineItems(dataset, indices, partner),
            batch_size=images_per_batch,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
        )

    def fit_fill(self, dataset: Dataset) -> None:
        """The fill's one pass over the whole data set (mean image, per-band energy)."""
        if not self.fill.needs_fit:
            return
        loader = self._loader(dataset, range(len(dataset)), 32)
        self.fill.fit((batch[0] for batch in loader), self.synth.masks)

    @torch.inference_mode()
    def run(
        self, dataset: Dataset, state: EngineState | None = None, indices: Sequence[int] | None = None
    ) -> tuple[EngineState, EngineStats]:
        """Evaluate every (image, coalition) not yet done; returns (state, stats)."""
        from tqdm.auto import tqdm

        n_coal = 2**self.n_bands
        state = state or EngineState.empty(len(dataset), self.n_bands)
        state.clear_unfinished()
        wanted = range(len(dataset)) if indices is None else indices
        todo = [int(i) for i in wanted if state.done[int(i)] == 0]
        stats = EngineStats()
        t_start = time.perf_counter()
        self.fit_fill(dataset)
        stats.add_time("fill_fit", time.perf_counter() - t_start)
        if not todo:
            return state, stats
        images_per_batch = max(1, -(-self.batch_size // n_coal))
        bar = tqdm(total=len(todo), unit="img", disable=not self.show_progress, desc="I-ASIDE", dynamic_ncols=True)
        last_ckpt = time.perf_counter()

        def on_image_done(n: int) -> None:
            nonlocal last_ckpt
            stats.images += n
            bar.update(n)
            elapsed = time.perf_counter() - t_start
            bar.set_postfix(passes_per_s=f"{stats.passes / max(elapsed, 1e-9):.0f}")
            if self.checkpoint is not None and time.perf_counter() - last_ckpt >= self.checkpoint_every_s:
                self.checkpoint(state)
                last_ckpt = time.perf_counter()

        pending: deque = deque()
        n_pending = 0
        t_load = time.perf_counter()
        try:
            for batch in self._loader(dataset, todo, images_per_batch):
                t_prep = time.perf_counter()
                stats.add_time("load", t_prep - t_load)
                chunk = self._prepare_chunk(batch, state)
                stats.add_time("prepare", time.perf_counter() - t_prep)
                for i in range(len(chunk.names)):
                    pending.append([chunk, i, 0, n_coal])
                n_pending += len(chunk.names) * n_coal
                while n_pending >= self.batch_size:
                    n_pending -= self._flush(pending, self.batch_size, state, stats, on_image_done)
                t_load = time.perf_counter()
            while n_pending > 0:
                n_pending -= self._flush(pending, self.batch_size, state, stats, on_image_done)
        finally:
            bar.close()
        stats.seconds["total"] = time.perf_counter() - t_start
        return state, stats

    def _flush(self, pending: deque, size: int, state, stats, on_image_done) -> int:
        """Take up to ``size`` pairs off the queue and run them as one model batch."""
        segments, taken = [], 0
        while pending and taken < size:
            seg = pending[0]
            chunk, i, s0, s1 = seg
            k = min(s1 - s0, size - taken)
            segments.append((chunk, i, s0, s0 + k))
            taken += k
            if s0 + k == s1:
                pending.popleft()
            else:
                seg[2] = s0 + k
        self._run_batch(segments, state, stats, on_image_done)
        return taken
