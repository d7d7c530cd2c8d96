"""The results store: every finished run, one row, in a SQLite database.

Location: ``db_path`` if given (the ``--store`` option), else the environment variable
``IASIDE_STORE`` (a file path; ``off`` or ``none`` turns recording off), else
``~/.iaside/runs.sqlite``. Under pytest (``PYTEST_CURRENT_TEST`` set) with neither, nothing is
recorded, so a test suite never writes to the real home folder.

Safe with several processes writing at once: WAL journal, a busy timeout, and every write in a
``BEGIN IMMEDIATE`` transaction (the write lock is taken up front, so two writers queue
instead of deadlocking). One row per run folder: recording the same folder again replaces its
row (a folder holds one result; ``iaside run`` refuses to reuse it for another configuration).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IasideError
from .log import warn

ENV = "IASIDE_STORE"
DISABLED = ("off", "none")
BUSY_TIMEOUT_S = 60.0
SCHEMA_VERSION = 1
COMPARABLE = ("bands", "partition", "fill", "synthesis", "clip", "preset", "labels", "samples", "beta")
"""Configuration fields that must match for two runs' scores to be ranked together (with the
data set's description and size). Seed, bootstrap size and confidence only move the noise."""

_COLUMNS = {
    "run_dir": "TEXT NOT NULL UNIQUE",
    "recorded_at": "TEXT NOT NULL",
    "created": "TEXT",
    "model_spec": "TEXT",
    "model_fingerprint": "TEXT",
    "num_classes": "INTEGER",
    "data_spec": "TEXT",
    "data_fingerprint": "TEXT",
    "n_images": "INTEGER",
    "labels": "TEXT",
    "bands": "INTEGER",
    "partition": "TEXT",
    "fill": "TEXT",
    "synthesis": "TEXT",
    "clip": "INTEGER",
    "preset": "TEXT",
    "samples": "INTEGER",
    "seed": "INTEGER",
    "n_bootstrap": "INTEGER",
    "confidence": "REAL",
    "beta": "REAL",
    "config_key": "TEXT",
    "config_json": "TEXT",
    "data_config_json": "TEXT",
    "score": "REAL",
    "score_low": "REAL",
    "score_high": "REAL",
    "score_signed": "REAL",
    "score_signed_low": "REAL",
    "score_signed_high": "REAL",
    "sid_json": "TEXT",
    "sid_low_json": "TEXT",
    "sid_high_json": "TEXT",
    "phi_json": "TEXT",
    "clean_accuracy": "REAL",
    "efficiency_gap": "REAL",
    "iaside_version": "TEXT",
    "torch_version": "TEXT",
    "numpy_version": "TEXT",
    "python": "TEXT",
    "machine": "TEXT",
    "device": "TEXT",
    "precision": "TEXT",
    "batch_size": "INTEGER",
    "forward_passes": "INTEGER",
    "images_per_s": "REAL",
    "wall_s": "REAL",
    "timings_json": "TEXT",
}
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    + ", ".join(f"{name} {kind}" for name, kind in _COLUMNS.items())
    + ")",
    "CREATE INDEX IF NOT EXISTS runs_model ON runs(model_spec)",
    "CREATE INDEX IF NOT EXISTS runs_config_key ON runs(config_key)",
)


def store_path(db_path: str | os.PathLike | None = None) -> Path | None:
    """Where runs are recorded, or None when recording is off (see the module docstring)."""
    if db_path is not None and str(db_path) != "":
        return Path(db_path).expanduser()
    env = os.environ.get(ENV, "").strip()
    if env.lower() in DISABLED:
        return None
    if env:
        return Path(env).expanduser()
    if "PYTEST_CURRENT_TEST" in os.environ:
        return None
    return Path.home() / ".iaside" / "runs.sqlite"


