"""The model call of a run: device and memory layout, precision (autocast), optimisation
(freeze or compile, built on the first batch), the batch-size probe, out-of-memory detection,
and the one check of what the model returns."""
from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
from torch import nn

from ..compiled import CompiledModel
from ..errors import IasideError
from ..log import warn

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
OPTIMIZATIONS = ("none", "freeze", "compile")
"""none: the model as given. freeze: torch.jit.trace + freeze (folds batch norm into the
convolutions, fuses ops), checked against the model as given on the first batch and dropped
with a warning when it differs or cannot be traced. compile: torch.compile with frozen weights
(``compiled.CompiledModel``: batch norm folded with its shift kept in float32, CPU convolution
weights prepacked for oneDNN), at fixed batch shapes: a short batch is padded to the run's
batch size (or to the clean pass's size), so a run compiles once or twice, never once per shape."""


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
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    return torch.bfloat16 if ("avx512_bf16" in flags or "amx_bf16" in flags) else None


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
        if isinstance(out, (tuple, list)):
            out = out[0]
        if hasattr(out, "logits"):
            out = out.logits
        return out


def _freeze(module: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings are answered by the check against eager
        return torch.jit.freeze(torch.jit.trace(module.eval(), example, check_trace=False, strict=False))


class ModelRunner:
    """(B, C, H, W) pixels → (B, K) float32 logits for one run.

    ``compile_sizes()`` names the batch shapes a compiled model runs at (asked on the first
    batch, when the engine knows them). ``forward`` is built on the first batch (tracing needs
    an input); ``optimized_as`` says what the model actually runs as (freeze may fall back).
    """

    def __init__(self, model: nn.Module, *, device: str | torch.device = "cpu", precision: str = "fp32",
                 optimize: str = "none", compile_sizes: Callable[[], tuple[int, ...]] = tuple) -> None:
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.channels_last = any(isinstance(m, nn.Conv2d) for m in self.model.modules())
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if optimize not in OPTIMIZATIONS:
            raise IasideError(f"--optimize {optimize!r} is not one of {', '.join(OPTIMIZATIONS)}")
        self.optimize = optimize
        self.optimized_as = "none"
        self.forward: Callable | None = None
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.compile_sizes = compile_sizes

    @property
    def compile_s(self) -> float:
        """Seconds spent compiling so far (0 unless --optimize compile)."""
        return self.forward.compile_s if isinstance(self.forward, CompiledModel) else 0.0

    def logits(self, images: torch.Tensor, eager: bool = False) -> torch.Tensor:
        """(B, C, H, W) pixels -> (B, K) float32 logits, checked for shape. ``eager``: the model
        without --optimize (the batch-size probe, which must not compile every candidate)."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if eager:
            forward = _Logits(self.model, self.device.type, self.autocast_dtype)
        else:
            if self.forward is None:
                self.forward = self._make_forward(images)
            forward = self.forward
        out = forward(images)
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != images.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise IasideError(
                f"the model returned {shape} for a batch of {images.shape[0]} images; "
                "expected (B, K) logits — wrap it so forward returns class scores"
            )
        return out.float()

    def _make_forward(self, example: torch.Tensor) -> Callable:
        """The callable the run uses, built for ``self.optimize`` on the first batch."""
        eager = _Logits(self.model, self.device.type, self.autocast_dtype)
        if self.optimize == "compile":
            self.optimized_as = "compile"
            return CompiledModel(eager, sizes=self.compile_sizes)
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
