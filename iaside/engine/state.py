"""What a run has computed so far (``EngineState``) and what it cost (``EngineStats``).

Each field of the state declares how two states over disjoint images combine ("sum" or
"max"); shard merge, torchrun's all-reduce and resume all read that declaration.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import IasideError

MERGES = ("sum", "max")


def _per_image(merge: str = "sum"):
    """A per-image array of the state, combined between states by ``merge`` ("sum": rows of
    images a state has not finished are zero; "max": every state knows the same value)."""
    assert merge in MERGES
    return field(metadata={"merge": merge})


@dataclass
class EngineState:
    """Per-image results of a run. Merges by addition: rows of unfinished images are zero.

    logp_nats: (N, K) float64, log p(y | x_S) for the K evaluated coalitions (all 2**M in
    bit-mask order for the exact estimator);
    done: (N,) int64, 1 where the image's row is complete; skipped: (N,) int64, 1 for images
    left out as unreadable (known to every shard, so it merges by maximum); label: (N,) int64,
    the class scored (ground truth, or the clean top-1 for predicted labels); clean_top1: (N,)
    int64; clean_logp_nats: (N,) float64, log p(y | x) of the unmodified image;
    top1_hit: (N, K) int8, 1 where the model's arg-max on the coalition image is y;
    top1_recorded: (N,) int64, 1 where the image's top1_hit row was recorded (0 for images
    finished by a version without the record, or by an engine with ``record_top1=False``).
    """

    logp_nats: np.ndarray = _per_image()
    done: np.ndarray = _per_image()
    skipped: np.ndarray = _per_image("max")
    label: np.ndarray = _per_image()
    clean_top1: np.ndarray = _per_image()
    clean_logp_nats: np.ndarray = _per_image()
    top1_hit: np.ndarray = _per_image()
    top1_recorded: np.ndarray = _per_image()

    @classmethod
    def merge_rules(cls) -> dict[str, str]:
        """How each field combines between states: {field name: "sum" | "max"}."""
        return {f.name: f.metadata["merge"] for f in fields(cls)}

    @classmethod
    def empty(cls, n_images: int, n_coalitions: int) -> EngineState:
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
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def merge(self, other: EngineState) -> EngineState:
        """The combination of two states over the same data set; refuses overlapping images."""
        if other.logp_nats.shape != self.logp_nats.shape:
            raise IasideError(
                f"cannot merge states of shape {self.logp_nats.shape} and {other.logp_nats.shape}: "
                "they come from different data sets or band counts"
            )
        both = np.flatnonzero((self.done > 0) & (other.done > 0))
        if both.size:
            raise IasideError(f"cannot merge: {both.size} images are in both states (first: index {both[0]})")
        combine = {"sum": np.add, "max": np.maximum}
        theirs = other.arrays()
        return EngineState(**{k: combine[rule](getattr(self, k), theirs[k]) for k, rule in self.merge_rules().items()})

    def clear_unfinished(self) -> None:
        """Zero the summed rows of images that are not done (they will be recomputed)."""
        todo = self.done == 0
        for key, rule in self.merge_rules().items():
            if rule == "sum":
                getattr(self, key)[todo] = 0

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (``runs.atomic_write``: a unique temporary file, fsync, rename)."""
        from ..runs import atomic_write

        atomic_write(path, lambda fh: np.savez(fh, **self.arrays()))  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | os.PathLike) -> EngineState:
        from ..validate import check_state_arrays

        if not os.path.isfile(path):
            raise IasideError(f"the saved state {path} is not a regular file; delete it to start the run over")
        names = {f.name for f in fields(cls)}
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k].copy() for k in z.files if k in names}
            check_state_arrays(arrays, os.fspath(path))
            arrays.setdefault("skipped", np.zeros_like(arrays["done"]))  # states saved before skips existed
            arrays.setdefault("top1_hit", np.zeros(arrays["logp_nats"].shape, np.int8))  # ... before the top-1 record
            arrays.setdefault("top1_recorded", np.zeros_like(arrays["done"]))
            return cls(**arrays)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as err:
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