def connect(db_path: str | os.PathLike | None = None) -> sqlite3.Connection:
    """An autocommit connection to the store (created on first use), WAL, busy timeout set."""
    path = store_path(db_path)
    if path is None:
        raise IasideError(
            f"the run store is off ({ENV}={os.environ.get(ENV, '')!r}); pass --store PATH or set {ENV} to a file"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except (OSError, sqlite3.Error) as err:
        raise IasideError(f"cannot open the run store {path} ({err}); pass --store PATH or set {ENV}") from err
    con.row_factory = sqlite3.Row
    try:
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _retry_while_locked(lambda: _set_up(con, path))
    except sqlite3.DatabaseError as err:
        con.close()
        raise IasideError(
            f"the run store {path} is not a readable iaside store ({err}); move it away or pass another --store"
        ) from err
    return con


def _set_up(con: sqlite3.Connection, path: Path) -> None:
    if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    _ensure_schema(con, path)


def _retry_while_locked(step) -> None:
    """Run ``step``, retrying for up to BUSY_TIMEOUT_S while another process holds the lock.

    Switching to WAL and creating the schema can fail with 'database is locked' at once (SQLite
    does not wait on those locks), when two processes open a new store together.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            return step()
        except sqlite3.OperationalError as err:
            if ("locked" not in str(err) and "busy" not in str(err)) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class _Transaction:
    """``with _Transaction(con):`` = BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, kind, value, tb) -> None:
        self.con.execute("COMMIT" if kind is None else "ROLLBACK")


def _ensure_schema(con: sqlite3.Connection, path: Path) -> None:
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise IasideError(
            f"the run store {path} was written by a newer iaside (schema {version}); "
            "upgrade iaside or pass another --store"
        )
    with _Transaction(con):
        if con.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            for statement in _SCHEMA:
                con.execute(statement)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _json(value: Any) -> str:
    return json.dumps(np.asarray(value).tolist() if isinstance(value, np.ndarray) else value, allow_nan=True)


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def config_key(config: dict[str, Any], data: dict[str, Any]) -> str:
    """sha256 (16 hex) of what must match for two runs to be ranked together: the comparable
    configuration, the data set and the effective preprocessing (the data config)."""
    payload = {k: config.get(k) for k in COMPARABLE}
    payload.update(data_spec=data.get("spec"), n_images=data.get("n_images"))
    if data.get("data_config"):
        payload["data_config"] = data["data_config"]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _row(result, run_dir: str | os.PathLike) -> dict[str, Any]:
    """The store row of a Result saved in ``run_dir``."""
    cfg, data, meta, model = result.config, result.data, result.meta, result.model
    timings = meta.get("timings_s") or {}
    est = {name: getattr(result, name) for name in ("score", "score_signed")}
    return {
        "run_dir": str(Path(run_dir).expanduser().resolve()),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "created": meta.get("created"),
        "model_spec": model.get("spec"),
        "model_fingerprint": model.get("fingerprint"),
        "num_classes": model.get("num_classes"),
        "data_spec": data.get("spec"),
        "data_fingerprint": data.get("fingerprint"),
        "n_images": data.get("n_images"),
        "labels": cfg.get("labels"),
        "bands": cfg.get("bands"),
        "partition": cfg.get("partition"),
        "fill": cfg.get("fill"),
        "synthesis": cfg.get("synthesis"),
        "clip": int(bool(cfg.get("clip"))),
        "preset": cfg.get("preset"),
        "samples": cfg.get("samples"),
        "seed": cfg.get("seed"),
        "n_bootstrap": cfg.get("n_bootstrap"),
        "confidence": cfg.get("confidence"),
        "beta": cfg.get("beta"),
        "config_key": config_key(cfg, data),
        "config_json": _json(cfg),
        "data_config_json": _json(data.get("data_config")),
        **{
            f"{name}{part}": _number(getattr(e, attr))
            for name, e in est.items()
            for part, attr in (("", "value"), ("_low", "low"), ("_high", "high"))
        },
        "sid_json": _json(result.sid.value),
        "sid_low_json": _json(result.sid.low),
        "sid_high_json": _json(result.sid.high),
        "phi_json": _json(result.phi.value),
        "clean_accuracy": _number(result.clean_accuracy),
        "efficiency_gap": _number(result.efficiency_gap),
        "iaside_version": meta.get("iaside_version"),
        "torch_version": meta.get("torch_version"),
        "numpy_version": meta.get("numpy_version"),
        "python": meta.get("python"),
        "machine": meta.get("machine"),
        "device": meta.get("device"),
        "precision": meta.get("precision"),
        "batch_size": meta.get("batch_size"),
        "forward_passes": meta.get("forward_passes"),
        "images_per_s": _number(meta.get("images_per_s")),
        "wall_s": _number(timings.get("wall")),
        "timings_json": _json(timings),
    }


