"""The model call of a run: device and memory layout, precision (autocast), optimisation
(freeze or compile, built on the first batch), the batch-size probe, out-of-memory detection,
and the one check of what the model returns."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..compiled import CompiledModel
from ..errors import IasideError
from ..log import note, warn
from ..models.outputs import check_scores, unpack_scores

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
OPTIMIZATIONS = ("none", "freeze", "compile", "auto")
"""none: the model as given. freeze: torch.jit.trace + freeze (folds batch norm into the
convolutions, fuses ops), checked against the model as given on the first batch and dropped
with a warning when it differs or cannot be traced. compile: compiled with frozen weights
(``compiled.CompiledModel``: batch norm folded with its shift kept in float32, CPU convolution
weights prepacked for oneDNN), at fixed batch shapes: a short batch is padded to the run's
batch size (or to the clean pass's size), so a run compiles once or twice, never once per shape;
with the compiled-model cache (``compile_cache``) each shape is compiled once per machine.
auto: compile when the cache holds the model at the run's shapes, or when the run is long
enough for compiling to pay for itself (``ModelRunner.compile_pays``); else the model as given."""

COMPILE_SAVES = {None: 0.36, torch.bfloat16: 0.12, torch.float16: 0.12}
"""Fraction of the model's time that compiling saves, by autocast dtype (EfficientNet-Lite0 on
the development CPU: 19.9 s against 31.1 s in float32, 14.6 s against 16.6 s in bf16;
docs/performance.md, run D)."""
BUILD_S = 90.0
"""Seconds one batch shape takes to compile into the cache when the cache has no build of its
own to go by (EfficientNet-Lite0 at batch 64 on 2 busy cores: 77 s; docs/performance.md)."""


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for a precision name, or None for float32. 'auto' = bf16 where supported."""
    if precision not in PRECISIONS:
        raise IasideError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    flags = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    return torch.bfloat16 if ("avx512_bf16" in flags or "amx_bf16" in flags) else None


def precision_name(dtype: torch.dtype | None) -> str:
    """The precision a run's model actually runs at: 'fp32', 'bf16' or 'fp16'."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def is_oom(err: BaseException) -> bool:
    """Whether an error is the device running out of memory."""
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


class _Logits(nn.Module):
    """The model under the run's autocast, returning its (B, K) class scores."""

    def __init__(self, model: nn.Module, device_type: str, autocast_dtype: torch.dtype | None) -> None:
        super().__init__()
        self.model, self.device_type, self.autocast_dtype = model, device_type, autocast_dtype

    def forward(self, images: torch.Tensor):
        ctx = torch.autocast(self.device_type, dtype=self.autocast_dtype) if self.autocast_dtype else nullcontext()
        with ctx:
            out = self.model(images)
        return unpack_scores(out)


