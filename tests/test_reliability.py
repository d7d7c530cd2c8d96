"""Reliability of long runs: a run killed with SIGKILL resumes to the uninterrupted result; a
changed configuration is refused naming the difference; shards merge exactly; a full disk
keeps the last checkpoint; the same seed gives the same numbers, at any batch size.

"Exactly" means bit for bit, up to the model's own batch-composition rounding: ``jitter``
measures how much the model's logits move when the same input sits in batches of other sizes
(for the tiny CNN on CPU: 0 between batches of 2 or more, 3e-8 for a batch of one, which the
engine uses for a last batch of a single pair); |Δ log_softmax| <= 2·max|Δ logit|, so
2·jitter bounds what another packing of (image, coalition) pairs may change. Runs with the
same packing (same batch size, no resume) must be identical, bit for bit.
Figures: docs/reliability.md (``python tests/measure_reliability.py``).
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_ARGS as TINY
from conftest import tiny_cnn, write_image_folder

import iaside
from iaside.cli import main
from iaside.engine import EngineState
from iaside.errors import IasideError
from iaside.fills import processing_order
from iaside.merge import merge_runs

pytestmark = pytest.mark.usefixtures("one_thread")

CHILD = Path(__file__).with_name("reliability_child.py")
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "IASIDE_STORE": "off"}
N_IMAGES = 24
KW = dict(
    bands=5, batch_size=8, overrides={"input_size": [32, 32], "resize_size": 32}, n_bootstrap=100, show_progress=False
)
RUN_FILES = {"run.json", "state.npz", "result.json", "per_image.npz", "sid.png"}


@pytest.fixture
def folder(tmp_path):
    """tmp/many/<label>/<k>.png: 24 smooth random 40×36 pictures in 3 class folders."""
    return write_image_folder(tmp_path / "many", N_IMAGES, seed=1)


def jitter(model_path, folder) -> float:
    """max |Δ logit| of the model over the same inputs in batches of 1, 8, 13 and all (the
    folder's images at 32×32, and the same plus noise, like unclipped coalition images)."""
    from iaside.config import DataConfig
    from iaside.data import open_dataset

    data = open_dataset(str(folder), DataConfig(input_size=(32, 32), resize_size=32), labels="predicted")
    x = torch.stack([data[i].pixels for i in range(len(data))])
    x = torch.cat([x, x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))])
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    model = torch.jit.load(str(model_path)).eval().to(memory_format=torch.channels_last)
    with torch.inference_mode():

        def logits(b):
            return torch.cat(
                [model(x[i : i + b].contiguous(memory_format=torch.channels_last)) for i in range(0, len(x), b)]
            )

        ref = logits(len(x))
        return max(float((logits(b) - ref).abs().max()) for b in (1, 8, 13))


def numbers(run_dir: Path) -> dict:
    """result.json without ``meta`` (timings, creation time, batch size, this session's counts)
    and the content checksum (which covers ``meta`` too)."""
    d = json.loads((run_dir / "result.json").read_text())
    d.pop("meta")
    d.pop("checksum")
    return d


def arrays(run_dir: Path) -> dict:
    with np.load(run_dir / "per_image.npz") as z:
        return {k: z[k] for k in z.files}


