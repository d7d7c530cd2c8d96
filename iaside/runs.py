"""Run folders: who owns one, what it holds, how it is written and resumed.

A run folder (``--out``) holds ``run.json`` (the run's identity and description), its saved
state (``state.npz``, or ``state-shard{i}of{n}.npz`` per shard), ``result.json``,
``per_image.npz`` and ``sid.png``. Three rules keep it consistent whatever else runs:

- **One owner.** ``owner(folder)`` takes an OS file lock (``flock`` on ``folder/.lock``) that
  the kernel drops when the process ends, however it ends; a second process is refused in one
  line naming the holder's PID and command. Shards of one run share a folder (a shared lock,
  plus an exclusive one per shard); a whole run, a merge or a save needs it alone. Within a
  process the lock is re-entrant (``explain`` holds it while ``Result.save`` asks again).
- **One identity.** ``open_run`` publishes ``run.json`` only where there is none (an atomic
  create-if-absent), refuses a folder that holds another configuration naming the
  difference, and refuses a saved state without its ``run.json`` rather than start over.
- **Atomic files.** ``atomic_write`` writes a uniquely named temporary file in the same
  folder, fsyncs it and renames it over the target: a reader sees the old file or the new
  one, never a mixture, and two writers never share a temporary file.

``stop_on_signals`` turns SIGTERM and SIGHUP (what ``kill``, Slurm and docker send) into
``Stopped``, an interruption the engine answers like Ctrl-C: it checkpoints, then the command
prints how to resume.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import IasideError
from .validate import read_run_info

RUN_JSON = "run.json"
STATE_NPZ = "state.npz"
LOCK_FILE = ".lock"


# ---- atomic writes -------------------------------------------------------------------------


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[Any], None]) -> Path:
    """Replace ``path`` with ``data`` (bytes, text as UTF-8, or ``write(binary_file)``) atomically.

    The temporary file is unique (``mkstemp`` in the target's folder), fsynced, then renamed;
    if anything fails (a full disk, a signal) it is removed and the old file stays.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, json.dumps(obj, indent=1, allow_nan=True))


def checked_write(what: str, path: Path, write: Callable[[], Any]) -> None:
    """Run ``write()``; a failing disk becomes a one-line error that names the file."""
    try:
        write()
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):  # another cause: name the file that refused
            raise IasideError(
                f"cannot write {what}: {err.filename2 or err.filename or path} ({err.strerror or err}); "
                f"the last checkpoint in {path.parent} is kept: move that path out of the way (or choose another "
                "--out) and rerun"
            ) from err
        raise IasideError(
            f"cannot write {what} {path} ({err.strerror or err}); the last checkpoint in {path.parent} is kept: "
            "free some space (or choose another --out) and rerun the same command"
        ) from err


def _create_if_absent(path: Path, text: str) -> bool:
    """Write ``path`` only if it does not exist, atomically (a hard link of a complete temporary
    file cannot overwrite); False when another process was first."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive creation, then the content
            try:
                with open(path, "xb") as fh:
                    fh.write(text.encode("utf-8"))
            except FileExistsError:
                return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


# ---- one owner per folder ------------------------------------------------------------------

_held: dict[str, list[int]] = {}  # real path of a lock file held by this process -> [depth, descriptor]
_held_lock = threading.Lock()


def command_line() -> str:
    """This process's command, as a person would type it (``iaside run ...``)."""
    argv = list(sys.argv) or ["python"]
    head = Path(argv[0]).name
    if head == "__main__.py":  # python -m PACKAGE
        package = Path(argv[0]).parent.name
        head = "iaside" if package == "iaside" else f"python -m {package}"
    text = " ".join(shlex.quote(a) for a in [head, *argv[1:]])
    return text if len(text) <= 300 else text[:297] + "..."


def _holder(path: Path) -> str:
    """Who holds the lock file ``path`` as they wrote themselves there (shards: in their own
    ``.lock-shard*`` files), retrying while a new owner is still writing."""
    import time

    def text(p: Path) -> str:
        try:
            return " ".join(p.read_text(errors="replace").split())
        except OSError:
            return ""

    for _ in range(20):
        shards = sorted(path.parent.glob(LOCK_FILE + "-shard*")) if path.name == LOCK_FILE else []
        found = [t for t in map(text, [path, *shards]) if t]
        if found:
            return "; ".join(found)
        time.sleep(0.05)
    return "PID unknown"


def _lock_file(path: Path, shared: bool, folder: Path) -> bool:
    """flock ``path`` (created if needed); False when this process already held it."""
    import fcntl

    key = os.path.realpath(path)
    with _held_lock:  # threads of one process share its locks
        if key in _held:
            _held[key][0] += 1
            return False
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise IasideError(
                    f"{folder} is in use by another iaside process ({_holder(path)}); wait for it to end, "
                    "or choose another --out"
                ) from None
            except OSError:
                os.close(fd)
                raise
            try:  # a releasing owner may have removed the file: hold the one that is on disk
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)  # shared holders name themselves in their shard's own lock file
        if not shared:
            os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()}: {command_line()}\n".encode(), 0)
        _held[key] = [1, fd]
        return True


def _unlock_file(path: Path, remove: bool) -> None:
    key = os.path.realpath(path)
    with _held_lock:
        _held[key][0] -= 1
        if _held[key][0] > 0:
            return
        fd = _held.pop(key)[1]
        if remove:  # still holding the lock, so no one else can be writing it
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        os.close(fd)


