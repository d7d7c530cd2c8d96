"""Run folders (iaside/runs.py): one owner per --out, one configuration per folder, atomic files.

The concurrency cases start two real processes on one folder, made to meet at the dangerous
step (tests/measure_concurrency.py, which repeats each 20 times for docs/reliability.md).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_ARGS as TINY
from measure_concurrency import pair, setup

import iaside
from iaside import runs
from iaside.cli import main
from iaside.errors import IasideError
from iaside.merge import merge_runs
from iaside.result import Result

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return setup(tmp_path_factory.mktemp("concurrency"))


@pytest.mark.parametrize(
    "case, points",
    [
        ("run+run, different configurations", ("checkpoint", "lock")),
        ("run+merge", ("lock", "opened")),
        ("run+run, same configuration (save+save)", ("save", "lock")),
    ],
    ids=["run+run-mid-run", "merge-mid-merge+run", "save+save"],
)
def test_two_processes_on_one_folder_one_is_refused_and_the_folder_stays_whole(world, tmp_path, case, points):
    """A holds the folder (mid-run, mid-merge, about to write result.json) when B starts: B is
    refused in one line naming A's PID, and the folder is A's run, equal to A run alone."""
    outcome = pair(world, case, points, tmp_path / "out")
    assert outcome["problem"] is None, outcome
    assert outcome["codes"] == [0, 2] if points[0] != "lock" else [2, 0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "case", ["run+run, different configurations", "run+merge", "run+run, same configuration (save+save)"]
)
def test_two_processes_racing_for_a_new_folder(world, tmp_path, case):
    outcome = pair(world, case, ("lock", "lock"), tmp_path / "out")
    assert outcome["problem"] is None and outcome["refused"] == 1, outcome


# ---- the lock ----------------------------------------------------------------------------------


@pytest.fixture
def holder(tmp_path):
    """Start a process that owns a folder (``runs.owner``) until told to end; yields (proc, start)."""
    procs = []

    def start(folder: Path, shard: str = "None") -> subprocess.Popen:
        code = textwrap.dedent(f"""
            import sys
            from iaside.runs import owner
            with owner({str(folder)!r}, {shard}):
                print("held", flush=True)
                sys.stdin.read()
        """)
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "holding-for-a-test"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_owner_is_refused_naming_the_holder(tmp_path, holder, scripted, image_folder, capsys):
    out = tmp_path / "run"
    proc = holder(out)
    code = main(["run", "--model", f"torchscript:{scripted}", "--data", str(image_folder), *TINY, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{out} is in use by another iaside process (PID {proc.pid} on " in err
    assert "holding-for-a-test" in err and "choose another --out" in err
    assert {p.name for p in out.iterdir()} == {".lock"}  # the refused run wrote nothing
    with pytest.raises(IasideError, match=f"PID {proc.pid}"):
        merge_runs([tmp_path / "nowhere"], out)
    result = iaside.explain(
        f"torchscript:{scripted}",
        str(image_folder),
        bands=3,
        n_bootstrap=20,
        overrides={"input_size": [32, 32]},
        show_progress=False,
    )
    with pytest.raises(IasideError, match=f"PID {proc.pid}"):
        result.save(out)


def test_the_lock_dies_with_its_process(tmp_path, holder):
    out = tmp_path / "run"
    proc = holder(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / ".lock").exists()  # a stale file: not a stale lock
    (out / ".tmp-state.npz-abc.part").write_bytes(b"cut by a kill")
    with runs.owner(out):
        assert not (out / ".tmp-state.npz-abc.part").exists()  # the sole owner clears cut saves
    assert not (out / ".lock").exists()


def test_shards_share_a_folder_but_not_a_shard(tmp_path, holder):
    out = tmp_path / "shards"
    first = holder(out, "(0, 2)")
    with runs.owner(out, (1, 2)):  # another shard of the run: welcome
        pass
    with pytest.raises(IasideError, match=f"PID {first.pid}"):
        with runs.owner(out, (0, 2)):  # the same shard twice
            pass
    with pytest.raises(IasideError, match="in use"):
        with runs.owner(out):  # a whole run, a merge or a save needs the folder alone
            pass


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with runs.owner(tmp_path / "r") as folder:
        with runs.owner(folder):
            assert (folder / ".lock").exists()
        assert (folder / ".lock").exists()
    assert not (folder / ".lock").exists()


# ---- one configuration per folder -------------------------------------------------------------


def test_a_state_without_run_json_is_refused_not_restarted(tmp_path, scripted, image_folder, capsys):
    out = tmp_path / "run"
    args = ["run", "--model", f"torchscript:{scripted}", "--data", str(image_folder), *TINY, "--out", str(out)]
    assert main(args) == 0
    (out / "run.json").unlink()
    (out / "result.json").unlink()
    state = (out / "state.npz").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "state.npz but no run.json" in err, err
    assert "restore run.json to resume" in err and "delete state.npz to start over" in err
    assert (out / "state.npz").read_bytes() == state and not (out / "run.json").exists()


def test_merge_into_a_folder_of_another_configuration_is_refused(tmp_path, scripted, image_folder, capsys):
    base = ["run", "--model", f"torchscript:{scripted}", "--data", str(image_folder), *TINY]
    assert main(base + ["--seed", "1", "--out", str(tmp_path / "other")]) == 0
    for i in range(2):
        assert main(base + ["--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "other").iterdir()}
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "different configuration (config.seed: 1 -> 0)" in err, err
    assert {p.name: p.read_bytes() for p in (tmp_path / "other").iterdir()} == before
    # into a folder of its own configuration (here: a shard's), merging is welcome
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "s1")]) == 0


def test_run_json_is_published_once_whoever_comes_first(tmp_path):
    from iaside.config import ExplainConfig

    folder = tmp_path / "r"
    folder.mkdir()

    def info(seed):
        identity = {
            "config": ExplainConfig(seed=seed).to_dict(),
            "model": {"fingerprint": "f"},
            "data": {"n_images": 1},
        }
        return {"identity": identity, "model": {"spec": "m"}, "data": {"spec": "d"}, "names": ["a"]}

    results = []

    def claim(seed):
        try:
            results.append(runs.claim(folder, info(seed)))
        except IasideError as err:
            results.append(str(err))

    threads = [threading.Thread(target=claim, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1  # one thread published, seven were refused naming the seed
    winner = json.loads((folder / "run.json").read_text())["identity"]["config"]["seed"]
    assert sorted(r for r in results if r is not True) == sorted(
        f"{folder} holds a run with a different configuration (config.seed: {winner} -> {s}); use another --out or "
        "delete the folder"
        for s in range(8)
        if s != winner
    )


# ---- atomic writes -----------------------------------------------------------------------------


def test_atomic_write_uses_a_fresh_temporary_and_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "result.json"
    runs.atomic_write(target, "old")
    seen = []
    original = os.replace

    def spy(src, dst):
        seen.append(Path(src).name)
        original(src, dst)

    os.replace = spy
    try:
        runs.atomic_write(target, "one")
        runs.atomic_write(target, b"two")
    finally:
        os.replace = original
    assert len(set(seen)) == 2 and all(n.startswith(".tmp-result.json-") and n.endswith(".part") for n in seen)

    def half_then_full(fh):
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        runs.atomic_write(target, half_then_full)
    assert target.read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_result_saves_from_two_threads_leave_valid_files(tmp_path, scripted, image_folder):
    """Within a process the lock is shared; unique temporary files keep each file whole."""
    result = iaside.explain(
        f"torchscript:{scripted}",
        str(image_folder),
        bands=3,
        n_bootstrap=20,
        overrides={"input_size": [32, 32]},
        show_progress=False,
    )
    out = tmp_path / "r"
    errors = []

    def save_ten_times():
        try:
            for _ in range(10):
                result.save(out)
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=save_ten_times) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    again = Result.load(out)
    assert np.array_equal(again.per_image["logp_nats"], result.per_image["logp_nats"])
    assert {p.name for p in out.iterdir()} == {"result.json", "per_image.npz"}


@pytest.mark.parametrize(
    "env, owned",
    [({}, True), ({"WORLD_SIZE": "2", "RANK": "0"}, True), ({"WORLD_SIZE": "2", "RANK": "1"}, False)],
    ids=["one-process", "torchrun-rank0", "torchrun-rank1"],
)
def test_rank_zero_owns_the_folder_for_every_rank(tmp_path, monkeypatch, env, owned):
    for key in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def job(data, *, out=None, shard=None):
        with runs.run_owner(out, shard):
            return (Path(out) / ".lock").exists()

    (tmp_path / "r").mkdir()
    assert job("x", out=tmp_path / "r") is owned
    assert not (tmp_path / "r" / ".lock").exists()  # released (or never taken)
