"""The results store: recording from ``explain``, listing, leaderboards, two writers at once,
and never touching the real home folder from a test."""

import copy
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_cnn

import iaside
from iaside import store
from iaside.cli import main
from iaside.result import Result
from iaside.summary import Estimate


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "store" / "runs.sqlite"
    monkeypatch.setenv(store.ENV, str(path))
    return path


@pytest.fixture
def run_dir(tmp_path, db):
    """A finished run folder of a tiny model (recorded in ``db`` by explain itself)."""
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    out = tmp_path / "run-a"
    iaside.explain(tiny_cnn(n_classes=3), (x, y), bands=3, n_bootstrap=50, show_progress=False, out=out)
    return out


def variant(result: Result, spec: str, score: float, signed: float | None = None, **config) -> Result:
    """A copy of ``result`` as if another model (``spec``) had scored ``score`` (and ``signed``)."""
    r = copy.deepcopy(result)
    r.model = {**r.model, "spec": spec, "fingerprint": f"fp-{spec}"}
    r.score = Estimate(score, score - 0.05, score + 0.05)
    if signed is not None:
        r.score_signed = Estimate(signed, signed - 0.1, signed + 0.1)
    r.config = {**r.config, **config}
    return r


def test_explain_records_the_run(run_dir, db):
    rows = store.list_runs()
    assert len(rows) == 1
    row, result = rows[0], Result.load(run_dir)
    assert row["run_dir"] == str(run_dir.resolve()) and row["exists"]
    assert row["model_spec"] == result.model["spec"] and row["model_fingerprint"] == result.model["fingerprint"]
    assert row["data_fingerprint"] == result.data["fingerprint"] and row["n_images"] == 6
    assert row["bands"] == 3 and row["fill"] == "partner" and row["partition"] == "linf"
    assert row["score"] == pytest.approx(float(result.score.value))
    assert row["score_low"] == pytest.approx(float(result.score.low))
    assert row["score_signed_high"] == pytest.approx(float(result.score_signed.high))
    assert np.allclose(row["sid"], result.sid.value) and np.allclose(row["sid_high"], result.sid.high)
    assert row["config"] == result.config and row["torch_version"] == torch.__version__
    assert row["wall_s"] == pytest.approx(result.meta["timings_s"]["wall"])
    assert db.exists()
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_recording_a_folder_again_replaces_its_row(run_dir, db):
    result = Result.load(run_dir)
    first = store.list_runs()[0]["id"]
    again = store.record_run(variant(result, result.model["spec"], 0.42), run_dir, strict=True)
    rows = store.list_runs()
    assert len(rows) == 1 and again == first and rows[0]["score"] == pytest.approx(0.42)


def test_filters(run_dir, db, tmp_path):
    result = Result.load(run_dir)
    store.record_run(variant(result, "efficientnet-lite1", 0.3), tmp_path / "b", strict=True)
    store.record_run(variant(result, "efficientnet-lite2", 0.2, preset="paper"), tmp_path / "c", strict=True)
    assert {r["model_spec"] for r in store.list_runs(model="LITE")} == {"efficientnet-lite1", "efficientnet-lite2"}
    assert [r["model_spec"] for r in store.list_runs(preset="paper")] == ["efficientnet-lite2"]
    assert len(store.list_runs(preset="none")) == 2
    assert store.list_runs(data="no such data") == []
    assert len(store.list_runs(data="tensor")) == 3
    assert len(store.list_runs(limit=2)) == 2
    assert store.list_runs(model="%") == []  # LIKE wildcards are taken literally


def test_leaderboard_ranks_models_within_one_configuration(run_dir, db, tmp_path):
    result = Result.load(run_dir)
    base = float(result.score.value)
    signed = float(result.score_signed.value)
    store.record_run(variant(result, "m-high", base + 0.3, signed - 0.4), tmp_path / "high", strict=True)
    store.record_run(variant(result, "m-low", base - 0.3, signed + 0.9), tmp_path / "low", strict=True)
    store.record_run(variant(result, "m-other-bands", 0.9, bands=4), tmp_path / "other", strict=True)
    # a newer run of m-low replaces its older one on the board
    store.record_run(variant(result, "m-low", base + 0.1, signed + 0.2), tmp_path / "low-again", strict=True)
    boards = store.leaderboard()
    assert len(boards) == 2
    main_board = boards[0]
    assert [r["model_spec"] for r in main_board["rows"]] == ["m-high", "m-low", result.model["spec"]]
    assert main_board["rows"][1]["run_dir"].endswith("low-again")
    assert [r["model_spec"] for r in boards[1]["rows"]] == ["m-other-bands"]
    # by score_signed the order changes: m-low (signed + 0.2), the original, m-high (signed - 0.4)
    by_signed = store.leaderboard(by="score_signed")[0]["rows"]
    assert [r["model_spec"] for r in by_signed] == ["m-low", result.model["spec"], "m-high"]
    assert [r["score_signed"] for r in by_signed] == pytest.approx([signed + 0.2, signed, signed - 0.4])


