"""A run's finished images: into the state through the recorders, the progress bar, checkpoints."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .packer import Chunk
from .state import EngineState, EngineStats

if TYPE_CHECKING:
    from .loop import Engine


class Progress:
    """One run's finished images: writes each complete chunk into the state through the
    recorders, moves the progress bar, and checkpoints every ``checkpoint_every_s``."""

    def __init__(self, engine: Engine, state: EngineState, stats: EngineStats, n_todo: int) -> None:
        from tqdm.auto import tqdm

        self.engine, self.state, self.stats = engine, state, stats
        self.t_start = self.last_checkpoint = time.perf_counter()
        self.since_check = 0
        self.bar = tqdm(total=n_todo, unit="img", disable=not engine.show_progress, desc="I-ASIDE", dynamic_ncols=True)

    def finish(self, chunk: Chunk) -> None:
        chunk.finished = True
        idx, state = chunk.indices, self.state
        state.label[idx] = chunk.labels.cpu().numpy()
        state.clean_top1[idx] = chunk.top1
        state.clean_logp_nats[idx] = chunk.clean_logp
        for recorder in self.engine.recorders:
            recorder.finish(state, idx, chunk.records[recorder.name])
        state.done[idx] = 1
        self.stats.images += len(idx)
        self.since_check += len(idx)
        self.bar.update(len(idx))
        self.bar.set_postfix(passes_per_s=f"{self.stats.passes / max(time.perf_counter() - self.t_start, 1e-9):.0f}")
        checkpoint = self.engine.checkpoint
        if checkpoint is not None and time.perf_counter() - self.last_checkpoint >= self.engine.checkpoint_every_s:
            checkpoint(state)
            self.last_checkpoint = time.perf_counter()

    def save_finished(self) -> None:
        """Keep every finished image before an error propagates (the original error is the one
        to report, so a failing checkpoint is not)."""
        if self.engine.checkpoint is not None and self.stats.images:
            try:
                self.engine.checkpoint(self.state)
            except Exception:
                pass
