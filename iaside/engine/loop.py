"""The one streaming loop: images → bands → coalition images → model → what the recorder keeps.

Every image is evaluated on its K coalitions with the same fill (common random numbers).
The loop prepares each loader chunk (clean pass, fill, band split), queues its (image,
coalition) pairs in the packer, runs full model batches through the runner, and writes each
image's row into the ``EngineState`` once it is complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..coalitions import CoalitionSynthesizer
from ..data.base import PREDICTED
from ..errors import IasideError
from ..fills import Fill, partner_index, processing_order
from ..game import coalition_bits
from ..models.outputs import warn_if_probabilities
from .loading import chunk_loader
from .packer import Chunk, Packer, describe_pair, n_pairs, split_segments
from .progress import Progress
from .recorders import LogProbRecorder, Recorder, Top1HitRecorder
from .runner import ModelRunner, is_oom
from .state import EngineState, EngineStats


class Engine:
    """Streams a data set through a model for one synthesizer and fill.

    ``run(dataset)`` returns the filled ``EngineState``; pass ``state`` to resume (images
    already done are skipped) and ``indices`` to process a subset (a shard). ``coalitions``
    (K, M) bool picks the coalitions to evaluate (default: all 2**M in bit-mask order), or is
    a function of the image's data-set index returning its own (K, M) (per-image draws, the
    same K for every image); the empty coalition first and the grand coalition last let the
    engine reuse passes: the grand coalition is the clean image (sum synthesis), and the empty
    coalition is shared by all images or is the partner's clean image, as the fill declares
    (``Fill.reuse_empty``; the paper synthesis's empty coalition is all zeros, so shared).
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
        compile_cache=None,
        record_top1: bool = True,
        recorders: Sequence[Recorder] = (),
    ) -> None:
        if batch_size != "auto" and (not isinstance(batch_size, int) or batch_size < 1):
            raise IasideError(f"--batch-size must be a positive integer or 'auto', got {batch_size!r}")
        self.runner = ModelRunner(
            model, device=device, precision=precision, optimize=optimize, compile_cache=compile_cache
        )
        self.device = self.runner.device
        self.synth, self.fill = synthesizer, fill
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        # what each pass keeps: log p(y) always; whether the arg-max is y (no extra pass); the views' own
        self.recorders: list[Recorder] = [LogProbRecorder(), *([Top1HitRecorder()] if record_top1 else []), *recorders]
        self.show_progress = show_progress
        self.checkpoint, self.checkpoint_every_s = checkpoint, checkpoint_every_s
        self.n_bands = synthesizer.n_bands
        self.coalitions_of = coalitions if callable(coalitions) else None
        self.bits_np = self._checked_bits(
            coalition_bits(self.n_bands)
            if coalitions is None
            else coalitions(0)
            if callable(coalitions)
            else coalitions
        )
        self.bits = torch.from_numpy(self.bits_np).to(self.device, torch.float32)
        self.n_coalitions = len(self.bits_np)
        self.reuse_full = synthesizer.synthesis == "sum" and bool(self.bits_np[-1].all()) and self.n_coalitions > 1
        if self.bits_np[0].any():
            self.empty_mode = None
        elif synthesizer.synthesis == "paper":  # the paper's empty coalition is all zeros
            self.empty_mode = "shared"
        else:
            self.empty_mode = fill.reuse_empty
        self._empty_logits: torch.Tensor | None = None
        self._outputs_checked = False
        self._partner: np.ndarray | None = None
        self._excluded: set[int] = set()
        self._rows: torch.Tensor | None = None

    # what the model runs as, for callers and tests
    @property
    def forward(self) -> Callable | None:
        return self.runner.forward

    @property
    def optimized_as(self) -> str:
        return self.runner.optimized_as

    @property
    def precision(self) -> str:
        """The precision the model runs at ('auto' resolved)."""
        return self.runner.precision

    def compile_info(self) -> dict | None:
        return self.runner.compile_info()

    def probe_batch_size(self, image_shape: Sequence[int], candidates: Sequence[int] | None = None) -> int:
        return self.runner.probe_batch_size(image_shape, candidates)

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
                raise IasideError(
                    f"per-image coalitions must all be {self.bits_np.shape} with the same first and "
                    f"last coalition; image index {index} has {bits.shape}"
                )
            own.append(bits)
        stacked = torch.from_numpy(np.stack(own)).to(self.device, torch.float32)  # (B, K, M)
        return list(zip(own, stacked))

    # -- one chunk ---------------------------------------------------------------------------
    def _prepare_chunk(self, batch) -> tuple[Chunk, list[list]]:
        """Clean pass, labels, fill and band split for one loader batch; returns the chunk and
        the coalition ranges [chunk, row, first, end] that still need the model."""
        pixels, labels, indices, names, partners = batch
        x = pixels.to(self.device, non_blocking=True)
        clean = self.runner.logits(x)
        self.runner.check_finite(clean, lambda k: f"image {names[k]!r} (the clean image)")
        if not self._outputs_checked:
            self._outputs_checked = True
            warn_if_probabilities(clean)
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
        clean_logp = torch.log_softmax(clean, dim=1).gather(1, y_dev[:, None])[:, 0].double().cpu()
        fill = self.fill(x, indices, None if partners is None else partners.to(self.device))
        prepared = self.synth.prepare(x, fill)
        chunk = Chunk(names, indices.numpy(), y_dev, top1.numpy(), clean_logp.numpy(), prepared, self.n_coalitions)
        chunk.allocate(self.recorders, n_classes)
        chunk.bits = self._chunk_bits(chunk.indices)
        lo = np.zeros(len(names), dtype=np.int64)
        hi = np.full(len(names), self.n_coalitions, dtype=np.int64)
        everyone = np.arange(len(names))
        if self.reuse_full:  # the grand coalition is the clean image
            self._keep(chunk, everyone, -1, clean, y_dev)
            hi -= 1
        if self.empty_mode == "shared":
            if self._empty_logits is None:
                empty = self.synth.render(prepared.base[0], prepared.deltas[0], self.bits[:1])
                self._empty_logits = self.runner.logits(empty)[0]
                self.runner.check_finite(
                    self._empty_logits[None], lambda k: "the empty coalition (shared by all images)"
                )
            self._keep(chunk, everyone, 0, self._empty_logits.expand(len(names), -1), y_dev)
            lo += 1
        elif self.empty_mode == "partner":
            assert self._partner is not None  # the partner fill's pairing, made in _start
            position = {int(ix): k for k, ix in enumerate(chunk.indices)}
            pairs = [
                (j, position[int(self._partner[ix])])
                for j, ix in enumerate(chunk.indices)
                if int(self._partner[ix]) in position
            ]
            if pairs:  # the partner's clean image is this image's empty coalition
                rows, partners_at = (np.array(v) for v in zip(*pairs))
                self._keep(chunk, rows, 0, clean[partners_at], y_dev[rows])
                lo[rows] = 1
        chunk.remaining = hi - lo
        return chunk, [[chunk, j, int(lo[j]), int(hi[j])] for j in range(len(names)) if hi[j] > lo[j]]

    def _keep(self, chunk: Chunk, rows: np.ndarray, column: int, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Every recorder's value for passes already made: image ``rows`` of the chunk, coalition
        ``column``, from their logits (len(rows), C) and classes y (len(rows),)."""
        for recorder in self.recorders:
            chunk.records[recorder.name][rows, column] = recorder(logits, y)

    # -- one model batch ---------------------------------------------------------------------
    def _run_segments(self, segments, stats: EngineStats) -> None:
        """Model passes for segments [(chunk, row, first, end)]; halves the batch on out-of-memory."""
        n = n_pairs(segments)
        rows = out = images = None
        try:
            t0 = time.perf_counter()
            rows = self._input_rows(n, segments[0][0].prepared.base[0])
            at = 0
            for c, i, s0, s1 in segments:
                out = rows[at : at + s1 - s0]
                images = self.synth.render(c.prepared.base[i], c.prepared.deltas[i], c.bits[i][1][s0:s1], out=out)
                at += s1 - s0
            assert images is not None  # segments is never empty
            channels, h, w = images.shape[1:]
            images = rows.view(n, h, w, channels).movedim(-1, 1)  # (n, C, H, W), channels-last memory
            t1 = time.perf_counter()
            logits = self.runner.logits(images)
        except RuntimeError as err:
            if not is_oom(err) or n == 1:
                raise
            out_of_memory = True
        else:
            out_of_memory = False
        if out_of_memory:  # outside the except block, so the failed batch's tensors are released
            rows = out = images = None
            self._rows = None  # reallocated at the smaller batch size
            self.runner.release_memory()
            self.batch_size = self.runner.plan.batch = max(1, n // 2)
            first, second = split_segments(segments, n // 2)
            self._run_segments(first, stats)
            self._run_segments(second, stats)
            return
        self.runner.check_finite(logits, lambda k: describe_pair(segments, k))
        y = torch.cat([c.labels[i].expand(s1 - s0) for c, i, s0, s1 in segments])
        kept = {recorder.name: recorder(logits, y) for recorder in self.recorders}
        t2 = time.perf_counter()
        assert images is not None
        stats.passes += images.shape[0]
        stats.add_time("synthesis", t1 - t0)
        stats.add_time("model", t2 - t1)
        at = 0
        for c, i, s0, s1 in segments:
            for name, values in kept.items():
                c.records[name][i, s0:s1] = values[at : at + s1 - s0]
            at += s1 - s0
            c.remaining[i] -= s1 - s0

    def _input_rows(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """(n, H*W*C) float32 rows of one reused model-input buffer (channels-last pixel order)."""
        size = like.numel()
        if self._rows is None or self._rows.shape[1] != size or self._rows.shape[0] < n:
            self._rows = torch.empty(
                (max(n, self.batch_size if isinstance(self.batch_size, int) else n), size),
                device=self.device,
                dtype=torch.float32,
            )
        return self._rows[:n]

    # -- the run -----------------------------------------------------------------------------
    def _loader(self, dataset: Dataset, indices: Sequence[int], images_per_chunk: int):
        return chunk_loader(
            dataset,
            indices,
            images_per_chunk,
            self._partner if self.fill.needs_partner else None,
            self.num_workers,
            self.device.type == "cuda",
        )

    def fit_fill(self, dataset: Dataset) -> None:
        """The fill's one pass over the whole data set (mean image, per-band energy)."""
        if not self.fill.needs_fit:
            return
        loader = self._loader(dataset, [i for i in range(len(dataset)) if i not in self._excluded], 32)  # type: ignore[arg-type]
        self.fill.fit((batch[0] for batch in loader), self.synth.masks)

    def _start(self, dataset: Dataset, state: EngineState | None, indices, exclude) -> tuple[EngineState, list[int]]:
        """The state to fill (unfinished rows cleared, skips marked), the images still to do,
        the partner pairing and the fill's statistics."""
        n_images = len(dataset)  # type: ignore[arg-type]
        state = state or EngineState.empty(n_images, self.n_coalitions)
        state.clear_unfinished()
        state.skipped[list(exclude)] = 1
        wanted = processing_order(n_images, self.seed) if indices is None else indices
        todo = [int(i) for i in wanted if state.done[int(i)] == 0 and state.skipped[int(i)] == 0]
        self._excluded = set(np.flatnonzero(state.skipped).tolist())
        if self.fill.needs_partner:
            self._partner = partner_index(n_images, self.seed, sorted(self._excluded))
        self.fit_fill(dataset)
        return state, todo

    @torch.inference_mode()
    def run(
        self,
        dataset: Dataset,
        state: EngineState | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        stop: Callable[[EngineState], bool] | None = None,
        check_every: int = 10,
        exclude: Sequence[int] = (),
    ) -> tuple[EngineState, EngineStats]:
        """Evaluate every (image, coalition) not yet done, images in the order of ``indices``
        (default: ``processing_order``); returns (state, stats). ``stop(state)`` is asked every
        ``check_every`` finished images; when it says True the run ends early. ``exclude``:
        images left out (unreadable); nobody is paired with them. If anything fails, the
        finished images are checkpointed before the error propagates."""
        stats = EngineStats()
        t_start = time.perf_counter()
        compiled_before, loaded_before = self.runner.compile_s, self.runner.load_s
        state, todo = self._start(dataset, state, indices, exclude)
        stats.add_time("fill_fit", time.perf_counter() - t_start)
        if todo:
            images_per_batch = self._plan_batches(dataset, todo, stats)
            progress = Progress(self, state, stats, len(todo))
            try:
                self._stream(self._loader(dataset, todo, images_per_batch), progress, stop, check_every)
            except BaseException:
                progress.save_finished()
                raise
            finally:
                progress.bar.close()
        if self.runner.optimized_as == "compile":  # included in the prepare and model stages
            stats.seconds["compile"] = self.runner.compile_s - compiled_before
            if self.runner.cache_used():
                stats.seconds["compile_cache_load"] = self.runner.load_s - loaded_before
        stats.seconds["total"] = time.perf_counter() - t_start
        return state, stats

    def _plan_batches(self, dataset: Dataset, todo: list[int], stats: EngineStats) -> int:
        """Settle the batch size ('auto': probed on the first image) and tell the runner the
        run's shape; returns the images per loader chunk."""
        if self.batch_size == "auto":
            t0 = time.perf_counter()
            self.batch_size = self.runner.probe_batch_size(tuple(dataset[todo[0]].pixels.shape))
            stats.add_time("batch_probe", time.perf_counter() - t0)
        assert isinstance(self.batch_size, int)
        images_per_batch = max(-(-self.batch_size // self.n_coalitions), 4 if self.empty_mode == "partner" else 1)
        self.runner.plan.clean, self.runner.plan.passes_left = images_per_batch, len(todo) * self.n_coalitions
        self.runner.plan.batch = self.batch_size
        return images_per_batch

    def _stream(self, batches, progress: Progress, stop, check_every: int) -> None:
        """Prepare each loader chunk, queue its pairs and run every full model batch; at the end
        (or when ``stop`` says so) the partial last batch."""
        packer, stats = Packer(), progress.stats
        assert isinstance(self.batch_size, int)

        def flush(size: int) -> None:
            segments = packer.take(size)
            self._run_segments(segments, stats)
            for chunk in {id(c): c for c, _, _, _ in segments}.values():
                if not chunk.remaining.any() and not chunk.finished:
                    progress.finish(chunk)

        t_load = time.perf_counter()
        batches = iter(batches)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except IasideError:  # an unreadable image: finish what is loaded, then report it
                while packer.n_pending > 0:
                    flush(self.batch_size)
                raise
            t_prep = time.perf_counter()
            stats.add_time("load", t_prep - t_load)
            chunk, segments = self._prepare_chunk(batch)
            stats.reused += len(chunk.names) * self.n_coalitions - int(chunk.remaining.sum())
            stats.add_time("prepare", time.perf_counter() - t_prep)
            if not segments:
                progress.finish(chunk)
            packer.add(segments)
            while packer.n_pending >= self.batch_size:
                flush(self.batch_size)
            if stop is not None and progress.since_check >= check_every:
                progress.since_check = 0
                if stop(progress.state):
                    packer.clear()
                    break
            t_load = time.perf_counter()
        while packer.n_pending > 0:
            flush(self.batch_size)
