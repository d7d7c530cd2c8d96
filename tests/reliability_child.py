"""A child process for the reliability tests (tests/test_reliability.py, test_hostile.py).

    python tests/reliability_child.py explain '{"model": ..., "data": ..., "out": ..., ...}'
    python tests/reliability_child.py cli run --model ... --data ... --out ...

``explain``: ``iaside.explain(**the JSON object)``. ``cli``: ``iaside.cli.main(ARGS)``.
``IASIDE_TEST_THROTTLE_S``: sleep this long before every model batch, so that a run lasts
long enough to be killed half-way (the sleep changes no number and no part of the run's
identity). ``IASIDE_TEST_PEAK_RSS_FILE``: write this process's peak resident memory in KiB
there on exit (VmHWM: counts from the exec, unlike ru_maxrss, which on Linux starts from the
parent's high-water mark when the child is forked from a large parent).

For the concurrency tests (tests/measure_concurrency.py), none of which changes a number:
``IASIDE_TEST_BARRIER=DIR|N|POINT``: wait at POINT until N processes sharing DIR have arrived
at their own points (or exited), so that two processes meet at the dangerous step. POINT is
``lock`` (about to take the folder's lock), ``opened`` (owns the folder, run.json checked),
``checkpoint`` (the first checkpoint is saved: mid-run) or ``save`` (about to write result.json).
``IASIDE_TEST_NO_LOCK=1``: run without the folder lock (to show what it prevents). Both also
work on a version of the tool from before run-folder locks (tests/measure_concurrency.py --before).
``IASIDE_TEST_CHECKPOINT_S``: checkpoint this often (``explain``'s default is 30 s).
"""

import atexit
import contextlib
import json
import os
import sys
import time
from pathlib import Path


def _write_peak_rss(path: str) -> None:
    with open("/proc/self/status") as status:
        peak_kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(path, "w") as fh:
        fh.write(peak_kib)


def _rendezvous(folder: Path, n: int) -> None:
    """Arrive, then wait (1 ms polls, 120 s hang guard) until n processes arrived or exited."""
    (folder / f"arrive-{os.getpid()}").touch()
    give_up = time.monotonic() + 120
    while time.monotonic() < give_up:
        pids = {p.name.split("-", 1)[1] for p in folder.iterdir() if p.name.startswith(("arrive-", "exit-"))}
        if len(pids) >= n:
            return
        time.sleep(0.001)


def _install_barrier(spec: str) -> None:
    import iaside.merge
    from iaside.engine import EngineState
    from iaside.result import Result

    try:
        import iaside.runs
    except ImportError:  # a version before run-folder locks
        iaside.runs = type(sys)("iaside.runs")
    where, n, point = spec.split("|")
    folder, n = Path(where), int(n)
    atexit.register(lambda: (folder / f"exit-{os.getpid()}").touch())
    met = []

    def meet():
        if not met:
            met.append(True)
            _rendezvous(folder, n)

    def before(function):
        def wrapped(*args, **kwargs):
            meet()
            return function(*args, **kwargs)

        return wrapped

    def after(function):
        def wrapped(*args, **kwargs):
            out = function(*args, **kwargs)
            meet()
            return out

        return wrapped

    if point in ("lock", "opened") and not hasattr(iaside.runs, "owner"):  # a version before locks (--before)
        import iaside.api

        wrap = before if point == "lock" else after
        iaside.api._open_run_folder = wrap(iaside.api._open_run_folder)
        iaside.merge.merge_runs = before(iaside.merge.merge_runs)
    elif point == "lock":
        iaside.runs._lock_file = before(iaside.runs._lock_file)
    elif point == "opened":
        iaside.runs.claim = after(iaside.runs.claim)
        iaside.merge.claim = after(iaside.merge.claim)
    elif point == "checkpoint":
        EngineState.save = after(EngineState.save)
    elif point == "save":
        Result.save = before(Result.save)
    else:
        raise SystemExit(f"unknown barrier point {point!r}")


def _no_lock() -> None:
    import iaside.merge
    import iaside.result
    import iaside.runs

    @contextlib.contextmanager
    def owner(folder, shard=None):
        Path(folder).mkdir(parents=True, exist_ok=True)
        yield Path(folder)

    iaside.runs.owner = iaside.result.owner = iaside.merge.owner = owner


def main() -> int:
    if os.environ.get("IASIDE_TEST_BARRIER"):
        _install_barrier(os.environ["IASIDE_TEST_BARRIER"])
    if os.environ.get("IASIDE_TEST_NO_LOCK") == "1":
        _no_lock()
    if os.environ.get("IASIDE_TEST_CHECKPOINT_S"):
        import dataclasses

        import iaside.options

        @dataclasses.dataclass(frozen=True)
        class FrequentCheckpoints(iaside.options.RunOptions):
            checkpoint_every_s: float = float(os.environ["IASIDE_TEST_CHECKPOINT_S"])

        iaside.options.RunOptions = FrequentCheckpoints  # the default of every run in this process
    peak_file = os.environ.get("IASIDE_TEST_PEAK_RSS_FILE")
    if peak_file:
        atexit.register(_write_peak_rss, peak_file)
    throttle_s = float(os.environ.get("IASIDE_TEST_THROTTLE_S", "0"))
    if throttle_s > 0:
        from iaside.engine import ModelRunner

        logits = ModelRunner.logits

        def slow_logits(self, images, eager=False):
            time.sleep(throttle_s)
            return logits(self, images, eager)

        ModelRunner.logits = slow_logits
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "cli":
        from iaside.cli import main as cli

        return cli(args)
    import iaside

    kwargs = json.loads(args[0])
    iaside.explain(kwargs.pop("model"), kwargs.pop("data"), **kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
