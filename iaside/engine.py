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
from .compiled import CompiledModel
from .data.base import PREDICTED, ImageItem
from .errors import IasideError
from .fills import Fill, partner_index, processing_order
from .game import coalition_bits

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
OPTIMIZATIONS = ("none", "freeze", "compile")
"""none: the model as given. freeze: torch.jit.trace + freeze (folds batch norm into the
convolutions, fuses ops), checked against the model as given on the first batch and dropped
with a warning when it differs or cannot be traced. compile: torch.compile with frozen weights
(``compiled.CompiledModel``: batch norm folded with its shift kept in float32, CPU convolution
weights prepacked for oneDNN), at fixed batch shapes: a short batch is padded to the run's
batch size (or to the clean pass's size), so a run compiles once or twice, never once per shape."""


@dataclass
class EngineState:
    """Per-image results of a run. Merges by addition: rows of unfinished images are zero.

    logp_nats: (N, K) float64, log p(y | x_S) for the K evaluated coalitions (all 2**M in
    bit-mask order for the exact estimator);
    done: (N,) int64, 1 where the image's row is complete; skipped: (N,) int64, 1 for images
    left out as unreadable (the one field that merges by maximum); label: (N,) int64, the class
    scored (ground truth, or the clean top-1 for predicted labels); clean_top1: (N,) int64;
    clean_logp_nats: (N,) float64, log p(y | x) of the unmodified image;
    top1_hit: (N, K) int8, 1 where the model's arg-max on the coalition image is y;
    top1_recorded: (N,) int64, 1 where the image's top1_hit row was recorded (0 for images
    finished by a version without the record, or by an engine with ``record_top1=False``).
    """

    logp_nats: np.ndarray
    done: np.ndarray
    skipped: np.ndarray
    label: np.ndarray
    clean_top1: np.ndarray
    clean_logp_nats: np.ndarray
    top1_hit: np.ndarray
    top1_recorded: np.ndarray

    @classmethod
    def empty(cls, n_images: int, n_coalitions: int) -> "EngineState":
        return cls(
            logp_nats=np.zeros((n_images, n_coalitions)),
            done=np.zeros(n_images, np.int64),
            skipped=np.zeros(n_images, np.int64),
            label=np.zeros(n_images, np.int64),
            clean_top1=np.zeros(n_images, np.int64),
            clean_logp_nats=np.zeros(n_images),
            top1_hit=np.zeros((n_images, n_coalitions), np.int8),
            top1_recorded=np.zeros(n_images, np.int64),
        )

    @property
    def n_images(self) -> int:
        return self.done.shape[0]

    @property
    def complete(self) -> bool:
        """Every image that is not skipped is done."""
        return bool(((self.done == 1) | (self.skipped == 1)).all())

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
        merged = {k: v + other.arrays()[k] for k, v in self.arrays().items()}
        merged["skipped"] = np.maximum(self.skipped, other.skipped)  # every shard knows the same skips
        return EngineState(**merged)

    def clear_unfinished(self) -> None:
        """Zero the rows of images that are not done (they will be recomputed)."""
        todo = self.done == 0
        for key, v in self.arrays().items():
            if key != "skipped":
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
        import zipfile

        try:
            with np.load(path) as z:
                arrays = {k: z[k].copy() for k in z.files if k in cls.__dataclass_fields__}
            arrays.setdefault("skipped", np.zeros_like(arrays["done"]))  # states saved before skips existed
            arrays.setdefault("top1_hit", np.zeros(arrays["logp_nats"].shape, np.int8))  # ... before the top-1 record
            arrays.setdefault("top1_recorded", np.zeros_like(arrays["done"]))
            return cls(**arrays)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise IasideError(
                f"the saved state {path} is damaged ({type(err).__name__}: {err}); delete it to start the run over"
            ) from err


