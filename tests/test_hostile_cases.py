"""Hostile files and damaged run folders, each as a user meets them on the command line: a
one-line ``iaside: error:`` with exit code 2 (no traceback), the right image count, no hang
(FIFOs run in a child process under a timeout) and bounded memory (thin images, peak RSS of a
child). The table of cases and outcomes is in docs/reliability.md, section 8."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_ARGS as TINY
from conftest import tiny_cnn, write_image_folder
from PIL import Image

from iaside.cli import main
from iaside.errors import IasideError
from iaside.result import Result

pytestmark = pytest.mark.usefixtures("one_thread")

CHILD = Path(__file__).with_name("reliability_child.py")
CHILD_TIMEOUT_S = 240  # a hang fails the test instead of blocking the suite


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A TorchScript tiny CNN, a folder of 6 images and a finished run of it, made once."""
    root = tmp_path_factory.mktemp("made")
    model = root / "tiny.pt"
    torch.jit.script(tiny_cnn(n_classes=3)).save(str(model))
    data = write_image_folder(root / "imgs", 6)
    run = root / "run"
    assert main(["run", "--model", f"torchscript:{model}", "--data", str(data), *TINY, "--out", str(run)]) == 0
    return {"model": model, "data": data, "run": run}


@pytest.fixture
def case(made, tmp_path):
    """Fresh copies of the data folder and the finished run, free to damage."""
    data = shutil.copytree(made["data"], tmp_path / "imgs", symlinks=True)
    run = shutil.copytree(made["run"], tmp_path / "run")
    return {"model": made["model"], "data": data, "run": run, "tmp": tmp_path}


def run_args(c, out=None, *extra):
    return [
        "run",
        "--model",
        f"torchscript:{c['model']}",
        "--data",
        str(c["data"]),
        *TINY,
        "--out",
        str(out or c["run"]),
        *map(str, extra),
    ]


def cli(capsys, argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def assert_one_line_error(code, err, *culprits):
    """Exit 2 and one error line (warnings and notes, one line each, may precede it)."""
    lines = [line for line in err.splitlines() if not line.startswith(("iaside: warning: ", "iaside: note: "))]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("iaside: error: "), (code, err)
    assert "Traceback" not in err
    for culprit in culprits:
        assert culprit in lines[0], (culprit, err)


def edit_result(run: Path, change) -> None:
    d = json.loads((run / "result.json").read_text())
    change(d)
    (run / "result.json").write_text(json.dumps(d))


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _flip_in_central_directory(path: Path, name: bytes) -> None:
    """Flip one bit of the last occurrence of ``name`` (the zip's central directory, at the end)."""
    raw = bytearray(path.read_bytes())
    at = raw.rindex(name)
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))


RESULT_DAMAGE = {  # name: (how result.json is damaged, the field the error names)
    "not-utf8": (lambda run: (run / "result.json").write_bytes(b'{"config": "caf\xe9"}'), "not UTF-8"),
    "a-folder": (lambda run: ((run / "result.json").unlink(), (run / "result.json").mkdir()), "is a folder"),
    "missing-key": (lambda run: edit_result(run, lambda d: d.pop("sid")), "sid is missing"),
    "string-for-number": (
        lambda run: edit_result(run, lambda d: d["score"].update(value="high")),
        "score.value is a string",
    ),
    "null-for-object": (lambda run: edit_result(run, lambda d: d.update(config=None)), "config is null"),
    "list-for-object": (lambda run: edit_result(run, lambda d: d.update(per_class=[1, 2])), "per_class is a list"),
    "nested-100000-deep": (
        lambda run: (run / "result.json").write_text('{"meta": ' + _nested(100_000) + "}"),
        "nested deeper",
    ),
    "2-band-sid-in-3-band-run": (
        lambda run: edit_result(run, lambda d: d["sid"].update(value=[0.5, 0.5], low=[0.4, 0.4], high=[0.6, 0.6])),
        "sid.value has 2 entries, expected 3",
    ),
    "20-MB-model-spec": (
        lambda run: edit_result(run, lambda d: d["model"].update(spec="x" * 20_000_000)),
        "model.spec is a string of 20000000 characters",
    ),
    "per_image-truncated": (
        lambda run: (run / "per_image.npz").write_bytes((run / "per_image.npz").read_bytes()[:300]),
        "per_image.npz",
    ),
    "per_image-a-folder": (
        lambda run: ((run / "per_image.npz").unlink(), (run / "per_image.npz").mkdir()),
        "per_image.npz is a folder",
    ),
    "per_image-wrong-shape": (
        lambda run: _rewrite_per_image(run, phi_per_image=np.zeros((6, 2))),
        "per_image.npz: phi_per_image has shape (6, 2)",
    ),
}


