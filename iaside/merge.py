"""Merging shard states: the same configuration, disjoint images, added together."""

from __future__ import annotations

import json
from pathlib import Path

from .api import build_result
from .engine import EngineState
from .errors import IasideError
from .report.plots import plot_sid
from .result import SID_PNG, Result
from .runs import RUN_JSON, STATE_NPZ, checked_write, claim, differences, owner, skips_file
from .validate import read_run_info


def merge_runs(run_dirs: list[Path], out: Path) -> Result:
    """Sum the shard states found in ``run_dirs`` (``state-shard*.npz``, or ``state.npz``),
    refusing different configurations or overlapping images; write the result to ``out``,
    as its owner (``runs.owner``), refusing a folder that holds another configuration."""
    with owner(out) as out:
        run_info, state, sources = _read_shards(run_dirs)
        claim(out, run_info)
        result = build_result(run_info, state, {"merged_from": sources, "skip_reasons": _skip_reasons(sources)})
        checked_write("the merged state", out / STATE_NPZ, lambda: state.save(out / STATE_NPZ))
        checked_write("the result", out / "result.json", lambda: result.save(out))
        checked_write("the SID plot", out / SID_PNG, lambda: plot_sid(result, out / SID_PNG))
    return result


def _skip_reasons(sources: list[str]) -> dict[str, str]:
    """{image name: why it was skipped}, from the files the shards wrote beside their states."""
    reasons: dict[str, str] = {}
    for path in map(skips_file, sources):
        if path.exists():
            try:
                reasons.update(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as err:
                raise IasideError(
                    f"{path} is damaged ({err}); delete it (skipped images then read 'unreadable')"
                ) from err
    return reasons


def _read_shards(run_dirs: list[Path]) -> tuple[dict, EngineState, list[str]]:
    """(run description, the sum of the shards' states, the state files read)."""
    run_info, state, sources = None, None, []
    for folder in map(Path, run_dirs):
        if not (folder / RUN_JSON).exists():
            raise IasideError(f"{folder} has no {RUN_JSON}: is it the --out folder of an 'iaside run --shard'?")
        info = read_run_info(folder / RUN_JSON)
        if run_info is None:
            run_info = info
        else:
            diff = differences(run_info["identity"], info["identity"])
            if diff:
                raise IasideError(
                    f"{folder} was run with a different configuration ({'; '.join(diff[:4])}); "
                    "only shards of one configuration merge"
                )
        files = sorted(folder.glob("state-shard*.npz")) or [folder / STATE_NPZ]
        for path in files:
            if not path.exists():
                raise IasideError(f"{folder} holds no saved state; run the shard first")
            part = EngineState.load(path)
            try:
                state = part if state is None else state.merge(part)
            except IasideError as err:
                raise IasideError(f"{path}: {err}") from err
            sources.append(str(path))
    if run_info is None or state is None:
        raise IasideError("no run folders to merge: pass the --out folders of the shards")
    missing = int(((state.done == 0) & (state.skipped == 0)).sum())
    if missing:
        raise IasideError(f"{missing} of {state.n_images} images are in no shard: run the missing shards first")
    return run_info, state, sources
