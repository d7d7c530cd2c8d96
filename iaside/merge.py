"""Merging shard states: the same configuration, disjoint images, added together."""
from __future__ import annotations

from pathlib import Path

from .api import RUN_JSON, STATE_NPZ, _atomic_write_json, _differences, build_result
from .engine import EngineState
from .errors import IasideError
from .report.plots import plot_sid
from .result import SID_PNG, Result
from .validate import read_run_info


def merge_runs(run_dirs: list[Path], out: Path) -> Result:
    """Sum the shard states found in ``run_dirs`` (``state-shard*.npz``, or ``state.npz``),
    refusing different configurations or overlapping images; write the result to ``out``."""
    run_info, state, sources = None, None, []
    for folder in map(Path, run_dirs):
        if not (folder / RUN_JSON).exists():
            raise IasideError(f"{folder} has no {RUN_JSON}: is it the --out folder of an 'iaside run --shard'?")
        info = read_run_info(folder / RUN_JSON)
        if run_info is None:
            run_info = info
        else:
            diff = _differences(run_info["identity"], info["identity"])
            if diff:
                raise IasideError(f"{folder} was run with a different configuration ({'; '.join(diff[:4])}); "
                                  "only shards of one configuration merge")
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
    missing = int(((state.done == 0) & (state.skipped == 0)).sum())
    if missing:
        raise IasideError(f"{missing} of {state.n_images} images are in no shard: run the missing shards first")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write_json(out / RUN_JSON, run_info)
    state.save(out / STATE_NPZ)
    result = build_result(run_info, state, {"merged_from": sources})
    result.save(out)
    plot_sid(result, out / SID_PNG)
    return result