@contextlib.contextmanager
def owner(folder: str | os.PathLike, shard: tuple[int, int] | None = None) -> Iterator[Path]:
    """Own ``folder`` for the duration (created if needed): an exclusive ``flock`` on
    ``folder/.lock``, or for shard i of n a shared one plus an exclusive one on
    ``.lock-shard{i}of{n}``. Refuses, in one line naming the holder, when another process owns it.
    The lock dies with the process; the file is removed on a clean release. A sole owner
    removes the temporary files that writers killed mid-save left."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise IasideError(f"cannot write to the output folder {folder} ({err.strerror}); choose another --out") from err
    path = folder / LOCK_FILE
    try:
        first = _lock_file(path, shard is not None, folder)
    except OSError as err:
        raise IasideError(f"cannot write to the output folder {folder} ({err.strerror}); choose another --out") from err
    if first and shard is None:  # the sole owner: temporary files of killed writers go
        with _held_lock:  # unless a thread of this process has entered since and may be writing one
            if _held[os.path.realpath(path)][0] == 1:
                for stale in folder.glob(".tmp-*.part"):
                    with contextlib.suppress(OSError):
                        stale.unlink()
    try:
        if shard is None:
            yield folder
        else:
            shard_path = folder / f"{LOCK_FILE}-shard{shard[0]}of{shard[1]}"
            _lock_file(shard_path, False, folder)
            try:
                yield folder
            finally:
                _unlock_file(shard_path, remove=True)
    finally:
        _unlock_file(path, remove=shard is None)


@contextlib.contextmanager
def run_owner(out: str | os.PathLike | None, shard: tuple[int, int] | None = None) -> Iterator[None]:
    """Own ``out`` (when given) for the duration of a run (``owner``); under torchrun rank 0
    owns the folder for every rank, and the other ranks take no lock."""
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if out is None or (world > 1 and rank != 0):
        yield
        return
    with owner(out, None if world > 1 else shard):
        yield


# ---- identity, resume ----------------------------------------------------------------------


def state_file(shard: tuple[int, int] | None) -> str:
    """The state file of a whole run, or of shard i of n (shards and ranks may share a folder)."""
    return STATE_NPZ if shard is None else f"state-shard{shard[0]}of{shard[1]}.npz"


def skips_file(state: str | os.PathLike) -> Path:
    """Beside a shard's state file: {image name: why it was skipped}, which the state (numbers
    only) cannot hold and ``iaside merge`` puts back into the merged result."""
    state = Path(state)
    return state.with_name(state.stem + ".skips.json")


def run_identity(config, loaded, dataset, precision: str) -> dict[str, Any]:
    """What must match for saved states to be resumed or merged (not the shard, not the batch size)."""
    return {
        "config": config.to_dict(),
        "model": {"spec": loaded.spec, "fingerprint": loaded.fingerprint},
        "data": {"fingerprint": dataset.fingerprint(), "n_images": len(dataset)},
        "data_config": loaded.data_config.to_dict(),
        "precision": precision,
    }


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """'key.path: old -> new' for every leaf that differs between two nested dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _normalised(identity: dict) -> dict:
    """An identity as this version reads it (configurations saved before a field existed)."""
    from .config import ExplainConfig

    identity = dict(identity)
    if isinstance(identity.get("config"), dict):
        identity["config"] = ExplainConfig.from_dict(identity["config"]).to_dict()
    return identity


def saved_states(folder: Path) -> list[Path]:
    """The state files in ``folder`` (whole run first, then shards)."""
    return [p for p in [folder / STATE_NPZ, *sorted(folder.glob("state-shard*.npz"))] if p.exists()]


def claim(folder: Path, run_info: dict[str, Any]) -> bool:
    """Make ``folder`` this run's: publish ``run.json`` where there is none (True), or check the
    one there against ``run_info`` (False); refuses another configuration, naming the
    difference, and a saved state or result without its ``run.json``."""
    run_file = folder / RUN_JSON
    if not run_file.exists():
        orphans = [p.name for p in saved_states(folder) + [folder / "result.json"] if p.exists()]
        if orphans:
            raise IasideError(
                f"{folder} holds {', '.join(orphans)} but no {RUN_JSON}, so it cannot be checked against this run: "
                f"restore {RUN_JSON} to resume, delete {' and '.join(orphans)} to start over, or choose another --out"
            )
        text = json.dumps(run_info, indent=1)
        if _publish(run_file, text):
            return True
    old = read_run_info(run_file)
    diff = differences(_normalised(old["identity"]), _normalised(run_info["identity"]))
    if diff:
        raise IasideError(
            f"{folder} holds a run with a different configuration ({'; '.join(diff[:4])}); "
            "use another --out or delete the folder"
        )
    return False


def _publish(path: Path, text: str) -> bool:
    """``run.json`` created if absent (False: another process was first); a full disk in one line."""
    created = []
    checked_write("the run description", path, lambda: created.append(_create_if_absent(path, text)))
    return created[0]


def open_run(folder: Path, run_info: dict[str, Any], shard: tuple[int, int] | None, n_images: int, n_coalitions: int):
    """Check ``folder`` against this run (see ``claim``); the saved ``EngineState`` to resume, if any."""
    from .engine import EngineState

    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise IasideError(f"cannot write to the output folder {folder} ({err.strerror}); choose another --out") from err
    if claim(folder, run_info):
        return None
    path = folder / state_file(shard)
    if path.exists():
        state = EngineState.load(path)
        if state.logp_nats.shape == (n_images, n_coalitions):
            return state
    return None


# ---- signals -------------------------------------------------------------------------------


class Stopped(KeyboardInterrupt):
    """The process was asked to end (SIGTERM, SIGHUP); ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """While inside, the first of ``signals`` raises ``Stopped`` (the engine then checkpoints,
    as for Ctrl-C); later ones are ignored so that the checkpoint completes. Main thread only
    (elsewhere a no-op); the previous handlers come back on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum, frame):
        if not received:
            received.append(signum)
            raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
