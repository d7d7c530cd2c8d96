"""The results store on hand-made Results (no model run, a few SQLite operations per test, all
under tmp_path): every column of a row, which runs share a leaderboard (``config_key``), the
boards' order, the filters, where the store lives, its schema, and the retry while another
process holds the lock (with a fake clock). Expected values are written out from the inputs or
read back from the SQLite file directly, not through the store's own reader."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from iaside import store
from iaside.errors import IasideError
from iaside.result import Result
from iaside.summary import Estimate

# Every value differs from the tool's defaults, so a column filled from a default shows.
CONFIG = {
    "bands": 4,
    "partition": "l2",
    "fill": "mean",
    "synthesis": "paper",
    "clip": True,
    "preset": None,
    "labels": "predicted",
    "samples": 7,
    "seed": 11,
    "estimator": "exact",
    "n_bootstrap": 33,
    "confidence": 0.9,
    "beta": 0.5,
}
DATA_CONFIG = {"input_size": [32, 32], "mean": [0.5, 0.25, 0.125], "std": [2.0, 4.0, 8.0]}
DATA = {"spec": "folder:/data/big", "fingerprint": "d4t4", "n_images": 12, "data_config": DATA_CONFIG}
META = {
    "iaside_version": "9.8.7",
    "torch_version": "1.2.3",
    "numpy_version": "4.5.6",
    "python": "3.99.1",
    "machine": "arm-test",
    "device": "cuda:3",
    "precision": "bf16",
    "batch_size": 17,
    "forward_passes": 123,
    "images_per_s": 45.5,
    "timings_s": {"model": 1.5, "wall": 2.25},
}


def make_result(
    spec: str = "m-a",
    score: float = 0.5,
    signed: float = -0.25,
    *,
    created: str | None = "2020-01-02T03:04:05+00:00",
    fingerprint: str | None = None,
    config: dict | None = None,
    data: dict | None = None,
    meta: dict | None = None,
    **fields,
) -> Result:
    """A Result as ``iaside.explain`` would leave it, made by hand (no model run)."""
    sid = np.array([0.5, 0.25, 0.125, 0.125])
    phi = np.array([0.75, -0.5, 0.25, 0.125])
    values = dict(
        config={**CONFIG, **(config or {})},
        model={"spec": spec, "fingerprint": fingerprint or f"fp-{spec}", "num_classes": 10},
        data={**DATA, **(data or {})},
        meta={**META, "created": created, **(meta or {})},
        v_nats=np.zeros(16),
        phi=Estimate(phi, phi - 0.5, phi + 0.5),
        sid=Estimate(sid, sid - 0.0625, sid + 0.0625),
        shares=Estimate(sid, sid, sid),
        score=Estimate(score, score - 0.125, score + 0.25),
        score_signed=Estimate(signed, signed - 0.5, signed + 1.0),
        per_class={},
        clean_accuracy=0.75,
        efficiency_gap=2.5e-7,
        interpretation={},
    )
    values.update(fields)
    return Result(**values)


@pytest.fixture
def db(tmp_path, monkeypatch):
    """The store file the tests pass explicitly; IASIDE_STORE names another one, so code that
    forgets the explicit path reads or writes the wrong file."""
    monkeypatch.setenv(store.ENV, str(tmp_path / "elsewhere" / "other.sqlite"))
    return tmp_path / "store" / "runs.sqlite"


def raw_rows(path: Path) -> list[dict]:
    with sqlite3.connect(path) as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY id")]


def test_a_row_holds_every_field_of_the_result(db, tmp_path):
    run_dir = tmp_path / "run-a"
    run_dir.mkdir()
    before = datetime.now(UTC).replace(microsecond=0)
    assert store.record_run(make_result(), run_dir, db, strict=True) == 1
    after = datetime.now(UTC)
    [row] = raw_rows(db)
    sid = [0.5, 0.25, 0.125, 0.125]
    phi = [0.75, -0.5, 0.25, 0.125]
    expected = {
        "id": 1,
        "run_dir": str(run_dir.resolve()),
        "created": "2020-01-02T03:04:05+00:00",
        "model_spec": "m-a",
        "model_fingerprint": "fp-m-a",
        "num_classes": 10,
        "data_spec": "folder:/data/big",
        "data_fingerprint": "d4t4",
        "n_images": 12,
        "labels": "predicted",
        "bands": 4,
        "partition": "l2",
        "fill": "mean",
        "synthesis": "paper",
        "clip": 1,
        "preset": None,
        "samples": 7,
        "seed": 11,
        "n_bootstrap": 33,
        "confidence": 0.9,
        "beta": 0.5,
        "config_key": store.config_key(CONFIG, DATA),  # its own test below
        "config_json": CONFIG,
        "data_config_json": DATA_CONFIG,
        "score": 0.5,
        "score_low": 0.375,
        "score_high": 0.75,
        "score_signed": -0.25,
        "score_signed_low": -0.75,
        "score_signed_high": 0.75,
        "sid_json": sid,
        "sid_low_json": [v - 0.0625 for v in sid],
        "sid_high_json": [v + 0.0625 for v in sid],
        "phi_json": phi,
        "clean_accuracy": 0.75,
        "efficiency_gap": 2.5e-7,
        "iaside_version": "9.8.7",
        "torch_version": "1.2.3",
        "numpy_version": "4.5.6",
        "python": "3.99.1",
        "machine": "arm-test",
        "device": "cuda:3",
        "precision": "bf16",
        "batch_size": 17,
        "forward_passes": 123,
        "images_per_s": 45.5,
        "wall_s": 2.25,
        "timings_json": {"model": 1.5, "wall": 2.25},
    }
    recorded = row.pop("recorded_at")
    assert set(row) == set(expected)
    for column, value in expected.items():
        got = json.loads(row[column]) if column.endswith("_json") else row[column]
        assert got == value and type(got) is type(value), column
    # recorded_at: the time of recording, in UTC, to the second
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", recorded), recorded
    assert before <= datetime.fromisoformat(recorded) <= after


def test_missing_and_non_finite_values_are_stored_as_null(db, tmp_path):
    """No timings, no throughput, an undefined score (NaN), an infinite gap, no clean accuracy,
    no data config, clip absent: NULL (or 0 for clip, {} for timings), never a made-up number;
    NaN inside an array is kept (JSON NaN)."""
    meta = {k: v for k, v in META.items() if k not in ("timings_s", "images_per_s")}
    sid = np.array([0.5, np.nan, 0.25, 0.25])
    r = make_result(score=float("nan"), signed=0.125)
    r.meta = meta
    r.config = {k: v for k, v in CONFIG.items() if k != "clip"}
    r.data = {k: v for k, v in DATA.items() if k != "data_config"}
    r.clean_accuracy, r.efficiency_gap = None, float("inf")
    r.sid = Estimate(sid, sid, sid)
    store.record_run(r, tmp_path / "b", db, strict=True)
    [row] = raw_rows(db)
    assert [row[k] for k in ("score", "score_low", "score_high")] == [None, None, None]
    assert [row[k] for k in ("score_signed", "score_signed_low", "score_signed_high")] == [0.125, -0.375, 1.125]
    assert row["clean_accuracy"] is None and row["efficiency_gap"] is None
    assert row["images_per_s"] is None and row["wall_s"] is None and row["created"] is None
    assert row["timings_json"] == "{}" and row["data_config_json"] == "null" and row["clip"] == 0
    assert row["sid_json"] == "[0.5, NaN, 0.25, 0.25]"
    # clip given as False and as a truthy non-bool
    store.record_run(make_result(config={"clip": False}), tmp_path / "c", db, strict=True)
    store.record_run(make_result(config={"clip": "yes"}), tmp_path / "d", db, strict=True)
    assert [r["clip"] for r in raw_rows(db)] == [0, 0, 1]
    # timings present but None: {} and no wall time
    store.record_run(make_result(meta={"timings_s": None}), tmp_path / "e", db, strict=True)
    assert (raw_rows(db)[-1]["timings_json"], raw_rows(db)[-1]["wall_s"]) == ("{}", None)


def test_number_columns_take_finite_numbers_only():
    assert store._number("0.25") == 0.25 and store._number(np.float32(0.5)) == 0.5 and store._number(3) == 3.0
    assert type(store._number(np.float64(0.5))) is float
    for bad in (None, "n/a", float("nan"), float("-inf"), np.inf, [1.0]):
        assert store._number(bad) is None, bad


def test_the_run_folder_is_stored_as_an_absolute_resolved_path(db, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    store.record_run(make_result(), "~/runs/x", db, strict=True)
    store.record_run(make_result(), "relative/y", db, strict=True)
    store.record_run(make_result(), tmp_path / "link", db, strict=True)
    assert [r["run_dir"] for r in raw_rows(db)] == [
        str(home.resolve() / "runs" / "x"),
        str(tmp_path.resolve() / "relative" / "y"),
        str(real.resolve()),
    ]


def test_recording_a_folder_again_replaces_every_column_of_its_row(db, tmp_path):
    first = store.record_run(make_result("m-a", 0.5), tmp_path / "a", db, strict=True)
    other = store.record_run(make_result("m-b", 0.25), tmp_path / "b", db, strict=True)
    again = store.record_run(
        make_result("m-c", 0.0625, created="2021-05-06T00:00:00+00:00", config={"bands": 6, "seed": 3}),
        tmp_path / "a",
        db,
        strict=True,
    )
    assert (first, other, again) == (1, 2, 1)
    rows = raw_rows(db)
    assert [(r["id"], r["model_spec"], r["score"], r["bands"], r["seed"]) for r in rows] == [
        (1, "m-c", 0.0625, 6, 3),
        (2, "m-b", 0.25, 4, 11),
    ]
    assert rows[0]["created"] == "2021-05-06T00:00:00+00:00" and json.loads(rows[0]["config_json"])["bands"] == 6
    assert rows[0]["config_key"] == store.config_key({**CONFIG, "bands": 6}, DATA) != rows[1]["config_key"]


def test_recording_is_off_or_fails_softly(db, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(store.ENV, "off")
    assert store.record_run(make_result(), tmp_path / "a") is None
    assert not list(tmp_path.rglob("*.sqlite"))
    # an explicit path records even when the environment turns recording off
    assert store.record_run(make_result(), tmp_path / "a", db, strict=True) == 1 and len(raw_rows(db)) == 1
    # a store that cannot be opened: a warning naming it, no exception, None
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    bad = blocker / "runs.sqlite"
    monkeypatch.setenv(store.ENV, str(tmp_path / "env.sqlite"))
    assert store.record_run(make_result(), tmp_path / "a", bad) is None
    err = capsys.readouterr().err
    assert re.fullmatch(
        rf"iaside: warning: the run was not recorded in {re.escape(str(bad))} \(cannot open the run store "
        rf"{re.escape(str(bad))} \(.+\); pass --store PATH or set IASIDE_STORE\)\n",
        err,
    ), err
    with pytest.raises(IasideError, match="cannot open the run store"):
        store.record_run(make_result(), tmp_path / "a", bad, strict=True)
    # a store whose table lacks the columns (SQLite refuses the insert): the same, softly
    odd = tmp_path / "odd.sqlite"
    with sqlite3.connect(odd) as con:
        con.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, run_dir TEXT UNIQUE)")
        con.execute("PRAGMA user_version = 1")
    assert store.record_run(make_result(), tmp_path / "a", odd) is None
    assert re.fullmatch(
        rf"iaside: warning: the run was not recorded in {re.escape(str(odd))} \(table runs has no column named .+\)\n",
        capsys.readouterr().err,
    )
    with pytest.raises(sqlite3.OperationalError, match="no column named"):
        store.record_run(make_result(), tmp_path / "a", odd, strict=True)
    assert not (tmp_path / "env.sqlite").exists()


def test_where_the_store_lives(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(store.ENV, "~/env/runs.sqlite")
    assert store.store_path() == home / "env" / "runs.sqlite"
    assert store.store_path("") == home / "env" / "runs.sqlite"  # an empty --store is no --store
    assert store.store_path("~/given.sqlite") == home / "given.sqlite"
    for off in ("off", "none", " OFF ", "None"):
        monkeypatch.setenv(store.ENV, off)
        assert store.store_path() is None, off
        assert store.store_path(tmp_path / "x.sqlite") == tmp_path / "x.sqlite"
    monkeypatch.setenv(store.ENV, "  ")
    assert store.store_path() is None  # blank: as if unset, and under pytest that is off
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    assert store.store_path() == home / ".iaside" / "runs.sqlite"
    monkeypatch.delenv(store.ENV)
    assert store.store_path() == home / ".iaside" / "runs.sqlite"


def test_connect_opens_the_named_store_and_refuses_when_off(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(store.ENV, "~/a/b/env.sqlite")
    store.connect().close()  # the environment's file, its missing folders made
    assert (home / "a" / "b" / "env.sqlite").is_file()
    store.connect(tmp_path / "x" / "y" / "given.sqlite").close()  # the explicit path wins
    assert (tmp_path / "x" / "y" / "given.sqlite").is_file()
    store.connect(tmp_path / "x" / "y" / "given.sqlite").close()  # existing folder and file: fine
    assert sorted(p.name for p in tmp_path.rglob("*.sqlite")) == ["env.sqlite", "given.sqlite"]
    monkeypatch.setenv(store.ENV, " Off ")
    with pytest.raises(IasideError) as err:
        store.connect()
    assert str(err.value) == (
        "the run store is off (IASIDE_STORE=' Off '); pass --store PATH or set IASIDE_STORE to a file"
    )
    monkeypatch.delenv(store.ENV)
    with pytest.raises(IasideError) as err:
        store.connect()
    assert str(err.value) == "the run store is off (IASIDE_STORE=''); pass --store PATH or set IASIDE_STORE to a file"


def test_a_connection_is_autocommit_wal_with_a_minute_busy_timeout_and_the_schema(tmp_path):
    path = tmp_path / "runs.sqlite"
    con = store.connect(path)
    try:
        assert con.isolation_level is None and con.row_factory is sqlite3.Row
        assert con.execute("PRAGMA busy_timeout").fetchone()[0] == 60_000  # a minute, in ms
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
        columns = [(r["name"], r["type"]) for r in con.execute("PRAGMA table_info(runs)")]
        assert columns == [("id", "INTEGER"), *((n, k.split()[0]) for n, k in store._COLUMNS.items())]
        indexes = {r["name"]: r["sql"] for r in con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")}
        assert indexes["runs_model"].endswith("ON runs(model_spec)")
        assert indexes["runs_config_key"].endswith("ON runs(config_key)")
        assert not con.in_transaction
        con.execute("INSERT INTO runs (run_dir, recorded_at) VALUES ('x', 'now')")
        assert not con.in_transaction  # autocommit: another connection sees it at once
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT run_dir FROM runs").fetchall() == [("x",)]
    finally:
        con.close()
    # opening it again keeps the rows and the schema version
    con = store.connect(path)
    try:
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    finally:
        con.close()


def test_an_empty_sqlite_file_gets_the_schema_and_others_are_refused(tmp_path, monkeypatch):
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with sqlite3.connect(empty) as con:
        con.execute("CREATE TABLE notes (x)")  # a SQLite file of version 0, not empty on disk
    store.connect(empty).close()
    with sqlite3.connect(empty) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as con:
        con.execute("PRAGMA user_version = 2")
    with pytest.raises(IasideError) as err:
        store.connect(newer)
    assert str(err.value) == (
        f"the run store {newer} was written by a newer iaside (schema 2); upgrade iaside or pass another --store"
    )
    # not a database at all: refused in one line, and the connection is closed again
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a SQLite database, just text " * 50)
    opened = []
    real_connect = sqlite3.connect

    def spy(*args, **kwargs):
        opened.append(real_connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(sqlite3, "connect", spy)
    with pytest.raises(IasideError) as err:
        store.connect(junk)
    assert str(err.value) == (
        f"the run store {junk} is not a readable iaside store (file is not a database); move it away or pass another --store"
    )
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")


def test_a_transaction_takes_the_write_lock_first_and_rolls_back_on_error(tmp_path):
    path = tmp_path / "runs.sqlite"
    con = store.connect(path)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with store._Transaction(con):
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # held from BEGIN on, before any write
            con.execute("INSERT INTO runs (run_dir, recorded_at) VALUES ('kept', 'now')")
        with pytest.raises(ValueError, match="boom"):
            with store._Transaction(con):
                con.execute("INSERT INTO runs (run_dir, recorded_at) VALUES ('dropped', 'now')")
                raise ValueError("boom")
        assert not con.in_transaction
        assert other.execute("SELECT run_dir FROM runs").fetchall() == [("kept",)]
    finally:
        other.close()
        con.close()


class _Locked:
    """A step that fails with ``messages`` in turn (SQLite's OperationalError), then returns 'done'."""

    def __init__(self, *messages: str) -> None:
        self.messages, self.calls = list(messages), 0

    def __call__(self) -> str:
        self.calls += 1
        if self.messages:
            raise sqlite3.OperationalError(self.messages.pop(0))
        return "done"


def _fake_time(monkeypatch, clock: list[float]):
    """Replace the store's clock and sleep: monotonic() returns clock's values in turn (the last
    one forever); sleep(s) is recorded, not slept."""
    sleeps: list[float] = []
    ticks = iter(clock)
    last = [clock[0]]

    def monotonic() -> float:
        last[0] = next(ticks, last[0])
        return last[0]

    monkeypatch.setattr(store, "time", SimpleNamespace(monotonic=monotonic, sleep=sleeps.append))
    return sleeps


def test_a_locked_or_busy_store_is_retried_with_doubling_waits(monkeypatch):
    sleeps = _fake_time(monkeypatch, [0.0])
    step = _Locked("database is locked", "database is busy", "database table is locked", "database is locked")
    assert store._retry_while_locked(step) == "done" and step.calls == 5
    assert sleeps == pytest.approx([0.01, 0.02, 0.04, 0.08], rel=1e-12)
    # the waits double from 10 ms and stop growing at half a second
    sleeps.clear()
    step = _Locked(*["database is locked"] * 9)
    store._retry_while_locked(step)
    assert step.calls == 10
    assert sleeps == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.5, 0.5, 0.5], rel=1e-12)