def json_diff(a, b) -> float:
    """Largest |a − b| over the floats of two JSON trees that must otherwise be identical."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        return max([json_diff(a[k], b[k]) for k in a], default=0.0)
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        return max([json_diff(x, y) for x, y in zip(a, b)], default=0.0)
    if isinstance(a, float) and isinstance(b, float):
        return 0.0 if a == b else abs(a - b)
    assert a == b, (a, b)
    return 0.0


def json_tolerance(tol: float) -> float:
    """What 2·jitter in log-probabilities may become in φ, SID and scores (SID divides by Σψ)."""
    return 0.0 if tol == 0 else 1e-6


def max_diff(a: dict, b: dict) -> float:
    """Largest |a − b| over the float arrays of two per_image dicts (the others must be equal)."""
    assert a.keys() == b.keys()
    worst = 0.0
    for k in a:
        if a[k].dtype.kind == "f":
            worst = max(worst, float(np.abs(a[k] - b[k]).max()))
        else:
            assert np.array_equal(a[k], b[k]), k
    return worst


def child(kwargs: dict, throttle_s: float = 0.0) -> tuple[list[str], dict]:
    """argv and environment of a child process running explain(**kwargs)."""
    env = {**CHILD_ENV, "IASIDE_TEST_THROTTLE_S": str(throttle_s)}
    return [sys.executable, str(CHILD), "explain", json.dumps(kwargs)], env


# ---- kill -9 and resume ------------------------------------------------------------------------


def test_sigkill_mid_run_then_rerun_equals_uninterrupted_run(tmp_path, scripted, folder):
    spec = {"model": f"torchscript:{scripted}", "data": str(folder), **KW}
    reference = tmp_path / "reference"
    iaside.explain(spec["model"], spec["data"], **KW, out=reference)
    out = tmp_path / "killed"
    state_path = out / "state.npz"
    # the throttle (30 ms per model batch, ~3 s in all) leaves time to see a checkpoint and kill
    argv, env = child({**spec, "out": str(out), "checkpoint_every_s": 0.2}, throttle_s=0.03)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    give_up = time.monotonic() + 240  # hang guard only
    try:
        while True:
            if proc.poll() is not None:
                tail = proc.stderr.read()[-3000:]
                pytest.fail(f"the run ended (code {proc.returncode}) before it was killed: {tail}")
            if state_path.exists() and EngineState.load(state_path).done.sum() >= 4:
                break
            assert time.monotonic() < give_up, "no checkpoint with 4 finished images appeared"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "result.json").exists()
    saved = EngineState.load(state_path)  # atomic saves: whatever the moment of the kill, it loads
    n_done = int(saved.done.sum())
    assert 4 <= n_done < N_IMAGES
    # finished images are a prefix of the processing order, whole rows; the rest is all zero
    assert np.all(np.diff(saved.done[processing_order(N_IMAGES, 0)]) <= 0)
    assert not saved.logp_nats[saved.done == 0].any() and not saved.clean_logp_nats[saved.done == 0].any()
    ref = arrays(reference)
    assert np.array_equal(ref["index"], np.arange(N_IMAGES))
    tol = 2 * jitter(scripted, folder)
    done = saved.done == 1
    assert np.abs(saved.logp_nats[done] - ref["logp_nats"][done]).max() <= tol

    argv, env = child({**spec, "out": str(out), "checkpoint_every_s": 0.2})
    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    meta = json.loads((out / "result.json").read_text())["meta"]
    assert meta["images_this_session"] == N_IMAGES - n_done  # resumed, not restarted
    assert max_diff(arrays(out), ref) <= tol
    assert json_diff(numbers(out), numbers(reference)) <= json_tolerance(tol)
    assert {p.name for p in out.iterdir()} == RUN_FILES  # the kill's lock file and cut save are gone


@pytest.mark.parametrize(
    "signum, code",
    [
        pytest.param(signal.SIGTERM, 143, id="SIGTERM"),
        pytest.param(signal.SIGHUP, 129, id="SIGHUP"),
        pytest.param(signal.SIGINT, 130, id="SIGINT", marks=pytest.mark.slow),  # Ctrl-C: the same path, long in place
    ],
)
def test_a_signal_mid_run_saves_it_and_the_rerun_equals_an_uninterrupted_run(tmp_path, scripted, folder, signum, code):
    """``kill``, Slurm and docker send SIGTERM, a closed terminal SIGHUP, Ctrl-C SIGINT: each
    checkpoints every finished image, prints how to resume, exits 128 + the signal; the same
    command then computes only the rest and ends with the uninterrupted run's numbers."""
    reference = tmp_path / "reference"
    iaside.explain(f"torchscript:{scripted}", str(folder), **KW, out=reference)
    out = tmp_path / "stopped"
    args = [
        "run",
        "--model",
        f"torchscript:{scripted}",
        "--data",
        str(folder),
        "--bands",
        "5",
        "--batch-size",
        "8",
        "--input-size",
        "32",
        "--resize-size",
        "32",
        "--bootstrap",
        "100",
        "--quiet",
        "--out",
        str(out),
    ]
    env = {**CHILD_ENV, "IASIDE_TEST_THROTTLE_S": "0.03", "IASIDE_TEST_CHECKPOINT_S": "0.2"}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), "cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    give_up = time.monotonic() + 240  # hang guard only
    try:
        while done_in(out / "state.npz") < 4:
            if proc.poll() is not None:
                pytest.fail(f"the run ended (code {proc.returncode}) before the signal: {proc.stderr.read()[-3000:]}")
            assert time.monotonic() < give_up, "no checkpoint with 4 finished images appeared"
            time.sleep(0.02)
        proc.send_signal(signum)
        err = proc.communicate(timeout=120)[1].strip()
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == code, err
    assert len(err.splitlines()) == 1 and "rerun the same command to resume" in err, err
    if signum != signal.SIGINT:
        assert err.startswith(f"iaside: stopped by {signal.Signals(signum).name}") and str(out) in err
    saved = EngineState.load(out / "state.npz")
    n_done = int(saved.done.sum())
    assert 4 <= n_done < N_IMAGES and not (out / "result.json").exists()
    assert {p.name for p in out.iterdir()} == {"run.json", "state.npz"}  # the lock went with the process
    env["IASIDE_TEST_THROTTLE_S"] = "0"
    rerun = subprocess.run(
        [sys.executable, str(CHILD), "cli", *args], env=env, capture_output=True, text=True, timeout=240
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    meta = json.loads((out / "result.json").read_text())["meta"]
    assert meta["images_this_session"] == N_IMAGES - n_done < N_IMAGES  # resumed, not restarted
    tol = 2 * jitter(scripted, folder)
    assert max_diff(arrays(out), arrays(reference)) <= tol
    assert json_diff(numbers(out), numbers(reference)) <= json_tolerance(tol)


def done_in(path: Path) -> int:
    """Finished images in a checkpoint (0 before the first)."""
    return int(EngineState.load(path).done.sum()) if path.exists() else 0


# ---- changed configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, named",
    [
        (["--seed", "1"], "config.seed"),
        (["--bands", "4"], "config.bands"),
        (["--partition", "l2"], "config.partition"),
        (["--labels", "predicted"], "config.labels"),
        (["--input-size", "24"], "data_config.input_size"),
        (["--mean", "0.5"], "data_config.mean"),
        (["--precision", "bf16"], "precision"),
        ("other-model", "model.fingerprint"),
        ("extra-image", "data.n_images"),
    ],
    ids=["seed", "bands", "partition", "labels", "input-size", "mean", "precision", "model", "data"],
)
def test_changed_configuration_is_refused_naming_it(tmp_path, scripted, image_folder, capsys, change, named):
    out = tmp_path / "run"
    base = ["run", "--model", f"torchscript:{scripted}", "--data", str(image_folder), *TINY, "--out", str(out)]
    assert main(base) == 0
    before = (out / "state.npz").read_bytes()
    capsys.readouterr()
    args = list(base)
    if change == "other-model":
        torch.jit.script(tiny_cnn(n_classes=3, seed=7)).save(str(scripted))
    elif change == "extra-image":
        shutil.copy(image_folder / "0" / "0.png", image_folder / "0" / "copy.png")
    else:
        args += change
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("iaside: error:") and named in err, err
    assert str(out) in err and "another --out" in err
    assert (out / "state.npz").read_bytes() == before  # the refused run wrote nothing


