"""Running a sweep's models: each model's I-ASIDE run (and robustness evaluation) as a child
process, its output logged to ``OUT/models/<name>/log.txt``, its state kept in ``OUT/sweep.json``
(``SweepState``: per model status, stage, exit code, last error line, seconds, attempts)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import IasideError
from ..runs import atomic_write
from .models_file import SweepModel

SWEEP_JSON = "sweep.json"
LOG = "log.txt"


@dataclass
class SweepState:
    """``sweep.json``: per model {spec, line, status (pending|running|done|failed), stage, returncode,
    error, seconds, attempts}."""

    path: Path
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, out: Path) -> SweepState:
        path = out / SWEEP_JSON
        if not path.exists():
            return cls(path)
        try:
            return cls(path, json.loads(path.read_text()).get("models", {}))
        except ValueError as err:
            raise IasideError(
                f"{path} is damaged ({err}); delete it to start the sweep's bookkeeping over "
                "(finished runs in models/ are kept and resumed)"
            ) from err

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"models": self.models}, indent=1))


def _tail_error(text: str) -> str:
    """The line that says what went wrong: the last 'iaside: error' line, else the last non-empty line."""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or [""])[-1][:500]


def run_logged(argv: Sequence[str], log: Path, echo: bool, timeout_s: float | None = None) -> tuple[int, str]:
    """Run ``argv``; its output goes to ``log`` (appended) and, with ``echo``, to our stderr as it
    comes (progress bars included). Returns (exit code, or −signal; the last 8 kB of output).
    After ``timeout_s`` seconds the process is killed (its code is then −9)."""
    import threading

    log.parent.mkdir(parents=True, exist_ok=True)
    tail = bytearray()
    with open(log, "ab") as fh:
        fh.write(f"\n$ {shlex.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def pump() -> None:
            assert proc.stdout is not None
            while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]
                fh.write(chunk)
                tail.extend(chunk)
                del tail[:-8192]
                if echo:
                    sys.stderr.buffer.write(chunk)
                    sys.stderr.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
            tail.extend(f"\niaside sweep: error: stopped after the --timeout of {timeout_s:g} s\n".encode())
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        reader.join()
    return code, bytes(tail).decode(errors="replace")


def _done_files(folder: Path, robustness: bool) -> bool:
    return (folder / "result.json").exists() and (not robustness or (folder / "robustness.json").exists())


def run_sweep(
    models: Sequence[SweepModel],
    data: str,
    out: str | os.PathLike,
    *,
    run_options: Sequence[str] = (),
    robustness_options: Sequence[str] | None = None,
    retry_failed: bool = False,
    timeout_s: float | None = None,
    echo: bool = True,
    say: Callable[[str], None] = print,
    python: str = sys.executable,
) -> SweepState:
    """Run every model not yet done; returns the sweep's state (also in ``out/sweep.json``).

    run_options: ``iaside run`` options for every model (a line's own options come after them,
    so they win); robustness_options: None for no robustness evaluation, else the ``iaside
    robustness`` options for every model.
    """
    out = Path(out)
    state = SweepState.load(out)
    robust = robustness_options is not None
    n = len(models)
    for k, model in enumerate(models, 1):
        folder = out / "models" / model.name
        entry = state.models.get(model.name, {})
        same = entry.get("line") == model.line
        head = f"[{k}/{n}] {model.name}"
        if same and entry.get("status") == "done" and _done_files(folder, robust):
            say(f"{head}: done earlier, skipped")
            continue
        if same and entry.get("status") == "failed" and not retry_failed:
            say(f"{head}: failed earlier ({entry.get('error')}), skipped; --retry-failed runs it again")
            continue
        entry = {
            "spec": model.spec,
            "line": model.line,
            "folder": str(folder.relative_to(out)),
            "attempts": (entry.get("attempts", 0) if same else 0) + 1,
            "status": "running",
        }
        resumed = (folder / "state.npz").exists()
        rerun = not (folder / "result.json").exists() or not same
        stages = _stages(model, data, folder, python, run_options if rerun else None, robustness_options)
        t0 = time.perf_counter()
        for stage, argv in stages:
            entry["stage"] = stage
            state.models[model.name] = entry
            state.save()
            say(
                f"{head}: {'resuming' if stage == 'iaside' and resumed else 'running'} "
                f"{'I-ASIDE' if stage == 'iaside' else 'the robustness evaluation'} ({model.spec})"
            )
            code, tail = run_logged(argv, folder / LOG, echo, timeout_s)
            if code != 0:
                how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                entry.update(status="failed", returncode=code, error=f"{stage}: {how}: {_tail_error(tail)}")
                break
        else:
            entry.update(status="done", returncode=0, error=None)
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        entry.pop("stage", None)
        state.models[model.name] = entry
        state.save()
        say(f"{head}: {entry['status']}" + (f" — {entry['error']} (log: {folder / LOG})" if entry["error"] else ""))
    return state


def _stages(
    model: SweepModel,
    data: str,
    folder: Path,
    python: str,
    run_options: Sequence[str] | None,
    robustness_options: Sequence[str] | None,
) -> list[tuple[str, list[str]]]:
    """What is left to run for ``model``, (stage, argv) each: its I-ASIDE run (unless
    ``run_options`` is None: its result stands), then its robustness evaluation (unless
    ``robustness_options`` is None or robustness.json is already there)."""

    def command(name: str, options: Sequence[str]) -> list[str]:
        return [python, "-m", "iaside", name, "--model", model.spec, "--data", data, *options, "--out", str(folder)]

    stages = []
    if run_options is not None:
        stages.append(("iaside", command("run", [*run_options, *model.options])))
    if robustness_options is not None and not (folder / "robustness.json").exists():
        stages.append(("robustness", command("robustness", [*robustness_options, *model.robustness_options()])))
    return stages