def record_run(
    result, run_dir: str | os.PathLike, db_path: str | os.PathLike | None = None, *, strict: bool = False
) -> int | None:
    """Record a finished run (a ``Result`` saved in ``run_dir``); returns its row id.

    Returns None when recording is off. A store that cannot be written warns on stderr and
    returns None (the run's own files are what matter) unless ``strict``, which raises.
    """
    if store_path(db_path) is None:
        return None
    row = _row(result, run_dir)
    names = list(row)
    sql = (
        f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
        f"ON CONFLICT(run_dir) DO UPDATE SET {', '.join(f'{n} = excluded.{n}' for n in names if n != 'run_dir')} "
        "RETURNING id"
    )
    try:
        con = connect(db_path)
        try:
            with _Transaction(con):
                return int(con.execute(sql, [row[n] for n in names]).fetchone()[0])
        finally:
            con.close()
    except (sqlite3.Error, OSError, IasideError) as err:
        if strict:
            raise
        warn(f"the run was not recorded in {store_path(db_path)} ({err})")
        return None


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in [k for k in out if k.endswith("_json")]:
        text = out.pop(key)
        out[key.removesuffix("_json")] = json.loads(text) if text is not None else None
    out["exists"] = Path(out["run_dir"]).is_dir()
    return out


def _query(db_path, where: list[str], params: list[Any], order: str) -> Iterator[dict[str, Any]]:
    con = connect(db_path)
    try:
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {order}"
        for row in con.execute(sql, params).fetchall():
            yield _decode(row)
    finally:
        con.close()


def _filters(model: str | None, data: str | None, preset: str | None) -> tuple[list[str], list[Any]]:
    """WHERE clauses: model and data are case-insensitive substrings; preset 'none' = no preset."""
    where, params = [], []
    if model:
        where.append("(model_spec LIKE ? ESCAPE '\\' OR model_fingerprint = ?)")
        params += [f"%{_like(model)}%", model]
    if data:
        where.append("data_spec LIKE ? ESCAPE '\\'")
        params.append(f"%{_like(data)}%")
    if preset:
        if preset.lower() == "none":
            where.append("preset IS NULL")
        else:
            where.append("preset = ?")
            params.append(preset)
    return where, params


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_runs(
    db_path: str | os.PathLike | None = None,
    *,
    model: str | None = None,
    data: str | None = None,
    preset: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Recorded runs, newest (by creation) first, as dicts (JSON columns decoded; ``exists``: the folder is there)."""
    where, params = _filters(model, data, preset)
    rows = list(_query(db_path, where, params, "COALESCE(created, recorded_at) DESC, id DESC"))
    return rows[:limit] if limit else rows


def leaderboard(
    db_path: str | os.PathLike | None = None,
    *,
    model: str | None = None,
    data: str | None = None,
    preset: str | None = None,
    by: str = "score",
) -> list[dict[str, Any]]:
    """Models ranked by ``by`` (score or score_signed, higher = more robust), one board per data
    set and comparable configuration (``COMPARABLE``); the latest run of each model counts.

    Returns [{"key", "config": {...}, "data_spec", "n_images", "rows": [run dicts, best first]}],
    the boards with the most models first.
    """
    if by not in ("score", "score_signed"):
        raise IasideError(f"--by {by!r} is not one of score, score_signed")
    where, params = _filters(model, data, preset)
    boards: dict[str, dict[str, Any]] = {}
    for run in _query(db_path, where, params, "COALESCE(created, recorded_at) DESC, id DESC"):
        board = boards.setdefault(
            run["config_key"],
            {
                "key": run["config_key"],
                "data_spec": run["data_spec"],
                "n_images": run["n_images"],
                "config": {k: run[k] for k in COMPARABLE},
                "data_config": run.get("data_config"),
                "rows": {},
            },
        )
        board["rows"].setdefault((run["model_spec"], run["model_fingerprint"]), run)
    out = []
    for board in boards.values():
        rows = sorted(board["rows"].values(), key=lambda r: -np.inf if r[by] is None else r[by], reverse=True)
        out.append({**board, "rows": rows})
    return sorted(out, key=lambda b: (-len(b["rows"]), b["data_spec"] or ""))