def test_other_errors_are_not_retried(monkeypatch):
    sleeps = _fake_time(monkeypatch, [0.0])
    step = _Locked("no such table: runs")
    with pytest.raises(sqlite3.OperationalError, match="^no such table: runs$"):
        store._retry_while_locked(step)
    assert step.calls == 1 and sleeps == []


def test_retrying_stops_a_minute_after_the_first_try(monkeypatch):
    """The deadline is 60 s after the first attempt: at exactly 60 s it still waits once more;
    just past it, the lock error is raised as it came."""
    sleeps = _fake_time(monkeypatch, [100.0, 130.0, 160.0, 160.001])
    step = _Locked(*["database is locked"] * 10)
    with pytest.raises(sqlite3.OperationalError, match="^database is locked$"):
        store._retry_while_locked(step)
    assert step.calls == 3 and sleeps == pytest.approx([0.01, 0.02], rel=1e-12)


def test_connect_retries_setting_up_a_store_another_process_holds(tmp_path, monkeypatch):
    """The schema's creation fails at once with 'database is locked' while another connection
    holds the write lock (busy timeout aside); connect waits and retries it."""
    path = tmp_path / "runs.sqlite"
    sqlite3.connect(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            holder.execute("COMMIT")

    monkeypatch.setattr(store, "time", SimpleNamespace(monotonic=lambda: 0.0, sleep=sleep))
    monkeypatch.setattr(store, "BUSY_TIMEOUT_S", 0.001)  # SQLite's own wait: 1 ms
    try:
        con = store.connect(path)
    finally:
        holder.close()
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    finally:
        con.close()
    assert sleeps == pytest.approx([0.01, 0.02], rel=1e-12)


def _key_payload(config: dict, data: dict) -> dict:
    """What docs and docstring say a board is: the comparable configuration fields, the data
    set's description and size, and its preprocessing."""
    fields = ("bands", "partition", "fill", "synthesis", "clip", "preset", "labels", "samples", "beta")
    out = {k: config.get(k) for k in fields} | {"data_spec": data.get("spec"), "n_images": data.get("n_images")}
    return out | ({"data_config": data["data_config"]} if data.get("data_config") else {})


def test_config_key_is_the_sha256_of_the_comparable_fields():
    expected = {
        "bands": 4,
        "partition": "l2",
        "fill": "mean",
        "synthesis": "paper",
        "clip": True,
        "preset": None,
        "labels": "predicted",
        "samples": 7,
        "beta": 0.5,
        "data_spec": "folder:/data/big",
        "n_images": 12,
        "data_config": DATA_CONFIG,
    }
    assert _key_payload(CONFIG, DATA) == expected
    digest = hashlib.sha256(json.dumps(expected, sort_keys=True).encode()).hexdigest()
    assert store.config_key(CONFIG, DATA) == digest[:16]
    assert re.fullmatch(r"[0-9a-f]{16}", store.config_key({}, {}))


@pytest.mark.parametrize(
    "field, value",
    [(k, v) for k, v in [("bands", 8), ("partition", "linf"), ("fill", "partner"), ("synthesis", "sum")]]
    + [("clip", False), ("preset", "paper"), ("labels", "given"), ("samples", 8), ("beta", 0.75)],
)
def test_runs_that_differ_in_a_comparable_field_are_on_different_boards(field, value):
    changed = {**CONFIG, field: value}
    assert store.config_key(changed, DATA) != store.config_key(CONFIG, DATA)
    # a field the run's record lacks counts as None, which is another value again
    assert store.config_key({k: v for k, v in changed.items() if k != field}, DATA) != store.config_key(changed, DATA)


def test_which_runs_share_a_board():
    key = store.config_key(CONFIG, DATA)
    # the noise settings, the estimator and the fingerprints do not split a board
    same_board = [
        ({**CONFIG, "seed": 99, "n_bootstrap": 1000, "confidence": 0.5, "estimator": "kernel"}, DATA),
        (CONFIG, {**DATA, "fingerprint": "other", "labels": "given", "source": {"kind": "folder"}}),
        (dict(reversed(CONFIG.items())), DATA),  # the order of the fields
        (CONFIG, {**DATA, "data_config": dict(reversed(DATA_CONFIG.items()))}),  # nor of the data config's
    ]
    for config, data in same_board:
        assert store.config_key(config, data) == key
    # the data set, its size and its preprocessing do
    for data in (
        {**DATA, "spec": "folder:/data/other"},
        {**DATA, "n_images": 13},
        {**DATA, "data_config": {**DATA_CONFIG, "mean": [0.0, 0.0, 0.0]}},
        {k: v for k, v in DATA.items() if k != "data_config"},
    ):
        assert store.config_key(CONFIG, data) != key
    # no data config, None and {} are one and the same
    bare = {k: v for k, v in DATA.items() if k != "data_config"}
    assert store.config_key(CONFIG, bare) == store.config_key(CONFIG, {**bare, "data_config": None})
    assert store.config_key(CONFIG, bare) == store.config_key(CONFIG, {**bare, "data_config": {}})
    # a path and its text are one data set (values are compared as text when not JSON)
    assert store.config_key(CONFIG, {**DATA, "spec": Path("/data/big")}) == store.config_key(
        CONFIG, {**DATA, "spec": "/data/big"}
    )


def _record(db, tmp_path, name, *args, **kwargs) -> None:
    store.record_run(make_result(*args, **kwargs), tmp_path / name, db, strict=True)


def test_leaderboard_keeps_each_model_s_latest_run_and_puts_missing_scores_last(db, tmp_path):
    nan = float("nan")
    _record(db, tmp_path, "1", "m-a", 0.25, -0.125, created="2020-01-01T00:00:00+00:00")
    _record(db, tmp_path, "2", "m-b", 0.75, 0.25, created="2020-01-02T00:00:00+00:00")
    _record(db, tmp_path, "3", "m-c", nan, 0.0, created="2020-01-03T00:00:00+00:00")
    _record(db, tmp_path, "4", "m-a", 0.875, -0.375, created="2020-01-05T00:00:00+00:00")  # m-a's latest
    _record(db, tmp_path, "5", "m-b", 0.125, 0.875, created="2019-12-31T00:00:00+00:00")  # older, recorded last
    _record(db, tmp_path, "6", "m-b", 0.5, 0.5, fingerprint="fp-other", created="2020-01-04T00:00:00+00:00")
    _record(db, tmp_path, "7", "m-d", 0.0625, nan, created="2020-01-04T00:00:00+00:00")
    [board] = store.leaderboard(db)
    ranked = [(r["model_spec"], r["model_fingerprint"], r["score"]) for r in board["rows"]]
    assert ranked == [
        ("m-a", "fp-m-a", 0.875),
        ("m-b", "fp-m-b", 0.75),
        ("m-b", "fp-other", 0.5),
        ("m-d", "fp-m-d", 0.0625),
        ("m-c", "fp-m-c", None),
    ]
    [board] = store.leaderboard(db, by="score_signed")
    ranked = [(r["model_spec"], r["model_fingerprint"], r["score_signed"]) for r in board["rows"]]
    assert ranked == [
        ("m-b", "fp-other", 0.5),
        ("m-b", "fp-m-b", 0.25),
        ("m-c", "fp-m-c", 0.0),
        ("m-a", "fp-m-a", -0.375),
        ("m-d", "fp-m-d", None),
    ]
    assert board["rows"][3]["run_dir"] == str((tmp_path / "4").resolve())
    # the board: its key, data set, size, comparable configuration and data config
    assert board["key"] == store.config_key(CONFIG, DATA)
    assert (board["data_spec"], board["n_images"], board["data_config"]) == ("folder:/data/big", 12, DATA_CONFIG)
    assert board["config"] == {k: CONFIG[k] for k in store.COMPARABLE}
    with pytest.raises(IasideError) as err:
        store.leaderboard(db, by="sid")
    assert str(err.value) == "--by 'sid' is not one of score, score_signed"


def test_boards_with_more_models_come_first_then_by_data_set(db, tmp_path):
    _record(db, tmp_path, "b1", "m-a", 0.5, data={"spec": "/data/b"})
    _record(db, tmp_path, "none", "m-a", 0.5, data={"spec": None})
    _record(db, tmp_path, "big1", "m-a", 0.5)
    _record(db, tmp_path, "big2", "m-b", 0.25)
    _record(db, tmp_path, "a1", "m-a", 0.5, data={"spec": "/data/a"})
    _record(db, tmp_path, "bands", "m-a", 0.5, config={"bands": 8}, data={"spec": "/data/c"})
    boards = store.leaderboard(db)
    assert [(b["data_spec"], len(b["rows"])) for b in boards] == [
        ("folder:/data/big", 2),
        (None, 1),  # no description: as empty text, before any other
        ("/data/a", 1),
        ("/data/b", 1),
        ("/data/c", 1),
    ]
    assert boards[-1]["config"]["bands"] == 8 and boards[0]["config"]["bands"] == 4


def test_filters_match_substrings_literally_and_presets_exactly(db, tmp_path):
    _record(db, tmp_path, "1", "ResNet-50")
    _record(db, tmp_path, "2", "net_a%1\\z", data={"spec": "folder:/data_1"})
    _record(db, tmp_path, "3", "netXa11", config={"preset": "paper"}, data={"spec": "folder:/dataX1"})
    _record(db, tmp_path, "4", "vit", fingerprint="abc123")

    def models(**filters) -> list[str]:
        return sorted(r["model_spec"] for r in store.list_runs(db, **filters))

    def boarded(**filters) -> list[str]:
        return sorted(r["model_spec"] for b in store.leaderboard(db, **filters) for r in b["rows"])

    for names in (models, boarded):
        assert names(model="resnet") == ["ResNet-50"]  # any case
        assert names(model="NET") == sorted(["ResNet-50", "net_a%1\\z", "netXa11"])
        assert names(model="abc123") == ["vit"]  # a fingerprint, exactly
        assert names(model="abc") == []
        assert names(model="_a%1\\") == ["net_a%1\\z"]
        assert names(model="%") == ["net_a%1\\z"] and names(model="_") == ["net_a%1\\z"]
        assert names(model="\\") == ["net_a%1\\z"]
        assert names(data="DATA_1") == ["net_a%1\\z"]
        assert names(data="data/big") == ["ResNet-50", "vit"]
        assert names(preset="paper") == ["netXa11"] and names(preset="pap") == []
        assert names(preset="None") == names(preset="none") == ["ResNet-50", "net_a%1\\z", "vit"]
        assert names(model="net", preset="none", data="data") == ["ResNet-50", "net_a%1\\z"]
        assert names() == sorted(["ResNet-50", "net_a%1\\z", "netXa11", "vit"])


def test_like_escapes_its_wildcards_and_its_escape_character():
    assert store._like("a\\b%c_d") == "a\\\\b\\%c\\_d"
    assert store._filters(None, None, None) == ([], [])
    assert store._filters("m", "d", "p") == (
        ["(model_spec LIKE ? ESCAPE '\\' OR model_fingerprint = ?)", "data_spec LIKE ? ESCAPE '\\'", "preset = ?"],
        ["%m%", "m", "%d%", "p"],
    )
    assert store._filters(None, None, "NONE") == (["preset IS NULL"], [])


def test_runs_are_listed_newest_first_with_their_json_decoded(db, tmp_path):
    for name, created in [("old", "2020-01-01T00:00:00+00:00"), ("mid", "2020-06-01T00:00:00+00:00")]:
        (tmp_path / name).mkdir()
        _record(db, tmp_path, name, created=created)
    _record(db, tmp_path, "undated", created=None)  # recorded now: newer than any 2020 run
    _record(db, tmp_path, "old-twin", created="2020-01-01T00:00:00+00:00")  # a tie: the later row first
    rows = store.list_runs(db)
    assert [Path(r["run_dir"]).name for r in rows] == ["undated", "mid", "old-twin", "old"]
    assert [Path(r["run_dir"]).name for r in store.list_runs(db, limit=2)] == ["undated", "mid"]
    assert len(store.list_runs(db, limit=0)) == len(store.list_runs(db, limit=None)) == 4
    assert [r["exists"] for r in rows] == [False, True, False, True]
    row = rows[1]
    assert not [k for k in row if k.endswith("_json")]
    assert row["config"] == CONFIG and row["data_config"] == DATA_CONFIG
    assert row["sid"] == [0.5, 0.25, 0.125, 0.125] and row["phi"] == [0.75, -0.5, 0.25, 0.125]
    assert row["sid_low"] == [0.4375, 0.1875, 0.0625, 0.0625] and row["sid_high"] == [0.5625, 0.3125, 0.1875, 0.1875]
    assert row["timings"] == {"model": 1.5, "wall": 2.25} and row["model_spec"] == "m-a"
    # a JSON column left empty (NULL) reads back as None
    with sqlite3.connect(db) as con:
        con.execute("UPDATE runs SET phi_json = NULL")
    assert [r["phi"] for r in store.list_runs(db)] == [None] * 4
    assert datetime.fromisoformat(rows[0]["recorded_at"]) > datetime.now(UTC) - timedelta(minutes=5)
