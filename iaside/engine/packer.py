"""Packing (image, coalition) pairs into model batches of exactly ``batch_size``, across image
boundaries. A segment is ``[chunk, row, first, end]``: coalitions first..end−1 of image ``row``
of a prepared chunk."""

from __future__ import annotations

from collections import deque

import numpy as np
import torch


class Chunk:
    """One loader batch in flight: its prepared terms, clean-image facts and the rows being filled.

    records: {recorder name: (B, K, *shape)} the recorders' values per image and coalition; a
    row is handed on only when complete, so a stopped or killed run never leaves a half-filled
    row behind.
    """

    def __init__(self, names, indices, labels, top1, clean_logp, prepared, n_coalitions):
        self.names, self.indices, self.labels, self.prepared = names, indices, labels, prepared
        self.top1, self.clean_logp = top1, clean_logp
        self.n_coalitions = n_coalitions
        self.records: dict[str, torch.Tensor] = {}
        self.bits: list[tuple[np.ndarray, torch.Tensor]] = []  # per image: its coalitions (K, M) bool and float
        self.remaining = np.zeros(len(names), dtype=np.int64)
        self.finished = False  # rows handed to the recorders

    def allocate(self, recorders, n_classes: int) -> None:
        """Zeroed (B, K, *shape) rows for each recorder, once the model's class count is known."""
        size = (len(self.names), self.n_coalitions)
        self.records = {r.name: torch.zeros(size + r.shape(n_classes), dtype=r.dtype) for r in recorders}


class Packer:
    """A queue of segments still to evaluate; ``take(size)`` cuts the next model batch."""

    def __init__(self) -> None:
        self.pending: deque = deque()
        self.n_pending = 0  # pairs queued

    def add(self, segments: list[list]) -> None:
        self.pending.extend(segments)
        self.n_pending += sum(s1 - s0 for _, _, s0, s1 in segments)

    def clear(self) -> None:
        self.pending.clear()
        self.n_pending = 0

    def take(self, size: int) -> list[tuple]:
        """The next ``size`` pairs (fewer at the end) as segments, cutting one if needed."""
        segments, taken = [], 0
        while self.pending and taken < size:
            seg = self.pending[0]
            chunk, i, s0, s1 = seg
            k = min(s1 - s0, size - taken)
            segments.append((chunk, i, s0, s0 + k))
            taken += k
            if s0 + k == s1:
                self.pending.popleft()
            else:
                seg[2] = s0 + k
        self.n_pending -= taken
        return segments


def n_pairs(segments) -> int:
    return sum(s1 - s0 for _, _, s0, s1 in segments)


def split_segments(segments, n_first: int):
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


def describe_pair(segments, k: int) -> str:
    """'image NAME, coalition {bands}' for row k of a model batch built from segments."""
    for c, i, s0, s1 in segments:
        if k < s1 - s0:
            bands = ",".join(str(b) for b in np.flatnonzero(c.bits[i][0][s0 + k]))
            return f"image {c.names[i]!r}, coalition {{{bands}}} (position {s0 + k})"
        k -= s1 - s0
    raise IndexError(k)