@dataclass
class EngineStats:
    """What the run cost: images and coalition passes done here (``reused``: coalitions taken
    from the clean pass or a shared empty coalition instead), wall-clock seconds by stage."""

    images: int = 0
    passes: int = 0
    reused: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def add_time(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


class _EngineChunks(Dataset):
    """Item b is a whole chunk: its images and, for the partner fill, their partners' pixels.

    Each image is decoded once per chunk, even when it is also another image's partner (with
    the processing order, an image's partner is the next image, so usually in the same chunk).
    """

    def __init__(self, dataset: Dataset, chunks: list[list[int]], partner: np.ndarray | None) -> None:
        self.dataset, self.chunks, self.partner = dataset, chunks, partner

    def __len__(self) -> int:
        return len(self.chunks)

    def _read(self, i: int) -> ImageItem:
        try:
            return self.dataset[i]
        except IasideError as err:
            raise IasideError(f"{err}; or rerun with --on-bad-image skip to leave it out (finished images are kept)") from err

    def __getitem__(self, b: int):
        wanted = self.chunks[b]
        items: dict[int, ImageItem] = {i: self._read(i) for i in wanted}
        partners = None
        if self.partner is not None:
            for p in (int(self.partner[i]) for i in wanted):
                if p not in items:
                    items[p] = self._read(p)
            partners = torch.stack([items[int(self.partner[i])].pixels for i in wanted])
        own = [items[i] for i in wanted]
        return (
            torch.stack([it.pixels for it in own]),
            torch.tensor([it.label for it in own], dtype=torch.int64),
            torch.tensor([it.index for it in own], dtype=torch.int64),
            [it.name for it in own],
            partners,
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


class _Logits(nn.Module):
    """The model under the run's autocast, returning its (B, K) class scores."""

    def __init__(self, model: nn.Module, device_type: str, autocast_dtype: torch.dtype | None) -> None:
        super().__init__()
        self.model, self.device_type, self.autocast_dtype = model, device_type, autocast_dtype

    def forward(self, images: torch.Tensor):
        ctx = torch.autocast(self.device_type, dtype=self.autocast_dtype) if self.autocast_dtype else nullcontext()
        with ctx:
            out = self.model(images)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if hasattr(out, "logits"):
            out = out.logits
        return out


def _freeze(module: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings are answered by the check against eager
        return torch.jit.freeze(torch.jit.trace(module.eval(), example, check_trace=False, strict=False))


class _Chunk:
    """One loader batch in flight: its prepared terms, clean-image facts and the rows being filled.

    rows: (B, K) float64 log-probabilities; a row is written to the state only when complete,
    so a stopped or killed run never leaves a half-filled row behind.
    """

    def __init__(self, names, indices, labels, top1, clean_logp, prepared, n_coalitions):
        self.names, self.indices, self.labels, self.prepared = names, indices, labels, prepared
        self.top1, self.clean_logp = top1, clean_logp
        self.rows = torch.zeros((len(names), n_coalitions), dtype=torch.float64)
        self.hits = torch.zeros((len(names), n_coalitions), dtype=torch.int8)  # top-1 == y per coalition
        self.bits: list[tuple[np.ndarray, torch.Tensor]] = []  # per image: its coalitions (K, M) bool and float
        self.remaining = np.zeros(len(names), dtype=np.int64)
        self.finished = False  # rows copied into the state


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


class Engine:
    """Streams a data set through a model for one synthesizer and fill.

    ``run(dataset)`` returns the filled ``EngineState``; pass ``state`` to resume (images
    already done are skipped) and ``indices`` to process a subset (a shard). ``coalitions``
    (K, M) bool picks the coalitions to evaluate (default: all 2**M in bit-mask order), or is
    a function of the image's data-set index returning its own (K, M) (per-image draws, the
    same K for every image); the empty coalition first and the grand coalition last let the
    engine reuse passes:
    the grand coalition is the clean image (sum synthesis), and the empty coalition is shared
    by all images (zero and mean fills, paper synthesis) or is the partner's clean image.
    """

    def __init__(
        self,
        model: nn.Module,
        synthesizer: CoalitionSynthesizer,
        fill: Fill,
        *,
        batch_size: int | str = 64,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        num_workers: int = 0,
        seed: int = 0,
        coalitions: np.ndarray | Callable[[int], np.ndarray] | None = None,
        optimize: str = "none",
        show_progress: bool = True,
        checkpoint: Callable[[EngineState], None] | None = None,
        checkpoint_every_s: float = 60.0,
        record_top1: bool = True,
    ) -> None:
        if batch_size != "auto" and (not isinstance(batch_size, int) or batch_size < 1):
            raise IasideError(f"--batch-size must be a positive integer or 'auto', got {batch_size!r}")
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.channels_last = any(isinstance(m, nn.Conv2d) for m in self.model.modules())
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if optimize not in OPTIMIZATIONS:
            raise IasideError(f"--optimize {optimize!r} is not one of {', '.join(OPTIMIZATIONS)}")
        self.optimize = optimize
        self.optimized_as = "none"  # what the model actually runs as (freeze may fall back)
        self.forward: Callable | None = None  # set on the first batch (tracing needs an input)
        self.synth, self.fill = synthesizer, fill
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.show_progress = show_progress
        self.checkpoint, self.checkpoint_every_s = checkpoint, checkpoint_every_s
        self.record_top1 = record_top1
        self.n_bands = synthesizer.n_bands
        self.coalitions_of = coalitions if callable(coalitions) else None
        self.bits_np = self._checked_bits(coalition_bits(self.n_bands) if coalitions is None
                                          else coalitions(0) if callable(coalitions) else coalitions)
        self.bits = torch.from_numpy(self.bits_np).to(self.device, torch.float32)
        self.n_coalitions = len(self.bits_np)
        self.reuse_full = synthesizer.synthesis == "sum" and bool(self.bits_np[-1].all()) and self.n_coalitions > 1
        if self.bits_np[0].any():
            self.empty_mode = None
        elif synthesizer.synthesis == "paper" or fill.name in ("zero", "mean"):
            self.empty_mode = "shared"
        elif fill.name == "partner":
            self.empty_mode = "partner"
        else:
            self.empty_mode = None
        self._empty_logits: torch.Tensor | None = None
        self._partner: np.ndarray | None = None
        self._excluded: set[int] = set()
        self._rows: torch.Tensor | None = None
        self._images_per_batch: int | None = None  # images per loader chunk (the clean pass's batch)

    def _checked_bits(self, bits) -> np.ndarray:
        bits = np.asarray(bits, dtype=bool)
        if bits.ndim != 2 or bits.shape[1] != self.n_bands:
            raise IasideError(f"coalitions must be (K, {self.n_bands}) bool, got {bits.shape}")
        return bits

    def _chunk_bits(self, indices: np.ndarray) -> list[tuple[np.ndarray, torch.Tensor]]:
        """The coalitions of each image of a chunk (by data-set index): (K, M) bool, and float32
        on the device (one transfer per chunk)."""
        if self.coalitions_of is None:
            return [(self.bits_np, self.bits)] * len(indices)
        own = []
        for index in indices:
            bits = self._checked_bits(self.coalitions_of(int(index)))
            if bits.shape != self.bits_np.shape or (bits[[0, -1]] != self.bits_np[[0, -1]]).any():
                raise IasideError(f"per-image coalitions must all be {self.bits_np.shape} with the same first and "
                                  f"last coalition; image index {index} has {bits.shape}")
            own.append(bits)
        stacked = torch.from_numpy(np.stack(own)).to(self.device, torch.float32)  # (B, K, M)
        return list(zip(own, stacked))

    # -- model -----------------------------------------------------------------------------
    def _logits(self, images: torch.Tensor, eager: bool = False) -> torch.Tensor:
        """(B, C, H, W) pixels -> (B, K) float32 logits, checked for shape. ``eager``: the model
        without --optimize (the batch-size probe, which must not compile every candidate)."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if eager:
            forward = _Logits(self.model, self.device.type, self.autocast_dtype)
        else:
            if self.forward is None:
                self.forward = self._make_forward(images)
            forward = self.forward
        out = forward(images)
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != images.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise IasideError(
                f"the model returned {shape} for a batch of {images.shape[0]} images; "
                "expected (B, K) logits — wrap it so forward returns class scores"
            )
        return out.float()

    def _fixed_sizes(self) -> tuple[int, ...]:
        """The batch shapes a compiled model runs at: the clean pass's and the model batch's."""
        sizes = [self.batch_size] if isinstance(self.batch_size, int) else []
        return tuple(sorted({*sizes, *([self._images_per_batch] if self._images_per_batch else [])}))

    def _make_forward(self, example: torch.Tensor) -> Callable:
        """The callable the run uses, built for ``self.optimize`` on the first batch."""
        eager = _Logits(self.model, self.device.type, self.autocast_dtype)
        if self.optimize == "compile":
            self.optimized_as = "compile"
            return CompiledModel(eager, sizes=self._fixed_sizes)
        if self.optimize == "none":
            return eager
        try:  # freeze: trace at 1 image, check at 3 or more in float32, then trace at the run's precision
            reference = _Logits(self.model, self.device.type, None)
            frozen = _freeze(reference, example[:1])
            check = example if len(example) >= 3 else example.repeat(3, 1, 1, 1)[:3]
            want, got = reference(check), frozen(check)
            if not isinstance(want, torch.Tensor) or not isinstance(got, torch.Tensor):
                raise IasideError(f"the model returned {type(want).__name__}, not a tensor")
            tol = 1e-3 * (1.0 + float(want.abs().max()))
            if got.shape != want.shape or not bool(((got - want).abs() <= tol).all()):
                raise IasideError("the traced model's output differs from the model's (data-dependent control flow?)")
            if self.autocast_dtype is not None:
                frozen = _freeze(eager, example[:1])
        except Exception as err:  # noqa: BLE001 - any tracing failure means: run the model as given
            if isinstance(err, RuntimeError) and _is_oom(err):
                raise
            import sys

            print(f"iaside: warning: --optimize freeze does not apply to this model ({str(err).splitlines()[0]}); "
                  "running it as given", file=sys.stderr)
            return eager
        self.optimized_as = "freeze"
        return frozen

    @staticmethod
    def _check_finite(logits: torch.Tensor, describe: Callable[[int], str]) -> None:
        """Raise naming the image and coalition of the first row with NaN/inf logits."""
        bad = ~torch.isfinite(logits).all(dim=1)
        if bool(bad.any()):
            raise IasideError(
                f"the model returned NaN/inf logits for {describe(int(torch.nonzero(bad)[0]))}; "
                "check the model and its input normalisation (try --precision fp32)"
            )

    @torch.inference_mode()
    def probe_batch_size(self, image_shape: Sequence[int], candidates: Sequence[int] | None = None) -> int:
        """The batch size with the best images/s on random pixels of ``image_shape`` (C, H, W),
        for the model as given (compiling or freezing every candidate would cost more than it saves).

        Grows through ``candidates`` until throughput drops by 10 % or memory runs out.
        """
        if candidates is None:
            candidates = (16, 32, 64, 128) if self.device.type == "cpu" else (32, 64, 128, 256, 512, 1024)
        best, best_rate = candidates[0], 0.0
        for size in candidates:
            x = torch.rand((size, *image_shape), device=self.device)
            try:
                self._logits(x, eager=True)  # warm-up
                self._sync()
                t0 = time.perf_counter()
                for _ in range(2):
                    self._logits(x, eager=True)
                self._sync()
            except RuntimeError as err:
                if not _is_oom(err):
                    raise
                break
            rate = 2 * size / (time.perf_counter() - t0)
            if rate > best_rate:
                best, best_rate = size, rate
            elif rate < 0.9 * best_rate:
                break
        return best

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # -- streaming -------------------------------------------------------------------------
    def _prepare_chunk(self, batch) -> tuple[_Chunk, list[list]]:
        """Clean pass, labels, fill and band split for one loader batch; returns the chunk and
        the coalition ranges [chunk, row, first, end] that still need the model."""
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
        y_dev = y.to(self.device)
        clean_logsoft = torch.log_softmax(clean, dim=1)
        clean_logp = clean_logsoft.gather(1, y_dev[:, None])[:, 0].double().cpu()
        fill = self.fill(x, indices, None if partners is None else partners.to(self.device))
        prepared = self.synth.prepare(x, fill)
        chunk = _Chunk(names, indices.numpy(), y_dev, top1.numpy(), clean_logp.numpy(), prepared, self.n_coalitions)
        chunk.bits = self._chunk_bits(chunk.indices)
        lo = np.zeros(len(names), dtype=np.int64)
        hi = np.full(len(names), self.n_coalitions, dtype=np.int64)
        if self.reuse_full:
            chunk.rows[:, -1] = clean_logp
            chunk.hits[:, -1] = (top1 == y).to(torch.int8)
            hi -= 1
        if self.empty_mode == "shared":
            if self._empty_logits is None:
                empty = self.synth.render(prepared.base[0], prepared.deltas[0], self.bits[:1])
                self._empty_logits = self._logits(empty)[0]
                self._check_finite(self._empty_logits[None], lambda k: "the empty coalition (shared by all images)")
            chunk.rows[:, 0] = torch.log_softmax(self._empty_logits, 0)[y_dev].double().cpu()
            chunk.hits[:, 0] = (int(self._empty_logits.argmax()) == y).to(torch.int8)
            lo += 1
        elif self.empty_mode == "partner":
            position = {int(ix): k for k, ix in enumerate(chunk.indices)}
            for j, ix in enumerate(chunk.indices):
                k = position.get(int(self._partner[ix]))
                if k is not None:  # the partner's clean image is this image's empty coalition
                    chunk.rows[j, 0] = float(clean_logsoft[k, y[j]])
                    chunk.hits[j, 0] = int(top1[k] == y[j])
                    lo[j] = 1
        chunk.remaining = hi - lo
        return chunk, [[chunk, j, int(lo[j]), int(hi[j])] for j in range(len(names)) if hi[j] > lo[j]]

    def _describe_pair(self, segments, k: int) -> str:
        """'image NAME, coalition {bands}' for row k of a model batch built from segments."""
        for c, i, s0, s1 in segments:
            if k < s1 - s0:
                bands = ",".join(str(b) for b in np.flatnonzero(c.bits[i][0][s0 + k]))
                return f"image {c.names[i]!r}, coalition {{{bands}}} (position {s0 + k})"
            k -= s1 - s0
        raise IndexError(k)

    def _run_segments(self, segments, stats: EngineStats) -> None:
        """Model passes for segments [(chunk, row, first, end)]; halves the batch on out-of-memory."""
        n = sum(s1 - s0 for _, _, s0, s1 in segments)
        rows = out = images = None
        try:
            t0 = time.perf_counter()
            rows = self._input_rows(n, segments[0][0].prepared.base[0])
            at = 0
            for c, i, s0, s1 in segments:
                out = rows[at : at + s1 - s0]
                images = self.synth.render(c.prepared.base[i], c.prepared.deltas[i], c.bits[i][1][s0:s1], out=out)
                at += s1 - s0
            channels, h, w = images.shape[1:]
            images = rows.view(n, h, w, channels).movedim(-1, 1)  # (n, C, H, W), channels-last memory
            t1 = time.perf_counter()
            logits = self._logits(images)
        except RuntimeError as err:
            if not _is_oom(err) or n == 1:
                raise
            out_of_memory = True
        else:
            out_of_memory = False
        if out_of_memory:  # outside the except block, so the failed batch's tensors are released
            rows = out = images = None
            self._rows = None  # reallocated at the smaller batch size
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self.batch_size = max(1, n // 2)
            first, second = _split_segments(segments, n // 2)
            self._run_segments(first, stats)
            self._run_segments(second, stats)
            return
        self._check_finite(logits, lambda k: self._describe_pair(segments, k))
        y = torch.cat([c.labels[i].expand(s1 - s0) for c, i, s0, s1 in segments])
        logp = torch.log_softmax(logits, dim=1).gather(1, y[:, None])[:, 0].double().cpu()
        hits = (logits.argmax(dim=1) == y).to(torch.int8).cpu() if self.record_top1 else None
        t2 = time.perf_counter()
        stats.passes += images.shape[0]
        stats.add_time("synthesis", t1 - t0)
        stats.add_time("model", t2 - t1)
        at = 0
        for c, i, s0, s1 in segments:
            c.rows[i, s0:s1] = logp[at : at + s1 - s0]
            if hits is not None:
                c.hits[i, s0:s1] = hits[at : at + s1 - s0]
            at += s1 - s0
            c.remaining[i] -= s1 - s0

    def _input_rows(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """(n, H*W*C) float32 rows of one reused model-input buffer (channels-last pixel order)."""
        size = like.numel()
        if self._rows is None or self._rows.shape[1] != size or self._rows.shape[0] < n:
            self._rows = torch.empty((max(n, self.batch_size if isinstance(self.batch_size, int) else n), size),
                                     device=self.device, dtype=torch.float32)
        return self._rows[:n]

    def _loader(self, dataset: Dataset, indices: Sequence[int], images_per_batch: int) -> DataLoader:
        """Chunks of ``images_per_batch`` images in the order of ``indices``, decoded by workers."""
        indices = [int(i) for i in indices]
        chunks = [indices[k : k + images_per_batch] for k in range(0, len(indices), images_per_batch)]
        return DataLoader(
            _EngineChunks(dataset, chunks, self._partner if self.fill.needs_partner else None),
            batch_size=None,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )

    def fit_fill(self, dataset: Dataset) -> None:
        """The fill's one pass over the whole data set (mean image, per-band energy)."""
        if not self.fill.needs_fit:
            return
        loader = self._loader(dataset, [i for i in range(len(dataset)) if i not in self._excluded], 32)
        self.fill.fit((batch[0] for batch in loader), self.synth.masks)

    @torch.inference_mode()
    def run(
        self,
        dataset: Dataset,
        state: EngineState | None = None,
        indices: Sequence[int] | None = None,
        stop: Callable[[EngineState], bool] | None = None,
        check_every: int = 10,
        exclude: Sequence[int] = (),
    ) -> tuple[EngineState, EngineStats]:
        """Evaluate every (image, coalition) not yet done, images in the order of ``indices``
        (default: ``processing_order``); returns (state, stats). ``stop(state)`` is asked every
        ``check_every`` finished images; when it says True the run ends early. ``exclude``:
        images left out (unreadable); nobody is paired with them. If anything fails, the
        finished images are checkpointed before the error propagates."""
        from tqdm.auto import tqdm

        n_images = len(dataset)
        state = state or EngineState.empty(n_images, self.n_coalitions)
        state.clear_unfinished()
        state.skipped[list(exclude)] = 1
        wanted = processing_order(n_images, self.seed) if indices is None else indices
        todo = [int(i) for i in wanted if state.done[int(i)] == 0 and state.skipped[int(i)] == 0]
        stats = EngineStats()
        t_start = time.perf_counter()
        compiled_before = self.forward.compile_s if isinstance(self.forward, CompiledModel) else 0.0
        self._excluded = set(np.flatnonzero(state.skipped).tolist())
        if self.fill.needs_partner:
            self._partner = partner_index(n_images, self.seed, sorted(self._excluded))
        self.fit_fill(dataset)
        stats.add_time("fill_fit", time.perf_counter() - t_start)
        if not todo:
            stats.seconds["total"] = time.perf_counter() - t_start
            return state, stats
        if self.batch_size == "auto":
            t0 = time.perf_counter()
            self.batch_size = self.probe_batch_size(tuple(dataset[todo[0]].pixels.shape))
            stats.add_time("batch_probe", time.perf_counter() - t0)
        images_per_batch = max(-(-self.batch_size // self.n_coalitions), 4 if self.empty_mode == "partner" else 1)
        self._images_per_batch = images_per_batch
        bar = tqdm(total=len(todo), unit="img", disable=not self.show_progress, desc="I-ASIDE", dynamic_ncols=True)
        last_ckpt = time.perf_counter()
        since_check = 0
        pending: deque = deque()
        n_pending = 0

        def finish(chunk: _Chunk) -> None:
            nonlocal last_ckpt, since_check
            chunk.finished = True
            idx = chunk.indices
            state.logp_nats[idx] = chunk.rows.numpy()
            state.label[idx] = chunk.labels.cpu().numpy()
            state.clean_top1[idx] = chunk.top1
            state.clean_logp_nats[idx] = chunk.clean_logp
            if self.record_top1:
                state.top1_hit[idx] = chunk.hits.numpy()
                state.top1_recorded[idx] = 1
            state.done[idx] = 1
            stats.images += len(idx)
            since_check += len(idx)
            bar.update(len(idx))
            bar.set_postfix(passes_per_s=f"{stats.passes / max(time.perf_counter() - t_start, 1e-9):.0f}")
            if self.checkpoint is not None and time.perf_counter() - last_ckpt >= self.checkpoint_every_s:
                self.checkpoint(state)
                last_ckpt = time.perf_counter()

        def flush(size: int) -> int:
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
            self._run_segments(segments, stats)
            for chunk in {id(c): c for c, _, _, _ in segments}.values():
                if not chunk.remaining.any() and not chunk.finished:
                    finish(chunk)
            return taken

        t_load = time.perf_counter()
        batches = iter(self._loader(dataset, todo, images_per_batch))
        try:
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except IasideError:  # an unreadable image: finish what is loaded, then report it
                    while n_pending > 0:
                        n_pending -= flush(self.batch_size)
                    raise
                t_prep = time.perf_counter()
                stats.add_time("load", t_prep - t_load)
                chunk, segments = self._prepare_chunk(batch)
                stats.reused += len(chunk.names) * self.n_coalitions - int(chunk.remaining.sum())
                stats.add_time("prepare", time.perf_counter() - t_prep)
                if not segments:
                    finish(chunk)
                pending.extend(segments)
                n_pending += sum(s1 - s0 for _, _, s0, s1 in segments)
                while n_pending >= self.batch_size:
                    n_pending -= flush(self.batch_size)
                if stop is not None and since_check >= check_every:
                    since_check = 0
                    if stop(state):
                        pending.clear()
                        n_pending = 0
                        break
                t_load = time.perf_counter()
            while n_pending > 0:
                n_pending -= flush(self.batch_size)
        except BaseException:
            if self.checkpoint is not None and stats.images:
                try:
                    self.checkpoint(state)  # keep every finished image before the error propagates
                except Exception:  # noqa: BLE001 - the original error is the one to report
                    pass
            raise
        finally:
            bar.close()
        if isinstance(self.forward, CompiledModel):  # included in the prepare and model stages
            stats.seconds["compile"] = self.forward.compile_s - compiled_before
        stats.seconds["total"] = time.perf_counter() - t_start
        return state, stats


def _split_segments(segments, n_first: int):
    """Split a segment list after ``n_first`` pairs (cutting one segment if needed)."""
    first, second, taken = [], [], 0
    for c, i, s0, s1 in segments:
        if taken >= n_first:
            second.append((c, i, s0, s1))
        elif taken + (s1 - s0) <= n_first:
            first.append((c, i, s0, s1))
        else:
            cut = s0 + n_first - taken
            first.append((c, i, s0, cut))
            second.append((c, i, cut, s1))
        taken += s1 - s0
    return first, second