def test_runs_and_leaderboard_commands(run_dir, db, tmp_path, capsys):
    result = Result.load(run_dir)
    store.record_run(variant(result, "m-best", 0.9), tmp_path / "best", strict=True)
    assert main(["runs", "--store", str(db)]) == 0
    out = capsys.readouterr().out
    assert "m-best" in out and result.model["spec"] in out and "2 run(s)" in out
    assert main(["runs", "--json", "--model", "m-best"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["score"] == pytest.approx(0.9)
    assert main(["leaderboard"]) == 0
    out = capsys.readouterr().out
    ranked = [line.split()[1] for line in out.splitlines() if line[:1].isdigit()]
    assert ranked == ["m-best", result.model["spec"]]
    assert "0.9000 [0.8500, 0.9500]" in out
    other = tmp_path / "other-store.sqlite"
    assert main(["runs", "--store", str(other), "--add", str(run_dir)]) == 0
    assert f"recorded {run_dir} as run 1" in capsys.readouterr().out
    assert [r["run_dir"] for r in store.list_runs(other)] == [str(run_dir.resolve())]


def test_store_location(monkeypatch, tmp_path):
    monkeypatch.setenv(store.ENV, str(tmp_path / "x.sqlite"))
    assert store.store_path() == tmp_path / "x.sqlite"
    assert store.store_path(tmp_path / "given.sqlite") == tmp_path / "given.sqlite"
    monkeypatch.setenv(store.ENV, "off")
    assert store.store_path() is None
    monkeypatch.delenv(store.ENV)
    assert store.store_path() is None  # under pytest: never the real home folder
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert store.store_path() == tmp_path / "home" / ".iaside" / "runs.sqlite"


def test_a_test_run_never_writes_to_home(monkeypatch, tmp_path):
    import matplotlib

    monkeypatch.setenv("MPLCONFIGDIR", matplotlib.get_cachedir())  # keep matplotlib's font cache
    monkeypatch.delenv(store.ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    iaside.explain(
        tiny_cnn(n_classes=3),
        (x, torch.tensor([0, 1, 2, 0])),
        bands=3,
        n_bootstrap=0,
        show_progress=False,
        out=tmp_path / "run",
    )
    assert (tmp_path / "run" / "result.json").exists()
    assert not (tmp_path / "home" / ".iaside").exists()


def test_an_unwritable_store_warns_but_does_not_fail_the_run(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(store.ENV, str(blocker / "runs.sqlite"))
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    iaside.explain(
        tiny_cnn(n_classes=3),
        (x, torch.tensor([0, 1, 2, 0])),
        bands=3,
        n_bootstrap=0,
        show_progress=False,
        out=tmp_path / "run",
    )
    assert (tmp_path / "run" / "result.json").exists()
    assert "was not recorded" in capsys.readouterr().err
    with pytest.raises(iaside.IasideError):
        store.record_run(Result.load(tmp_path / "run"), tmp_path / "run", strict=True)


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from iaside import store
    from iaside.result import Result
    run_dir, db, tag, n, barrier = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
    if len(sys.argv) > 6:
        store.BUSY_TIMEOUT_S = float(sys.argv[6])
    result = Result.load(run_dir)
    Path(f"{barrier}.ready-{tag}").touch()
    while not barrier.exists():
        time.sleep(0.002)
    start = time.monotonic()
    for k in range(n):
        store.record_run(result, f"{run_dir}-{tag}-{k}", db, strict=True)
    print(start, time.monotonic())
""")


def _writers(run_dir, db, tmp_path, n, tags, *extra):
    """Start one writer process per tag, release them together once all are ready; returns
    [(exit code, stdout, stderr)]."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    barrier = tmp_path / f"go-{'-'.join(tags)}"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(run_dir), str(db), tag, str(n), str(barrier), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in tags
    ]
    while not all(Path(f"{barrier}.ready-{tag}").exists() or p.poll() is not None for tag, p in zip(tags, procs)):
        time.sleep(0.01)
    barrier.touch()
    return [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]


def test_two_processes_writing_at_once_lose_nothing(run_dir, tmp_path):
    db = tmp_path / "concurrent" / "runs.sqlite"  # new: both writers also race to create it
    n = 150
    results = _writers(run_dir, db, tmp_path, n, ["a", "b"])
    for code, _, err in results:
        assert code == 0, err
        assert "locked" not in err
    spans = [[float(v) for v in out.split()] for _, out, _ in results]
    assert max(s for s, _ in spans) < min(e for _, e in spans)  # the two writers did overlap
    with sqlite3.connect(db) as con:
        dirs = [r[0] for r in con.execute("SELECT run_dir FROM runs")]
    assert len(dirs) == len(set(dirs)) == 2 * n
    assert {d.rsplit("-", 2)[-2] for d in dirs} == {"a", "b"}


def test_a_writer_waits_for_a_held_lock_and_fails_fast_without_busy_timeout(run_dir, tmp_path):
    """The negative control for the test above: contention is real, the busy timeout is what helps."""
    db = tmp_path / "held" / "runs.sqlite"
    store.record_run(Result.load(run_dir), run_dir, db, strict=True)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        [(code, _, err)] = _writers(run_dir, db, tmp_path, 1, ["impatient"], "0")
    finally:
        holder.execute("ROLLBACK")
    assert code != 0 and "locked" in err
    holder.execute("BEGIN IMMEDIATE")
    barrier = tmp_path / "go-patient"
    barrier.touch()
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "writer.py"), str(run_dir), str(db), "patient", "1", str(barrier)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # the writer starts and blocks on the held lock (not an assertion on time)
    holder.execute("COMMIT")
    holder.close()
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2


def test_leaderboard_filters_escapes_and_keys(run_dir, db, tmp_path):
    """The leaderboard honours --model/--data/--preset like `runs` (LIKE wildcards and the
    escape character taken literally), names each board's key and data config, and refuses an
    unknown --by in one line."""
    result = Result.load(run_dir)
    store.record_run(variant(result, "net_a%1", 0.7), tmp_path / "a", strict=True)
    store.record_run(variant(result, "net-b\\x", 0.6), tmp_path / "b", strict=True)
    store.record_run(variant(result, "netXa11", 0.5, preset="paper"), tmp_path / "c", strict=True)
    spec = result.model["spec"]
    names = lambda boards: [[r["model_spec"] for r in b["rows"]] for b in boards]
    assert names(store.leaderboard(model="_a%")) == [["net_a%1"]]
    assert names(store.leaderboard(model="b\\x")) == [["net-b\\x"]]
    assert names(store.leaderboard(model="net", preset="none")) == [["net_a%1", "net-b\\x"]]
    assert names(store.leaderboard(preset="paper")) == [["netXa11"]]
    assert store.leaderboard(data="no such data") == []
    board = store.leaderboard(data="tensor", preset="none")[0]
    ranked = sorted([(0.7, "net_a%1"), (0.6, "net-b\\x"), (float(result.score.value), spec)], reverse=True)
    assert [r["model_spec"] for r in board["rows"]] == [name for _, name in ranked]
    assert board["key"] == board["rows"][0]["config_key"] and board["data_config"] == board["rows"][0].get(
        "data_config"
    )
    assert board["data_spec"] == result.data["spec"] and board["n_images"] == 6
    with pytest.raises(iaside.IasideError, match=r"^--by 'sid' is not one of score, score_signed$"):
        store.leaderboard(by="sid")


def test_every_stored_column_is_the_run_s_own_value(run_dir, db):
    """The SQLite row, column by column, against result.json read here (not through the store's
    own reader): configuration fields, model and data, both scores with their intervals, SID and
    φ arrays, clean accuracy, efficiency gap, versions, device, passes, timings."""
    d = json.loads((run_dir / "result.json").read_text())
    with sqlite3.connect(db) as con:
        con.row_factory = sqlite3.Row
        row = dict(con.execute("SELECT * FROM runs").fetchone())
    cfg, data, meta, model = d["config"], d["data"], d["meta"], d["model"]
    expected = {
        "run_dir": str(run_dir.resolve()),
        "created": meta["created"],
        "model_spec": model["spec"],
        "model_fingerprint": model["fingerprint"],
        "num_classes": model["num_classes"],
        "data_spec": data["spec"],
        "data_fingerprint": data["fingerprint"],
        "n_images": 6,
        "clip": 0,
        "config_json": cfg,
        "data_config_json": data["data_config"],
        "sid_json": d["sid"]["value"],
        "sid_low_json": d["sid"]["low"],
        "sid_high_json": d["sid"]["high"],
        "phi_json": d["phi"]["value"],
        "timings_json": meta["timings_s"],
        "clean_accuracy": d["clean_accuracy"],
        "efficiency_gap": d["efficiency_gap"],
        "images_per_s": meta["images_per_s"],
        "wall_s": meta["timings_s"]["wall"],
        **{k: cfg[k] for k in ("labels", "bands", "partition", "fill", "synthesis", "preset", "samples", "seed")},
        **{k: cfg[k] for k in ("n_bootstrap", "confidence", "beta")},
        **{k: meta[k] for k in ("iaside_version", "torch_version", "numpy_version", "python", "machine")},
        **{k: meta[k] for k in ("device", "precision", "batch_size", "forward_passes")},
        **{
            f"{name}{part}": d[name][key]
            for name in ("score", "score_signed")
            for part, key in (("", "value"), ("_low", "low"), ("_high", "high"))
        },
    }
    assert (cfg["n_bootstrap"], cfg["bands"], cfg["samples"]) == (50, 3, None)  # values a default would not give
    for column, value in expected.items():
        got = json.loads(row[column]) if column.endswith("_json") else row[column]
        if isinstance(value, float) or (isinstance(value, list) and value and isinstance(value[0], float)):
            assert np.allclose(got, value, rtol=0, atol=0), column
        else:
            assert got == value, column
    assert row["config_key"] == store.config_key(cfg, data)