def test_batch_size_and_workers_are_not_part_of_the_identity(tmp_path, scripted, image_folder, capsys):
    out = tmp_path / "run"
    base = ["run", "--model", f"torchscript:{scripted}", "--data", str(image_folder), *TINY, "--out", str(out)]
    assert main(base) == 0
    first = numbers(out)
    assert main(base + ["--batch-size", "5", "--workers", "1"]) == 0
    assert json.loads((out / "result.json").read_text())["meta"]["images_this_session"] == 0  # all resumed
    assert numbers(out) == first


# ---- shards and merge --------------------------------------------------------------------------


def test_three_shards_merge_to_the_single_run_bit_for_bit(tmp_path, scripted, folder):
    model, data = f"torchscript:{scripted}", str(folder)
    single = iaside.explain(model, data, **KW, out=tmp_path / "single")
    for i in range(3):
        assert iaside.explain(model, data, **KW, shard=(i, 3), out=tmp_path / f"s{i}") is None
    merged = merge_runs([tmp_path / "s2", tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged")
    tol = 2 * jitter(scripted, folder)
    whole = EngineState.load(tmp_path / "single" / "state.npz")
    parts = EngineState.load(tmp_path / "merged" / "state.npz")
    assert parts.complete and np.array_equal(parts.done, whole.done)
    assert np.abs(parts.logp_nats.sum(0) - whole.logp_nats.sum(0)).max() <= N_IMAGES * tol
    assert np.abs(merged.phi.value - single.phi.value).max() <= tol
    assert max_diff(arrays(tmp_path / "merged"), arrays(tmp_path / "single")) <= tol
    assert json_diff(numbers(tmp_path / "merged"), numbers(tmp_path / "single")) <= json_tolerance(tol)


# ---- a full disk -------------------------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    where = tmp_path / "small_disk"
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def fill_disk(folder: Path) -> Path:
    """Write a file until the file system of ``folder`` is full; returns it."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as err:
            assert err.errno == errno.ENOSPC
    return filler


@pytest.mark.parametrize("disk", ["tmpfs", "simulated"])
def test_full_disk_keeps_the_last_checkpoint_and_resumes(tmp_path, scripted, folder, monkeypatch, request, disk):
    """After the first checkpoint the disk fills up: the run stops, the checkpoint on disk stays
    whole (no temporary file left), and the same call resumes from it once there is room."""
    model, data = f"torchscript:{scripted}", str(folder)
    reference = iaside.explain(model, data, **KW)
    out = (request.getfixturevalue("small_tmpfs") if disk == "tmpfs" else tmp_path) / "run"
    saves, first = [], {}
    original_save = EngineState.save
    original_savez = np.savez

    def save_then_fill(self, path):
        original_save(self, path)
        saves.append(path)
        if len(saves) == 1:
            first.update(EngineState.load(path).arrays())
            if disk == "tmpfs":
                first["filler"] = fill_disk(out)
            else:  # the next save writes some bytes, then the disk is full

                def savez_enospc(fh, **arrays):
                    fh.write(b"PK\x03\x04 partial")
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

                monkeypatch.setattr(np, "savez", savez_enospc)

    monkeypatch.setattr(EngineState, "save", save_then_fill)
    with pytest.raises(IasideError, match="No space left on device.*last checkpoint .* is kept") as err:
        iaside.explain(model, data, **KW, out=out, checkpoint_every_s=0.0)
    assert str(out / "state.npz") in str(err.value)
    assert len(saves) == 1
    on_disk = EngineState.load(out / "state.npz")
    assert 0 < on_disk.done.sum() < N_IMAGES
    assert all(np.array_equal(on_disk.arrays()[k], first[k]) for k in on_disk.arrays())
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # the cut save cleaned up
    monkeypatch.setattr(EngineState, "save", original_save)
    monkeypatch.setattr(np, "savez", original_savez)
    if disk == "tmpfs":
        first["filler"].unlink()
    resumed = iaside.explain(model, data, **KW, out=out)
    assert resumed.meta["images_this_session"] == N_IMAGES - int(on_disk.done.sum())
    tol = 2 * jitter(scripted, folder)
    assert max_diff(resumed.per_image, reference.per_image) <= tol


BUG_LATE_BAD_IMAGE = (
    "core: with --on-bad-image error, an unreadable image found late stops the run without saving the images "
    "finished since the last checkpoint, after spending their model passes; removing the image as the error "
    "advises then changes the data fingerprint and the folder is refused (docs/reliability.md, bug 6)"
)
BUG_WRITE_ERROR = (
    "core: an OSError writing the run folder (ENOSPC at a checkpoint, result.json, per_image.npz or sid.png) "
    "escapes as a traceback with exit code 1, not a one-line 'iaside: error:' naming the file "
    "(docs/reliability.md, bug 4)"
)
BUG_DAMAGED_FOLDER = (
    "core: a damaged state.npz or run.json in the --out folder raises BadZipFile/EOFError/JSONDecodeError as a "
    "traceback instead of a one-line error naming the file (docs/reliability.md, bug 5)"
)


def test_bad_image_found_late_costs_no_finished_work(tmp_path, scripted, folder, monkeypatch):
    """An unreadable image met late (error mode): every image whose chunk was loaded is finished
    and saved before the error; rerunning with --on-bad-image skip resumes from that state (the
    data fingerprint is unchanged) and only the images around the bad one are computed."""
    from iaside.config import DataConfig
    from iaside.data import open_dataset

    names = open_dataset(str(folder), DataConfig()).names
    order = processing_order(N_IMAGES, 0)
    last = folder / names[int(order[-1])]
    last.write_bytes(last.read_bytes()[:60])
    out = tmp_path / "run"
    with pytest.raises(IasideError, match=f"{last.name}.*--on-bad-image skip"):
        iaside.explain(f"torchscript:{scripted}", str(folder), **KW, out=out)  # checkpoint every 30 s
    saved = EngineState.load(out / "state.npz")
    # lost: the bad image and the rest of the loader chunk (4 images) that holds it or needs it
    assert saved.done.sum() >= N_IMAGES - 1 - 4
    resumed = iaside.explain(f"torchscript:{scripted}", str(folder), **KW, out=out, on_bad_image="skip")
    assert resumed.meta["images_this_session"] == N_IMAGES - 1 - saved.done.sum()
    assert [s["name"] for s in resumed.data["skipped"]] == [names[int(order[-1])]]
    assert resumed.data["n_images"] == N_IMAGES - 1


def test_full_disk_gives_a_one_line_error(tmp_path, scripted, image_folder, monkeypatch, capsys):
    def savez_enospc(fh, **arrays):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", savez_enospc)
    out = tmp_path / "run"
    code = main(["run", "--model", f"torchscript:{scripted}", "--data", str(image_folder), *TINY, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("iaside: error:")
    assert "No space left" in err and str(out) in err


@pytest.mark.parametrize("damaged", ["state.npz", "run.json"])
def test_damaged_run_folder_gives_a_one_line_error(tmp_path, scripted, image_folder, capsys, damaged):
    out = tmp_path / "run"
    args = ["run", "--model", f"torchscript:{scripted}", "--data", str(image_folder), *TINY, "--out", str(out)]
    assert main(args) == 0
    path = out / damaged
    path.write_bytes(path.read_bytes()[:40])  # a copy cut short (the engine's own saves are atomic)
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and damaged in err


# ---- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_numbers_at_any_batch_size(tmp_path, scripted, folder):
    model, data = f"torchscript:{scripted}", str(folder)
    runs = {}
    for name, batch in [("a", 8), ("b", 8), ("13", 13), ("64", 64), ("1000", 1000)]:
        runs[name] = iaside.explain(model, data, **{**KW, "batch_size": batch}, out=tmp_path / name)
    # two runs, same seed and batch size: every number in result.json and per_image.npz identical
    assert json.dumps(numbers(tmp_path / "a")) == json.dumps(numbers(tmp_path / "b"))
    assert max_diff(arrays(tmp_path / "a"), arrays(tmp_path / "b")) == 0
    # other batch sizes: other packings of (image, coalition) pairs and pass reuse; the only
    # possible difference is the model's own batch-dependent rounding
    tol = 2 * jitter(scripted, folder)
    for name in ("13", "64", "1000"):
        assert max_diff(arrays(tmp_path / name), arrays(tmp_path / "a")) <= tol, name
        assert json_diff(numbers(tmp_path / name), numbers(tmp_path / "a")) <= json_tolerance(tol), name
    # another seed really changes the numbers (the comparison above is not vacuous)
    other = iaside.explain(model, data, **{**KW, "seed": 1})
    assert not np.array_equal(other.per_image["logp_nats"], runs["a"].per_image["logp_nats"])


def test_state_merge_is_commutative_and_refuses_overlaps(tmp_path, scripted, folder):
    model, data = f"torchscript:{scripted}", str(folder)
    for i in range(3):
        iaside.explain(model, data, **{**KW, "bands": 3}, shard=(i, 3), out=tmp_path / f"s{i}")
    s = [EngineState.load(tmp_path / f"s{i}" / f"state-shard{i}of3.npz") for i in range(3)]
    ab_c = s[0].merge(s[1]).merge(s[2])
    c_ba = s[2].merge(s[1].merge(s[0]))
    assert all(np.array_equal(ab_c.arrays()[k], c_ba.arrays()[k]) for k in ab_c.arrays())
    with pytest.raises(IasideError, match="both"):
        ab_c.merge(s[1])
