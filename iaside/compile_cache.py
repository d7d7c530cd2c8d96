"""Compiled models kept on disk, so a model is compiled once per machine, not once per run.

An entry is an AOTInductor package (``torch.export`` of the model's graph with batch norm
folded by ``compiled.fold_batch_norm``, compiled with frozen weights) for one batch shape,
named by the sha256 of everything that decides the compiled code: the model's weights,
buffers, module tree and class sources, the input shape (B, C, H, W) and memory layout, the
autocast dtype, the fold, the torch version, and the device's capability (CPU instruction
set, or GPU name and compute capability). The folder is ``IASIDE_CACHE``, else
``$XDG_CACHE_HOME/iaside`` or ``~/.cache/iaside``; entries live in its ``compiled/`` folder,
each ``KEY.pt2`` beside a ``KEY.json`` saying what it is and how long it took to build.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .log import note

ENV = "IASIDE_CACHE"
FORMAT = 1
"""Bumped when the way entries are built changes, so older entries are never loaded."""


def cache_root() -> Path:
    """The cache folder: ``IASIDE_CACHE``, else the user's cache folder."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "iaside"


def _sources(module: nn.Module) -> str:
    """sha256 of the source of every class in the module tree (a changed forward is a new model)."""
    h = hashlib.sha256()
    for cls in sorted({type(m) for m in module.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        h.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        try:
            h.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):
            pass  # built-in or generated class: its name and the module tree stand for it
    return h.hexdigest()


def model_fingerprint(module: nn.Module) -> str:
    """sha256 over the weights and buffers, the module tree and its classes' sources."""
    from .models._common import state_fingerprint

    h = hashlib.sha256()
    for part in (state_fingerprint(module), repr(module), _sources(module)):
        h.update(part.encode())
    return h.hexdigest()


def device_capability(device: torch.device) -> str:
    """What the generated code is specialised for: the GPU's name and compute capability, or
    the CPU's instruction set as torch detects it (and its architecture)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        return f"cuda {torch.cuda.get_device_name(index)} sm_{major}{minor} cuda {torch.version.cuda}"
    return f"cpu {platform.machine()} {torch.backends.cpu.get_cpu_capability()}"


def entry_key(fingerprint: str, shape: tuple[int, ...], channels_last: bool, dtype: torch.dtype | None,
              fold: bool, device: torch.device) -> dict[str, Any]:
    """The facts that name a compiled entry (all of them go into its file name's hash)."""
    return {
        "format": FORMAT,
        "model": fingerprint,
        "input_shape": list(shape),
        "channels_last": channels_last,
        "precision": str(dtype).replace("torch.", "") if dtype is not None else "float32",
        "fold_batch_norm": fold,
        "torch": torch.__version__,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "device": device_capability(device),
    }


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


class CompileCache:
    """The ``compiled/`` folder of a cache root: ``load`` an entry, ``build`` a missing one."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()
        self.folder = self.root / "compiled"

    def path(self, key: dict[str, Any]) -> Path:
        return self.folder / f"{_digest(key)}.pt2"

    def holds(self, key: dict[str, Any]) -> bool:
        return self.path(key).is_file()

    def load(self, key: dict[str, Any]) -> Callable | None:
        """The entry's compiled model, or None when there is none; an unreadable entry is
        removed with a one-line note (the caller builds it again)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            from contextlib import nullcontext
            from unittest import mock

            import torch._inductor.codecache as codecache
            from torch._inductor import aoti_load_package

            # AOTInductor compares the package's device with this one, for a warning only, and to
            # learn the CPU's vector ISA it compiles and dlopens probe programs in child Pythons:
            # seconds once per process. The key already names the device's capability.
            skip_probe = (mock.patch.object(codecache, "get_device_information", lambda device: {})
                          if hasattr(codecache, "get_device_information") else nullcontext())
            with skip_probe:
                return aoti_load_package(str(path))
        except Exception as err:  # noqa: BLE001 - a damaged file of any kind is rebuilt
            note(f"compiled-model cache entry {path} is unreadable ({type(err).__name__}: "
                 f"{str(err).splitlines()[0] if str(err) else ''}); compiling it again")
            self.remove(key)
            return None

    def remove(self, key: dict[str, Any]) -> None:
        path = self.path(key)
        for p in (path, path.with_suffix(".json")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def build(self, key: dict[str, Any], module: nn.Module, example: torch.Tensor, fold: bool) -> tuple[Callable, int]:
        """Compile ``module`` at ``example``'s shape into the entry for ``key`` (written
        atomically: a killed build leaves no entry) and load it; returns (model, batch norms folded)."""
        from torch._inductor import aoti_compile_and_package

        from .compiled import export_folded

        t0 = time.perf_counter()
        program, folded = export_folded(module, example, fold)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".build-", suffix=".pt2")
        os.close(fd)
        try:
            aoti_compile_and_package(program, package_path=tmp, inductor_configs={"freezing": True})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        info = {**key, "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "build_s": round(time.perf_counter() - t0, 2),
                "batch_norms_folded": folded}
        path.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
        loaded = self.load(key)
        if loaded is None:
            raise RuntimeError(f"the compiled model just written to {path} cannot be loaded")
        return loaded, folded

    def build_seconds(self) -> list[float]:
        """Seconds the entries in this cache took to build (for the compile-or-not estimate)."""
        out = []
        for info in self.folder.glob("*.json"):
            try:
                out.append(float(json.loads(info.read_text())["build_s"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return out