def _freeze(module: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings are answered by the check against eager
        return torch.jit.freeze(torch.jit.trace(module.eval(), example, check_trace=False, strict=False))


@dataclass
class BatchPlan:
    """The batches of a run, known once its first chunk is loaded: images per clean pass,
    coalition images per model batch, and the model passes left."""

    clean: int | None = None
    batch: int | None = None
    passes_left: int = 0

    def sizes(self) -> tuple[int, ...]:
        """The batch shapes a compiled model runs at: the clean pass's and the model batch's."""
        return tuple(sorted({s for s in (self.clean, self.batch) if s}))


class ModelRunner:
    """(B, C, H, W) pixels → (B, K) float32 logits for one run.

    ``plan`` (filled in by the engine before the first batch) names the batch shapes a compiled
    model runs at and the passes left. ``forward`` is built on the first batch (tracing needs
    an input); ``optimized_as`` says what the model actually runs as (freeze may fall back,
    auto may decide not to compile). ``compile_cache``: a ``compile_cache.CompileCache``, or
    None to compile in memory.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        optimize: str = "none",
        compile_cache=None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.channels_last = any(isinstance(m, nn.Conv2d) for m in self.model.modules())
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if optimize not in OPTIMIZATIONS:
            raise IasideError(f"--optimize {optimize!r} is not one of {', '.join(OPTIMIZATIONS)}")
        self.optimize = optimize
        self.optimized_as = "none"
        self.forward: Callable | None = None
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.precision = precision_name(self.autocast_dtype)  # 'auto' resolved
        self.plan = BatchPlan()
        self.compile_cache = compile_cache
        self.compile_decision: str | None = None  # --optimize auto: what it chose and why

    @property
    def compile_s(self) -> float:
        """Seconds spent compiling so far (0 unless the model is compiled)."""
        return self.forward.compile_s if isinstance(self.forward, CompiledModel) else 0.0

    @property
    def load_s(self) -> float:
        """Seconds spent loading compiled models from the cache so far."""
        return self.forward.load_s if isinstance(self.forward, CompiledModel) else 0.0

    def cache_used(self) -> bool:
        f = self.forward
        return isinstance(f, CompiledModel) and (f.cache is not None or bool(f.cache_hits + f.cache_misses))

    def logits(self, images: torch.Tensor, eager: bool = False) -> torch.Tensor:
        """(B, C, H, W) pixels -> (B, K) float32 logits, checked for shape. ``eager``: the model
        without --optimize (the batch-size probe, which must not compile every candidate)."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        forward: Callable
        if eager:
            forward = _Logits(self.model, self.device.type, self.autocast_dtype)
        else:
            if self.forward is None:
                self.forward = self._make_forward(images)
            forward = self.forward
        return check_scores(forward(images), images.shape[0])

    def _make_forward(self, example: torch.Tensor) -> Callable:
        """The callable the run uses, built for ``self.optimize`` on the first batch."""
        eager = _Logits(self.model, self.device.type, self.autocast_dtype)
        if self.optimize == "compile":
            self.optimized_as = "compile"
            return self._compiled(eager)
        if self.optimize == "auto":
            compiled = self._compiled(eager)
            verdict, self.compile_decision = self.compile_pays(compiled, example)
            note(f"--optimize auto: {self.compile_decision}")
            self.optimized_as = "compile" if verdict else "none"
            return compiled if verdict else eager
        if self.optimize == "none":
            return eager
        try:  # freeze: trace at 1 image, check at 3 or more in float32, then trace at the run's precision
            reference = _Logits(self.model, self.device.type, None)
            frozen = _freeze(reference, example[:1])
            check = example if len(example) >= 3 else example.repeat(3, 1, 1, 1)[:3]
            want, got = reference(check), frozen(check)
            if not isinstance(want, torch.Tensor) or not isinstance(got, torch.Tensor):
                raise IasideError(f"the model returned {type(want).__name__}, not a tensor")
            tol = 1e-3 * (1.0 + float(want.abs().max()))
            if got.shape != want.shape or not bool(((got - want).abs() <= tol).all()):
                raise IasideError("the traced model's output differs from the model's (data-dependent control flow?)")
            if self.autocast_dtype is not None:
                frozen = _freeze(eager, example[:1])
        except Exception as err:  # any tracing failure means: run the model as given
            if isinstance(err, RuntimeError) and is_oom(err):
                raise
            warn(f"--optimize freeze does not apply to this model ({str(err).splitlines()[0]}); running it as given")
            return eager
        self.optimized_as = "freeze"
        return frozen

    def _compiled(self, eager: _Logits) -> CompiledModel:
        from ..compile_cache import model_fingerprint

        fingerprint = model_fingerprint(self.model) if self.compile_cache is not None else None
        return CompiledModel(
            eager,
            sizes=self.plan.sizes,
            cache=self.compile_cache,
            fingerprint=fingerprint,
            reduced_precision=self.autocast_dtype is not None,
        )

    def compile_pays(self, compiled: CompiledModel, example: torch.Tensor) -> tuple[bool, str]:
        """--optimize auto: (compile?, the reason in one line). Yes when the cache holds the
        model at every batch shape of the run; else when the model time compiling would save
        (``COMPILE_SAVES`` of the run's passes at the eager speed measured on ``example``)
        exceeds the compiling (the median build in this cache, else ``BUILD_S``, per shape)."""
        c, h, w = example.shape[1:]
        shapes = []
        if self.plan.clean:
            clean = torch.empty((self.plan.clean, c, h, w), device="meta")
            shapes.append(clean.contiguous(memory_format=torch.channels_last) if self.channels_last else clean)
        if self.plan.batch:
            shapes.append(torch.empty((self.plan.batch, h, w, c), device="meta").movedim(-1, 1))
        cache = self.compile_cache
        missing = [s for s in shapes if cache is None or not cache.holds(compiled.key(s, self.device))]
        if cache is not None and not missing:
            return True, f"compiling from the cache in {cache.folder} (it holds this model at the run's batch shapes)"
        self.sync()
        t0 = time.perf_counter()
        compiled.module(example)
        self.sync()
        model_s = self.plan.passes_left * (time.perf_counter() - t0) / len(example)
        saves = COMPILE_SAVES.get(self.autocast_dtype, 0.12) * model_s
        builds = cache.build_seconds() if cache is not None else []
        cost = (float(np.median(builds)) if builds else BUILD_S) * len(missing)
        verdict = saves > cost
        where = "kept in the compiled-model cache for later runs" if cache is not None else "--no-cache: this run only"
        what = "compiling" if verdict else "running the model as given (not compiling)"
        return verdict, (
            f"{what}: compiling would save about {saves:.0f} s of the run's {model_s:.0f} s of model "
            f"time and cost about {cost:.0f} s ({where}); --optimize compile forces it"
        )

    def compile_info(self) -> dict | None:
        """What --optimize compile/auto did: the cache folder (None: compiled in memory), batch
        shapes loaded from the cache and built into it, and --optimize auto's reason."""
        f = self.forward
        if not isinstance(f, CompiledModel) and self.compile_decision is None:
            return None
        info: dict[str, object] = {
            "cache": str(self.compile_cache.folder) if self.compile_cache is not None else None,
            "decision": self.compile_decision,
        }
        if isinstance(f, CompiledModel):
            info.update(cache_hits=f.cache_hits, cache_misses=f.cache_misses, cached=f.cache is not None)
        return info

    @staticmethod
    def check_finite(logits: torch.Tensor, describe: Callable[[int], str]) -> None:
        """Raise naming the image and coalition of the first row with NaN/inf logits."""
        bad = ~torch.isfinite(logits).all(dim=1)
        if bool(bad.any()):
            raise IasideError(
                f"the model returned NaN/inf logits for {describe(int(torch.nonzero(bad)[0]))}; "
                "check the model and its input normalisation (try --precision fp32)"
            )

    @torch.inference_mode()
    def probe_batch_size(self, image_shape: Sequence[int], candidates: Sequence[int] | None = None) -> int:
        """The batch size with the best images/s on random pixels of ``image_shape`` (C, H, W),
        for the model as given (compiling or freezing every candidate would cost more than it saves).

        Grows through ``candidates`` until throughput drops by 10 % or memory runs out.
        """
        if candidates is None:
            candidates = (16, 32, 64, 128) if self.device.type == "cpu" else (32, 64, 128, 256, 512, 1024)
        best, best_rate = candidates[0], 0.0
        for size in candidates:
            x = torch.rand((size, *image_shape), device=self.device)
            try:
                self.logits(x, eager=True)  # warm-up
                self.sync()
                t0 = time.perf_counter()
                for _ in range(2):
                    self.logits(x, eager=True)
                self.sync()
            except RuntimeError as err:
                if not is_oom(err):
                    raise
                break
            rate = 2 * size / (time.perf_counter() - t0)
            if rate > best_rate:
                best, best_rate = size, rate
            elif rate < 0.9 * best_rate:
                break
        return best

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def release_memory(self) -> None:
        """After an out-of-memory error: hand cached blocks back before a smaller batch."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
