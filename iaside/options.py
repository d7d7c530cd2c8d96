"""The options of ``iaside.explain`` that are not the numbers' configuration.

``ExplainConfig`` (config.py) holds everything that decides the numbers. Beside it:
``SourceOptions`` says how to read the model and the data (weights, data configuration, head
size, output kind, a labels file), and ``RunOptions`` how the run executes (batch, device,
precision, optimisation, workers, shard, resume folder, progress). ``split_options`` sorts the
keyword options of one ``explain(...)`` call into the three, refusing unknown names.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .config import DataConfig, ExplainConfig
from .errors import IasideError

BAD_IMAGE_POLICIES = ("error", "skip")


@dataclass(frozen=True)
class SourceOptions:
    """How to read the model and the data.

    weights: a weights file for a hub model; data_config: a DataConfig, a dict of its fields or a
    JSON file of them; overrides: DataConfig fields given one by one (highest precedence);
    num_classes: the head size of a hub model's weights; outputs: 'logits' or 'probs';
    labels_file: a CSV of labels for a flat folder of images.
    """

    weights: str | None = None
    data_config: DataConfig | dict | str | Path | None = None
    overrides: dict | None = None
    num_classes: int | None = None
    outputs: str = "logits"
    labels_file: str | None = None


@dataclass(frozen=True)
class RunOptions:
    """How a run executes; none of these change the numbers (``ExplainConfig`` has those).

    batch_size: model batch (an int or 'auto', probed); device; precision: fp32 | bf16 | fp16 |
    auto; num_workers: data-loader processes; optimize: none | freeze | compile | auto; cache:
    keep compiled models in the cache folder; shard (i, n): the i-th of n blocks of the data;
    on_bad_image: 'error' or 'skip'; out: the run folder (resume, files, store); record: add
    the run to the results store; show_progress; checkpoint_every_s: seconds between saves of
    finished images (0: after every chunk); views: band interactions and band-limited curves from the same passes
    (exact plans); target_ci: stop once the score's 95 % half-width is below it.
    """

    batch_size: int | str = 64
    device: str = "cpu"
    precision: str = "fp32"
    num_workers: int = 0
    optimize: str = "none"
    cache: bool = True
    shard: tuple[int, int] | None = None
    on_bad_image: str = "error"
    out: str | Path | None = None
    record: bool = True
    show_progress: bool = True
    checkpoint_every_s: float = 30.0
    views: bool = True
    target_ci: float | None = None

    def __post_init__(self) -> None:
        if self.on_bad_image not in BAD_IMAGE_POLICIES:
            raise IasideError(f"--on-bad-image {self.on_bad_image!r} is not one of {', '.join(BAD_IMAGE_POLICIES)}")
        if not self.checkpoint_every_s >= 0:
            raise IasideError(f"checkpoint_every_s={self.checkpoint_every_s!r}: seconds between checkpoints, >= 0")
        if self.target_ci is not None and not self.target_ci > 0:
            raise IasideError(f"--target-ci {self.target_ci!r}: a half-width > 0, or leave it out")
        if self.target_ci is not None and self.shard is not None:
            raise IasideError("--target-ci needs one process over the whole data set; drop --shard/torchrun")


CONFIG_OPTIONS = ("preset", *(f.name for f in fields(ExplainConfig) if f.name not in ("preset", "synthesis")))
SOURCE_OPTIONS = tuple(f.name for f in fields(SourceOptions) if f.name != "labels_file")
RUN_OPTIONS = tuple(f.name for f in fields(RunOptions))


def split_options(
    config: ExplainConfig | None, run: RunOptions | None, options: dict[str, Any]
) -> tuple[ExplainConfig, RunOptions, SourceOptions]:
    """The configuration (``config`` with the given fields over it: see ``ExplainConfig.build``),
    the run options (``run`` with the given ones over it) and the source options of one call.

    ``labels``: 'given' or 'predicted' is the configuration's; any other string is a labels
    file. ``None`` values count as not given. Unknown names are refused with the closest."""
    known = set(CONFIG_OPTIONS) | set(SOURCE_OPTIONS) | set(RUN_OPTIONS)
    unknown = sorted(set(options) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; options are {', '.join(sorted(known))}"
        raise IasideError(f"explain() got an unknown option {unknown[0]!r}{hint}")
    given = {k: v for k, v in options.items() if v is not None}
    labels = given.pop("labels", None)
    labels_file = labels if labels not in (None, "given", "predicted") else None
    if labels is not None and labels_file is None:
        given["labels"] = labels
    settled = ExplainConfig.build(
        given.pop("preset", None), base=config, **{k: given.pop(k) for k in CONFIG_OPTIONS if k in given}
    )
    if labels_file is not None and settled.labels == "predicted":
        raise IasideError(
            f"labels={labels_file!r} is a labels file, but the configuration scores predicted labels; "
            "pass labels='given' with the file, or leave the file out"
        )
    sources = SourceOptions(labels_file=labels_file, **{k: given.pop(k) for k in SOURCE_OPTIONS if k in given})
    return settled, replace(run or RunOptions(), **given), sources
