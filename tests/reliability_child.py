"""A child process for the reliability tests (tests/test_reliability.py, test_hostile.py).

    python tests/reliability_child.py explain '{"model": ..., "data": ..., "out": ..., ...}'
    python tests/reliability_child.py cli run --model ... --data ... --out ...

``explain``: ``iaside.explain(**the JSON object)``. ``cli``: ``iaside.cli.main(ARGS)``.
``IASIDE_TEST_THROTTLE_S``: sleep this long before every model batch, so that a run lasts
long enough to be killed half-way (the sleep changes no number and no part of the run's
identity). ``IASIDE_TEST_PEAK_RSS_FILE``: write this process's peak resident memory in KiB
there on exit (VmHWM: counts from the exec, unlike ru_maxrss, which on Linux starts from the
parent's high-water mark when the child is forked from a large parent).
"""
import atexit
import json
import os
import sys
import time


def _write_peak_rss(path: str) -> None:
    with open("/proc/self/status") as status:
        peak_kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(path, "w") as fh:
        fh.write(peak_kib)


def main() -> int:
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