def _rewrite_per_image(run: Path, **arrays) -> None:
    with np.load(run / "per_image.npz") as z:
        kept = {k: z[k] for k in z.files}
    np.savez(run / "per_image.npz", **{**kept, **arrays})


READERS = {  # the commands that read a finished run
    "show": lambda c: ["show", c["run"]],
    "report": lambda c: ["report", c["run"], "-o", c["tmp"] / "r.html", "--no-images"],
    "runs-add": lambda c: ["runs", "--store", c["tmp"] / "store.sqlite", "--add", c["run"]],
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("damage", list(RESULT_DAMAGE))
def test_a_damaged_result_is_one_line_naming_the_field(case, capsys, damage, reader):
    how, field = RESULT_DAMAGE[damage]
    how(case["run"])
    code, _, err = cli(capsys, READERS[reader](case))
    assert_one_line_error(code, err, field)


def _make_shard_run_json_damaged(c):
    for i in range(2):
        assert main(run_args(c, c["tmp"] / f"s{i}", "--shard", f"{i}/2")) == 0
    (c["tmp"] / "s1" / "run.json").write_text("[]")
    return ["merge", c["tmp"] / "s0", c["tmp"] / "s1", "--out", c["tmp"] / "merged"], ["s1", "run.json"]


def _factory_that_raises(c):
    (c["tmp"] / "raising_factory.py").write_text("def build():\n    raise RuntimeError('no weights here')\n")
    sys.path.insert(0, str(c["tmp"]))
    return (
        ["run", "--model", "module:raising_factory:build", "--data", c["data"], *TINY, "--out", c["tmp"] / "o"],
        ["raising_factory:build() raised RuntimeError: no weights here"],
    )


def _store_of_garbage(c):
    (c["tmp"] / "store.sqlite").write_bytes(os.urandom(4096))
    return ["runs", "--store", c["tmp"] / "store.sqlite"], ["store.sqlite", "not a readable iaside store"]


def _under_a_file(c, argv_of):
    (c["tmp"] / "file.txt").write_text("a file, not a folder")
    return argv_of(c["tmp"] / "file.txt" / "sub"), ["file.txt"]


def _state_bit_flip(c):
    _flip_in_central_directory(c["run"] / "state.npz", b"clean_logp_nats")
    return run_args(c), ["state.npz", "clean_logp_nats is missing"]


def _symlink(c, name, target):
    os.symlink(target, c["data"] / "1" / name)
    return run_args(c, c["tmp"] / "o"), [f"1/{name}"]


def _animated_gif(c):
    frames = [Image.new("RGB", (40, 36), (60 * k, 90, 120)) for k in range(3)]
    frames[0].save(c["data"] / "2" / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    return run_args(c, c["tmp"] / "o"), ["2/anim.gif", "animated (3 frames)"]


def _explain_image_to_a_folder(c):
    (c["tmp"] / "pngs").mkdir()
    return (
        [
            "explain-image",
            c["data"] / "0" / "0.png",
            "--model",
            f"torchscript:{c['model']}",
            "--input-size",
            "32",
            "--resize-size",
            "32",
            "--bands",
            "3",
            "-o",
            c["tmp"] / "pngs",
        ],
        ["pngs is a folder"],
    )


def _same_size_corruption(c):
    assert main(run_args(c, c["tmp"] / "o")) == 0
    victim = c["data"] / "1" / "4.png"
    victim.write_bytes(b"\0" * victim.stat().st_size)  # the same byte size: the same data fingerprint
    return run_args(c, c["tmp"] / "o", "--on-bad-image", "skip"), ["1/4.png", "now unreadable", "data changed"]


TRACEBACK_CASES = {  # name: c -> (argv, culprits the one line must name)
    "dangling-symlink-png": lambda c: _symlink(c, "dangling.png", "missing.png"),
    "self-looping-symlink-png": lambda c: _symlink(c, "loop.png", "loop.png"),
    "run.json-a-folder": lambda c: (
        ((c["run"] / "run.json").unlink(), (c["run"] / "run.json").mkdir()) and (run_args(c), ["run.json is a folder"])
    ),
    "run.json-a-list": lambda c: (c["run"] / "run.json").write_text("[]") and (run_args(c), ["run.json holds a list"]),
    "state.npz-bit-flip": _state_bit_flip,
    "merge-shard-run.json-damaged": _make_shard_run_json_damaged,
    "report-to-an-unwritable-place": lambda c: _under_a_file(
        c, lambda p: ["report", c["run"], "-o", p / "r.html", "--no-images"]
    ),
    "merge-to-an-unwritable-place": lambda c: _under_a_file(c, lambda p: ["merge", c["run"], "--out", p]),
    "explain-image-o-a-folder": _explain_image_to_a_folder,
    "per_image.npz-a-folder-on-rerun": lambda c: (
        ((c["run"] / "per_image.npz").unlink(), (c["run"] / "per_image.npz").mkdir())
        and (run_args(c), ["per_image.npz (Is a directory)"])
    ),
    "workers-negative": lambda c: (run_args(c, c["tmp"] / "o", "--workers", "-1"), ["--workers -1"]),
    "seed-negative": lambda c: (run_args(c, c["tmp"] / "o", "--seed", "-1"), ["--seed -1"]),
    "bands-1": lambda c: (run_args(c, c["tmp"] / "o", "--bands", "1"), ["--bands 1", "M >= 2"]),
    "bootstrap-0": lambda c: (run_args(c, c["tmp"] / "o", "--bootstrap", "0"), ["--bootstrap 0"]),
    "bootstrap-negative": lambda c: (run_args(c, c["tmp"] / "o", "--bootstrap", "-1"), ["--bootstrap -1"]),
    "runs-on-a-garbage-store": _store_of_garbage,
    "factory-that-raises": _factory_that_raises,
    "animated-gif": _animated_gif,
    "skipped-and-included-after-a-same-size-corruption": _same_size_corruption,
}


@pytest.mark.parametrize("name", list(TRACEBACK_CASES))
def test_no_traceback_one_line_and_exit_2(case, capsys, name):
    argv, culprits = TRACEBACK_CASES[name](case)
    capsys.readouterr()
    try:
        code, _, err = cli(capsys, argv)
    finally:
        if name == "factory-that-raises":
            sys.path.remove(str(case["tmp"]))
    assert_one_line_error(code, err, *culprits)


@pytest.mark.parametrize("name, target", [("dangling.png", "missing.png"), ("loop.png", "loop.png")])
def test_broken_links_are_counted_skips(case, capsys, name, target):
    os.symlink(target, case["data"] / "1" / name)
    code, _out, err = cli(capsys, run_args(case, case["tmp"] / "o", "--on-bad-image", "skip"))
    assert code == 0, err
    data = json.loads((case["tmp"] / "o" / "result.json").read_text())["data"]
    assert data["n_images"] == 6 and [s["name"] for s in data["skipped"]] == [f"1/{name}"]


def test_still_gif_is_analysed_and_animated_gif_is_a_counted_skip(case, capsys):
    Image.new("RGB", (40, 36), (200, 30, 30)).save(case["data"] / "0" / "still.gif")
    _animated_gif(case)
    code, _, err = cli(capsys, run_args(case, case["tmp"] / "o", "--on-bad-image", "skip"))
    assert code == 0, err
    data = json.loads((case["tmp"] / "o" / "result.json").read_text())["data"]
    assert data["n_images"] == 7 and [s["name"] for s in data["skipped"]] == ["2/anim.gif"]
    assert "animated" in data["skipped"][0]["reason"]


def test_symlink_loop_is_followed_once(case, capsys):
    """``ln -s .. d/1/loop`` (and a second link to a class folder) add no image: 6, not hundreds."""
    os.symlink("..", case["data"] / "1" / "loop")
    os.symlink("../2", case["data"] / "0" / "to-2")
    code, _, err = cli(capsys, run_args(case, case["tmp"] / "o"))
    assert code == 0, err
    data = json.loads((case["tmp"] / "o" / "result.json").read_text())["data"]
    assert data["n_images"] == 6 and data["skipped"] == []
    with np.load(case["tmp"] / "o" / "per_image.npz") as z:
        assert sorted(z["names"]) == sorted(f"{k % 3}/{k}.png" for k in range(6))
        assert sorted(z["label"]) == [0, 0, 1, 1, 2, 2]


def test_the_runs_own_output_folder_is_never_data(case, capsys):
    """--out inside the data folder: the rerun does not count the run's own sid.png as an image."""
    out = case["data"] / "0" / "results"
    code, _, err = cli(capsys, run_args(case, out))
    assert code == 0, err
    assert (out / "sid.png").is_file()
    code, _, err = cli(capsys, run_args(case, out))
    assert code == 0, err  # resumed: the same data set, the same fingerprint
    result = json.loads((out / "result.json").read_text())
    assert result["data"]["n_images"] == 6 and result["meta"]["images_this_session"] == 0


def test_report_reads_only_the_runs_own_files(case, capsys, monkeypatch):
    """A result whose data source is / : the report opens the recorded images, never walks a folder."""
    import iaside.data.datasets as datasets

    def no_walk(*args, **kwargs):
        raise AssertionError("the report walked a folder")

    edit_result(case["run"], lambda d: d["data"].update(source="/"))
    monkeypatch.setattr(datasets.os, "walk", no_walk)
    code, _out, err = cli(capsys, ["report", case["run"], "-o", case["tmp"] / "r.html"])
    assert code == 0, err
    assert "no longer holds" in (case["tmp"] / "r.html").read_text()
    edit_result(case["run"], lambda d: d["data"].update(source=str(case["data"])))
    code, _out, err = cli(capsys, ["report", case["run"], "-o", case["tmp"] / "r2.html"])
    assert code == 0, err
    assert "no longer holds" not in (case["tmp"] / "r2.html").read_text()


def test_an_edited_result_is_reported_as_edited(case, capsys):
    code, _, err = cli(capsys, ["show", case["run"]])
    assert code == 0 and err == ""
    edit_result(case["run"], lambda d: d["score"].update(value=0.9))
    code, out, err = cli(capsys, ["show", case["run"]])
    assert code == 0 and "0.9000" in out
    assert err.startswith("iaside: warning:") and "result.json was edited" in err and len(err.splitlines()) == 1


def test_edited_per_image_arrays_are_reported(made, tmp_path, capsys):
    run = shutil.copytree(made["run"], tmp_path / "run")
    with np.load(run / "per_image.npz") as z:
        logp = z["logp_nats"].copy()
    logp[2, 3] += 0.5
    _rewrite_per_image(run, logp_nats=logp)
    code, _, err = cli(capsys, ["show", run])
    assert code == 0 and "per_image.npz was edited" in err


def test_point_outside_its_interval_is_explained(made):
    result = Result.load(made["run"])
    assert "outside" not in result.table()
    result.score.low, result.score.high = float(result.score.value) + 0.01, float(result.score.value) + 0.2
    assert "note: score lies outside its bootstrap percentile interval" in result.table()


def test_passes_per_second_counts_the_real_passes(case, capsys):
    """Kernel estimator: 12 of 2**5 coalitions per image, so passes/s is not images/s × 2**M."""
    code, out, err = cli(
        capsys,
        [
            "run",
            "--model",
            f"torchscript:{case['model']}",
            "--data",
            case["data"],
            "--input-size",
            "32",
            "--resize-size",
            "32",
            "--bands",
            "5",
            "--bootstrap",
            "50",
            "--quiet",
            "--estimator",
            "kernel",
            "--coalitions",
            "12",
            "--out",
            case["tmp"] / "k",
        ],
    )
    assert code == 0, err
    meta = json.loads((case["tmp"] / "k" / "result.json").read_text())["meta"]
    line = next(x for x in out.splitlines() if "passes/s" in x)
    printed = float(line.split("(")[1].split()[0])
    assert meta["forward_passes"] <= 6 * 13  # at most 12 coalitions + one clean pass per image
    expected = meta["forward_passes"] / meta["timings_s"]["total"]
    assert printed == pytest.approx(expected, rel=0.02, abs=1.0)
    assert printed < meta["images_per_s"] * 2**5 / 2  # what it printed before: images/s × 2**M


def test_explain_image_refuses_bands_beyond_exact(made, tmp_path, capsys):
    code, _, err = cli(
        capsys,
        [
            "explain-image",
            made["data"] / "0" / "0.png",
            "--model",
            f"torchscript:{made['model']}",
            "--bands",
            "17",
            "-o",
            tmp_path / "x.png",
        ],
    )
    assert_one_line_error(code, err, "--bands 17", "2 to 16")


def tall_png(width: int, height: int) -> bytes:
    """A valid all-white 1-bit PNG, compressed 100 000 rows at a time (6 × 29 000 000 in ~1 s)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = (b"\x00" + b"\xff" * ((width + 7) // 8)) * 100_000
    pack = zlib.compressobj(9)
    full, rest = divmod(height, 100_000)
    idat = b"".join(pack.compress(rows) for _ in range(full)) + pack.compress(rows[: rest * len(rows) // 100_000])
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat + pack.flush()) + chunk(b"IEND", b"")


def _child(args, tmp_path, timeout=CHILD_TIMEOUT_S):
    """``iaside ARGS`` in a child process: (return code, stderr, peak RSS in MiB)."""
    peak_file = tmp_path / f"peak-{len(list(tmp_path.glob('peak-*')))}.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IASIDE_STORE": "off", "IASIDE_TEST_PEAK_RSS_FILE": str(peak_file)}
    proc = subprocess.run(
        [sys.executable, str(CHILD), "cli", *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout
    )
    peak = int(peak_file.read_text()) / 1024 if peak_file.exists() else float("nan")
    return proc.returncode, proc.stderr.strip(), peak


@pytest.fixture
def fifo_data(case):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(case["data"] / "1" / "img.png")
    return case


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_fifo_named_png_never_blocks_run(fifo_data, mode):
    c = fifo_data
    code, err, _ = _child(run_args(c, c["tmp"] / "o", "--on-bad-image", mode), c["tmp"])
    if mode == "error":
        assert_one_line_error(code, err, "1/img.png", "not a regular file (a FIFO)")
        return
    assert code == 0, err
    data = json.loads((c["tmp"] / "o" / "result.json").read_text())["data"]
    assert data["n_images"] == 6 and [s["name"] for s in data["skipped"]] == ["1/img.png"]


def test_fifo_named_png_never_blocks_snr_or_explain_image(fifo_data):
    c = fifo_data
    code, err, _ = _child(
        [
            "snr",
            "--data",
            c["data"],
            "--input-size",
            "32",
            "--resize-size",
            "32",
            "--bands",
            "3",
            "--corruptions",
            "gaussian_noise",
            "--severities",
            "1",
            "--linf-eps",
            "none",
            "--l2-eps",
            "none",
            "--quiet",
            "--out",
            c["tmp"] / "snr",
        ],
        c["tmp"],
    )
    assert_one_line_error(code, err, "img.png", "not a regular file")
    code, err, _ = _child(
        [
            "explain-image",
            c["data"] / "0" / "0.png",
            "--model",
            f"torchscript:{c['model']}",
            "--input-size",
            "32",
            "--resize-size",
            "32",
            "--bands",
            "3",
            "--fill-from",
            c["data"],
            "--partners",
            "6",
            "-o",
            c["tmp"] / "x.png",
        ],
        c["tmp"],
    )
    assert_one_line_error(code, err, "img.png", "not a regular file")
    code, err, _ = _child(
        [
            "explain-image",
            c["data"] / "1" / "img.png",
            "--model",
            f"torchscript:{c['model']}",
            "-o",
            c["tmp"] / "y.png",
        ],
        c["tmp"],
    )
    assert_one_line_error(code, err, "img.png", "not a regular file")


def test_thin_images_keep_memory_bounded_and_the_limit_holds_after_the_resize(case):
    """6 × 1 000 000 (under the pixel limit) was enlarged to a 32 × 5 333 333 strip (1.35 GB);
    6 × 29 000 000 would be a 32 × 154 666 667 strip, over the limit: a counted skip, not a
    MemoryError. A baseline run of the same folder without them gives the RSS floor."""
    c = case
    code, err, floor = _child(run_args(c, c["tmp"] / "base"), c["tmp"])
    assert code == 0, err
    (c["data"] / "0" / "thin-6x1000000.png").write_bytes(tall_png(6, 1_000_000))
    (c["data"] / "1" / "thin-6x29000000.png").write_bytes(tall_png(6, 29_000_000))
    code, err, peak = _child(run_args(c, c["tmp"] / "o", "--on-bad-image", "skip"), c["tmp"])
    assert code == 0, err
    data = json.loads((c["tmp"] / "o" / "result.json").read_text())["data"]
    assert data["n_images"] == 7 and [s["name"] for s in data["skipped"]] == ["1/thin-6x29000000.png"]
    assert "would exceed" in data["skipped"][0]["reason"]
    # measured: ~30 MiB over the floor (was ~1000 MiB for the first image, a MemoryError for the second)
    assert peak - floor < 300, f"peak RSS {peak:.0f} MiB, {peak - floor:.0f} MiB over the {floor:.0f} MiB floor"


def test_broken_pipe_exits_quietly(made, tmp_path):
    store = tmp_path / "store.sqlite"
    assert main(["runs", "--store", str(store), "--add", str(made["run"])]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for args in (["show", str(made["run"])], ["leaderboard", "--store", str(store)]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "iaside", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        proc.stdout.close()  # the reader is gone before the first line: `iaside show | head -0`
        _, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
        assert proc.returncode == 141 and err == b"", (args, proc.returncode, err.decode()[-2000:])


def test_validators_name_file_and_field_directly(tmp_path):
    from iaside.validate import check_state_arrays, read_run_info

    arrays = {
        "logp_nats": np.zeros((3, 8)),
        "done": np.array([1, 0, 2]),
        "label": np.zeros(3, np.int64),
        "clean_top1": np.zeros(3, np.int64),
        "clean_logp_nats": np.zeros(3),
    }
    with pytest.raises(IasideError, match=r"state.npz: done holds values other than 0 and 1"):
        check_state_arrays(arrays, "state.npz")
    arrays["done"] = np.array([1, 0, 0])
    arrays["logp_nats"][0, 3] = np.nan
    with pytest.raises(IasideError, match=r"logp_nats holds NaN"):
        check_state_arrays(arrays, "state.npz")
    (tmp_path / "run.json").write_text(
        json.dumps(
            {
                "identity": {"config": {"bands": 3}, "model": {}, "data": {"n_images": 2}},
                "model": {},
                "data": {},
                "names": ["a.png"],
            }
        )
    )
    with pytest.raises(IasideError, match=r"run.json: names is not a list of 2 image names"):
        read_run_info(tmp_path / "run.json")
    (tmp_path / "run.json").write_bytes(io.BytesIO(b"\xff\xfe").getvalue())
    with pytest.raises(IasideError, match="not UTF-8"):
        read_run_info(tmp_path / "run.json")
