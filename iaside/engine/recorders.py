"""What the engine keeps of each (image, coalition) pass: recorders.

A recorder turns a model batch's logits (n, C) and the scored classes y (n,) into one value per
pass, (n, *shape), on the CPU. The loop asks every recorder for every pass, the reused ones
included (the clean image as the grand coalition, a shared or partner empty coalition), holds
the values per image until its row is complete, and then hands the row (B, K, *shape) to the
recorder's ``finish``. ``LogProbRecorder`` (the game, log p(y | x_S)) always runs;
``Top1HitRecorder`` feeds the band-limited curves; ``LogSoftmaxRecorder`` keeps every class for
the per-image view. A new view's recorder is one class here.
"""

from __future__ import annotations

import numpy as np
import torch

from .state import EngineState


class Recorder:
    """One value per (image, coalition) pass. ``dtype`` and ``shape(n_classes)`` say what it is;
    ``__call__(logits (n, C), y (n,))`` computes it, (n, *shape) on the CPU; ``finish(state,
    indices (B,), rows (B, K, *shape))`` stores the rows of finished images."""

    name = ""
    dtype = torch.float64

    def shape(self, n_classes: int) -> tuple[int, ...]:
        return ()

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def finish(self, state: EngineState, indices: np.ndarray, rows: torch.Tensor) -> None:
        raise NotImplementedError


class LogProbRecorder(Recorder):
    """log p(y | x_S) in nats, float64: the game, into ``state.logp_nats``."""

    name = "logp_nats"

    def __call__(self, logits, labels):
        return torch.log_softmax(logits, dim=1).gather(1, labels[:, None])[:, 0].double().cpu()

    def finish(self, state, indices, rows):
        state.logp_nats[indices] = rows.numpy()


class Top1HitRecorder(Recorder):
    """1 where the arg-max on the coalition image is y (int8), into ``state.top1_hit``; the
    images' ``top1_recorded`` flag says the row was recorded."""

    name = "top1_hit"
    dtype = torch.int8

    def __call__(self, logits, labels):
        return (logits.argmax(dim=1) == labels).to(torch.int8).cpu()

    def finish(self, state, indices, rows):
        state.top1_hit[indices] = rows.numpy()
        state.top1_recorded[indices] = 1


class LogSoftmaxRecorder(Recorder):
    """Every class's log-probability, float32 (K × C × 4 bytes per image, held in memory):
    ``rows[data-set index]`` is (K, C) after the run. For views that need more than y (the
    per-image view's top-1 of every coalition); not stored in the run's state."""

    name = "log_softmax"
    dtype = torch.float32

    def __init__(self) -> None:
        self.rows: dict[int, np.ndarray] = {}

    def shape(self, n_classes):
        return (n_classes,)

    def __call__(self, logits, labels):
        return torch.log_softmax(logits.float(), dim=1).cpu()

    def finish(self, state, indices, rows):
        for k, index in enumerate(indices):  # a copy only when a view would keep other images' rows alive
            self.rows[int(index)] = (rows[k] if len(indices) == 1 else rows[k].clone()).numpy()
