"""Two processes on one ``--out``: one is refused, the folder always holds one consistent run.

    python tests/measure_concurrency.py [--repeats 20] [--no-lock-repeats 10]

Each repetition starts two real ``iaside`` processes (``tests/reliability_child.py``) on one
fresh folder and makes them meet at the dangerous step with a file barrier
(``IASIDE_TEST_BARRIER``): both about to take the folder (a race), or one mid-run (after its
first checkpoint) / mid-merge (owning the folder, about to write) / about to write
result.json while the other starts. Cases:

- run + run, different configurations (seed 0 and seed 1) on a new folder;
- run + merge (a seed-0 run, and a merge of two seed-1 shards into the same folder);
- run + run, the same configuration (both would save result.json at once).

Then the folder is checked: exactly one process exited 0 and the other 2 with one line naming
the winner's PID; run.json, state.npz, result.json and per_image.npz all belong to the
winner's configuration and equal, bit for bit, what that configuration gives alone; no
temporary or lock file is left. ``--no-lock-repeats`` runs the first and last case again
with the lock switched off in the children (``IASIDE_TEST_NO_LOCK``), to show what the lock
prevents. Prints one markdown table (docs/reliability.md). The tiny TorchScript CNN of the
tests, 12 images of 32×32, M = 4, 3 ms per model batch (``IASIDE_TEST_THROTTLE_S``) so that
a run lasts long enough to be met mid-run.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this checkout's iaside, whatever is installed
CHILD = HERE / "reliability_child.py"
RUN_FILES = {"run.json", "state.npz", "result.json", "per_image.npz", "sid.png"}
SYNCS = {  # case -> [(point of process A, point of process B)], cycled over the repetitions
    "run+run, different configurations": [("lock", "lock"), ("checkpoint", "lock"), ("lock", "checkpoint")],
    "run+merge": [("lock", "lock"), ("checkpoint", "lock"), ("lock", "opened")],
    "run+run, same configuration (save+save)": [("lock", "lock"), ("save", "lock"), ("lock", "save")],
}


def setup(root: Path) -> dict:
    """The tiny model, 12 images, the two configurations' reference folders and seed-1 shards
    (made in this process, one intra-op thread as in the children)."""
    import torch

    from conftest import tiny_cnn, write_image_folder
    from iaside.cli import main as cli

    root.mkdir(parents=True, exist_ok=True)
    model = root / "tiny.pt"
    torch.jit.script(tiny_cnn(n_classes=3)).save(str(model))
    data = write_image_folder(root / "imgs", 12, seed=3)
    base = ["--model", f"torchscript:{model}", "--data", str(data), "--input-size", "32", "--resize-size", "32",
            "--bands", "4", "--bootstrap", "50", "--batch-size", "8", "--quiet"]
    world = {"root": root, "run": {s: ["run", *base, "--seed", str(s)] for s in (0, 1)}}
    world["merge"] = ["merge", str(root / "shard0"), str(root / "shard1")]
    threads, store = torch.get_num_threads(), os.environ.get("IASIDE_STORE")
    torch.set_num_threads(1)
    os.environ["IASIDE_STORE"] = "off"
    try:
        for argv in ([*world["run"][0], "--out", str(root / "reference-seed0")],
                     [*world["run"][1], "--out", str(root / "reference-seed1")],
                     [*world["run"][1], "--shard", "0/2", "--out", str(root / "shard0")],
                     [*world["run"][1], "--shard", "1/2", "--out", str(root / "shard1")],
                     [*world["merge"], "--out", str(root / "reference-merge")]):
            with contextlib.redirect_stdout(io.StringIO()):
                if cli(argv) != 0:
                    raise RuntimeError(f"iaside {' '.join(argv)} failed")
    finally:
        torch.set_num_threads(threads)
        if store is None:
            os.environ.pop("IASIDE_STORE")
        else:
            os.environ["IASIDE_STORE"] = store
    world["references"] = {name: _snapshot(root / name) for name in ("reference-seed0", "reference-seed1",
                                                                       "reference-merge")}
    return world


def _env(barrier: str | None = None, no_lock: bool = False, throttle_s: float = 0.0, code: Path = HERE.parent) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IASIDE_STORE": "off", "PYTHONPATH": str(code),
           "IASIDE_TEST_THROTTLE_S": str(throttle_s), "IASIDE_TEST_CHECKPOINT_S": "0"}
    if barrier:
        env["IASIDE_TEST_BARRIER"] = barrier
    if no_lock:
        env["IASIDE_TEST_NO_LOCK"] = "1"
    return env


def _snapshot(folder: Path) -> dict:
    """What must match: the numbers and configuration in result.json, run.json's identity, the
    state and per-image arrays (which hold the images' names and labels)."""
    result = json.loads((folder / "result.json").read_text())
    for key in ("meta", "data", "checksum"):  # timings (the checksum covers them); descriptions versions word differently
        result.pop(key, None)
    with np.load(folder / "state.npz") as z:
        state = {k: z[k] for k in z.files}
    with np.load(folder / "per_image.npz") as z:
        per_image = {k: z[k] for k in z.files}
    identity = json.loads((folder / "run.json").read_text())["identity"]
    return {"result": result, "state": state, "per_image": per_image, "identity": identity}


def consistent(folder: Path, references: dict) -> str | None:
    """None when ``folder`` holds one finished run equal to one of ``references``; else why not."""
    names = {p.name for p in folder.iterdir()}
    if names != RUN_FILES:
        return f"files {sorted(names ^ RUN_FILES)} differ from a finished run's"
    try:
        got = _snapshot(folder)
    except (OSError, ValueError, KeyError) as err:
        return f"unreadable: {type(err).__name__}: {err}"
    why = "run.json matches no configuration"
    for name, ref in references.items():
        if got["identity"] != ref["identity"]:
            continue
        if got["result"] != ref["result"]:
            why = f"run.json of {name} with another result.json (seed {got['result']['config']['seed']})"
            continue
        for key in ("state", "per_image"):
            if got[key].keys() != ref[key].keys() or any(not np.array_equal(got[key][k], ref[key][k]) for k in ref[key]):
                why = f"run.json of {name} with another {key}"
                break
        else:
            return None
    return why


def pair(world: dict, case: str, points: tuple[str, str], folder: Path, no_lock: bool = False,
         code: Path | None = None) -> dict:
    """Run the two processes of ``case`` on ``folder``, meeting at ``points``; their outcome."""
    barrier = folder.with_name(folder.name + "-barrier")
    barrier.mkdir()
    if case == "run+merge":
        argvs = [world["run"][0], world["merge"]]
    elif case.startswith("run+run, different"):
        argvs = [world["run"][0], world["run"][1]]
    else:
        argvs = [world["run"][0], world["run"][0]]
    procs = []
    for argv, point in zip(argvs, points):
        env = _env(barrier=f"{barrier}|2|{point}", no_lock=no_lock, throttle_s=0.003, code=code or HERE.parent)
        procs.append(subprocess.Popen([sys.executable, str(CHILD), "cli", *argv, "--out", str(folder)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errors = [p.communicate(timeout=600)[1] for p in procs]
    codes = [p.returncode for p in procs]
    problem = consistent(folder, world["references"])
    refused = [i for i in range(2) if codes[i] == 2]
    if not no_lock and code is None:
        if sorted(codes) != [0, 2]:
            problem = problem or f"exit codes {codes}: {errors}"
        else:
            line = errors[refused[0]].strip()
            winner_pid = procs[1 - refused[0]].pid
            if len(line.splitlines()) != 1 or f"in use by another iaside process (PID {winner_pid} " not in line:
                problem = problem or f"refusal does not name the holder PID {winner_pid}: {line!r}"
    return {"codes": codes, "refused": len(refused), "both_ok": codes == [0, 0], "problem": problem}


def measure(world: dict, case: str, repeats: int, no_lock: bool = False, syncs=None, code: Path | None = None) -> dict:
    syncs = syncs or SYNCS[case]
    rows = []
    tag = "before" if code else "nolock" if no_lock else "lock"
    for r in range(repeats):
        folder = world["root"] / f"{tag}-{list(SYNCS).index(case)}-{len(syncs)}-{r}"
        rows.append(pair(world, case, syncs[r % len(syncs)], folder, no_lock=no_lock, code=code))
    return {
        "repeats": repeats,
        "one_refused": sum(row["refused"] == 1 for row in rows),
        "both_exit_0": sum(row["both_ok"] for row in rows),
        "consistent": sum(row["problem"] is None for row in rows),
        "problems": [row["problem"] for row in rows if row["problem"]],
        "syncs": ", ".join(f"{a}/{b}" for a, b in syncs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-lock-repeats", type=int, default=0, help="also run two cases with the lock off")
    parser.add_argument("--before", type=Path, help="also run the cases on this checkout of the tool (a version "
                        "before run-folder locks), with its own --before-repeats")
    parser.add_argument("--before-repeats", type=int, default=10)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="iaside-concurrency-"))
    t0 = time.perf_counter()
    world = setup(root)
    print("| code | case | meeting points (A/B, cycled) | repetitions | one refused, naming the holder | both exit 0 "
          "| folder consistent |")
    print("|---|---|---|---|---|---|---|")
    plan = [("this version", case, False, None, args.repeats, None) for case in SYNCS]
    if args.no_lock_repeats:
        plan += [("this version, lock off", case, True, [SYNCS[case][0]], args.no_lock_repeats, None)
                 for case in SYNCS]
    if args.before:
        plan += [(f"before ({args.before.name})", case, False, None, args.before_repeats, args.before) for case in SYNCS]
    for label, case, no_lock, syncs, repeats, code in [row for row in plan if row[4]]:
        m = measure(world, case, repeats, no_lock=no_lock, syncs=syncs, code=code)
        print(f"| {label} | {case} | {m['syncs']} | {m['repeats']} | {m['one_refused']} "
              f"| {m['both_exit_0']} | {m['consistent']} |", flush=True)
        for problem in sorted(set(m["problems"]))[:3]:
            print(f"|  |  | e.g. {problem[:200]} | | | | |", flush=True)
    print(f"\n({time.perf_counter() - t0:.0f} s; work folder {root})")


if __name__ == "__main__":
    main()
