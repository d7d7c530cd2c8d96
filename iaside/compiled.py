"""``--optimize compile``: the model through torch.compile with frozen weights.

Inductor's freezing turns the weights into constants, folds batch norm into the convolutions
and prepacks their weights (oneDNN on CPU). Under bf16 autocast its folding rounds the folded
bias to bf16, where eager bf16 applies the batch norm's shift in float32, and the answer drifts
(EfficientNet-Lite0: mean |Δ log p(y)| 0.091 from float32 against 0.050 for eager bf16 and
0.056 with this module's fold; ``benchmarks/bf16_drift.py``). So the graph
reaches inductor with every (conv2d -> batch_norm) pair already folded: the scale goes into the
convolution's weight (folded in float32, rounded once), the shift is added in float32 after it.

With a ``compile_cache.CompileCache`` the compiled model of each batch shape is an AOTInductor
package kept on disk (built from the same folded graph), so later runs, in any process, load it
instead of compiling; without one, torch.compile compiles in memory for this run.
"""
from __future__ import annotations

import inspect
import operator
import time
import types
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONV_DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
_BATCH_NORM = inspect.signature(F.batch_norm)


def fold_batch_norm(gm: fx.GraphModule) -> int:
    """Rewrite ``batch_norm(conv2d(x, w, b), mean, var, gamma, beta)`` in eval mode as
    ``conv2d(x, w * s, None) + (beta - mean * s + b * s)``, s = gamma / sqrt(var + eps), where
    the convolution has no other user; the float32 shift promotes the sum to float32 under
    autocast. The weight arithmetic stays in the graph (on parameters only, so freezing folds it
    to constants in float32). Returns how many were folded.
    """
    graph, folded = gm.graph, 0
    for bn in list(graph.nodes):
        if bn.op != "call_function" or bn.target is not F.batch_norm:
            continue
        bound = _BATCH_NORM.bind(*bn.args, **bn.kwargs)
        bound.apply_defaults()
        a = bound.arguments
        conv = a["input"]
        if (a["training"] is not False or a["running_mean"] is None or a["running_var"] is None
                or not isinstance(conv, fx.Node) or conv.op != "call_function"
                or conv.target not in (torch.conv2d, F.conv2d) or len(conv.users) != 1):
            continue
        c = dict(_CONV_DEFAULTS)
        c.update(zip(_CONV_ARGS, conv.args))
        c.update(conv.kwargs)
        with graph.inserting_before(bn):
            def op(fn, *args):
                return graph.call_function(fn, args)

            scale = op(torch.rsqrt, op(operator.add, a["running_var"], a["eps"]))  # (C,)
            if a["weight"] is not None:
                scale = op(operator.mul, scale, a["weight"])
            shift = op(operator.neg, op(operator.mul, a["running_mean"], scale))
            if a["bias"] is not None:
                shift = op(operator.add, shift, a["bias"])
            if c["bias"] is not None:
                shift = op(operator.add, shift, op(operator.mul, c["bias"], scale))
            weight = op(operator.mul, c["weight"], graph.call_method("reshape", (scale, (-1, 1, 1, 1))))
            out = op(torch.conv2d, c["input"], weight, None, c["stride"], c["padding"], c["dilation"], c["groups"])
            out = op(operator.add, out, graph.call_method("reshape", (shift, (1, -1, 1, 1))))
        bn.replace_all_uses_with(out)
        graph.erase_node(bn)
        graph.erase_node(conv)
        folded += 1
    if folded:
        graph.lint()
        gm.recompile()
    return folded


def _call_model(module: nn.Module, images: torch.Tensor):
    return module(images)


def export_folded(module: nn.Module, example: torch.Tensor, fold: bool = True):
    """(``torch.export`` program of ``module`` at ``example``'s shape, batch norms folded): the
    graph dynamo captures (as torch.compile would), folded by :func:`fold_batch_norm`, exported."""
    with torch.inference_mode(False), torch.no_grad():
        x = example.clone()  # a normal tensor: export refuses inference tensors
        gm, _ = torch._dynamo.export(module)(x)
        folded = fold_batch_norm(gm) if fold else 0
        return torch.export.export(gm, (x,)), folded


def agrees(got: torch.Tensor, want: torch.Tensor, reduced_precision: bool) -> bool:
    """Whether a compiled model's (B, K) output is the model's: relative L2 distance at most
    1e-3 in float32, 0.25 under bf16/fp16 autocast (where compiled and eager round differently:
    0.07 for EfficientNet-Lite0 on random pixels), against about 1.4 for an unrelated model."""
    got, want = got.float(), want.float()
    if got.shape != want.shape or not bool(torch.isfinite(got).all()):
        return False
    tol = 0.25 if reduced_precision else 1e-3
    return float((got - want).norm()) <= tol * float(want.norm()) + 1e-6


class CompiledModel:
    """``module`` compiled with batch norm folded by :func:`fold_batch_norm` and frozen weights
    (an inference run never changes them), at static shapes.

    With ``cache`` (a ``compile_cache.CompileCache``; ``fingerprint``: the model's, from
    ``compile_cache.model_fingerprint``) each batch shape's compiled model is loaded from the
    cache or built into it (AOTInductor), and checked against ``module`` on its first batch: an
    entry that disagrees is removed and built again, with a one-line note. A model that cannot be
    exported is compiled by torch.compile for this run only, also with a note. Without ``cache``,
    torch.compile compiles in memory.
    ``compile_s``: seconds compiling (first calls at a new shape, plus one pass);
    ``load_s``: seconds loading cache entries (the package alone; its first pass is model
    time, the eager pass it is checked against is not counted); ``cache_hits`` /
    ``cache_misses``: shapes loaded / built; ``batch_norms_folded``: pairs folded over all
    compiled graphs (0 for a shape loaded from the cache). ``fold=False`` leaves the folding to
    inductor (for comparison: its folded bias is rounded to bf16 under autocast).
    ``sizes()``: the batch sizes to compile; a shorter batch is padded (repeating its last
    image) to the smallest that holds it and the padding rows are dropped from the output, so
    a run compiles one graph per size, not one per batch shape."""

    def __init__(self, module: nn.Module, fold: bool = True, sizes: Callable[[], Sequence[int]] = tuple,
                 cache=None, fingerprint: str | None = None, reduced_precision: bool = False) -> None:
        self.module = module
        self.shapes: set[tuple[int, ...]] = set()
        self.compile_s = self.load_s = 0.0
        self.cache_hits = self.cache_misses = 0
        self.batch_norms_folded = 0
        self.fold, self.sizes = fold, sizes
        self.cache, self.fingerprint, self.reduced_precision = cache, fingerprint, reduced_precision
        self._runners: dict[tuple[int, ...], Callable] = {}
        self.compiled = None

    def _backend(self, gm: fx.GraphModule, example_inputs):
        from torch._inductor.compile_fx import compile_fx

        if self.fold:
            self.batch_norms_folded += fold_batch_norm(gm)
        return compile_fx(gm, example_inputs)

    def _in_memory(self, images: torch.Tensor):
        import torch._inductor.config as inductor_config

        if self.compiled is None:
            # dynamo caches compiled graphs on the code object it runs, at most 8 per code object
            # for the whole process: a code object of its own per model keeps one engine's shapes
            # from crowding out the next's (and frees the graphs with the engine)
            fresh = types.FunctionType(_call_model.__code__.replace(), _call_model.__globals__, "iaside_model")
            self.compiled = torch.compile(fresh, backend=self._backend, dynamic=False)
        with inductor_config.patch(freezing=True):
            return self.compiled(self.module, images)

    def key(self, images: torch.Tensor, device: torch.device | None = None) -> dict:
        """The cache key of ``images``' shape and layout for this model (``images`` may be on
        the meta device, with the run's ``device`` given)."""
        from .compile_cache import entry_key

        channels_last = images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last)
        dtype = getattr(self.module, "autocast_dtype", None)
        return entry_key(self.fingerprint, tuple(images.shape), channels_last, dtype, self.fold,
                         device or images.device)

    def _from_cache(self, images: torch.Tensor) -> tuple[Callable, torch.Tensor]:
        """The shape's compiled model (loaded, else built) and its output on ``images``."""
        from .log import note

        key = self.key(images)
        want = self.module(images)
        t0 = time.perf_counter()
        runner = self.cache.load(key)
        self.load_s += time.perf_counter() - t0
        if runner is not None:
            out = runner(images)
            if agrees(out, want, self.reduced_precision):
                self.cache_hits += 1
                return runner, out
            note(f"compiled-model cache entry {self.cache.path(key)} does not give this model's output; "
                 "compiling it again")
            self.cache.remove(key)
        t0 = time.perf_counter()
        try:
            runner, folded = self.cache.build(key, self.module, images, self.fold)
        except Exception as err:  # noqa: BLE001 - any export failure: compile for this run only
            from .engine import _is_oom

            if _is_oom(err):
                raise
            note(f"this model cannot be exported for the compiled-model cache ({type(err).__name__}: "
                 f"{str(err).splitlines()[0] if str(err) else ''}); compiling it for this run only")
            self.cache = None
            return self._in_memory, self._in_memory(images)
        out = runner(images)
        self.compile_s += time.perf_counter() - t0
        self.cache_misses += 1
        self.batch_norms_folded += folded
        if not agrees(out, want, self.reduced_precision):
            self.cache.remove(key)
            raise RuntimeError("the compiled model's output differs from the model's")
        return runner, out

    def __call__(self, images: torch.Tensor):
        """(B, ...) -> the module's (B, K) output."""
        n = images.shape[0]
        size = min((s for s in self.sizes() if s >= n), default=n)
        if size > n:
            layout = torch.channels_last if images.dim() == 4 and images.is_contiguous(
                memory_format=torch.channels_last) else torch.contiguous_format
            images = torch.cat([images, images[-1:].expand(size - n, *images.shape[1:])])
            images = images.contiguous(memory_format=layout)  # the layout the graph was compiled for
        shape = tuple(images.shape)
        runner = self._runners.get(shape)
        if runner is not None:
            out = runner(images)
        elif self.cache is not None:
            runner, out = self._from_cache(images)
        else:
            runner = self._in_memory
            t0 = time.perf_counter()
            out = runner(images)
            if images.is_cuda:
                torch.cuda.synchronize(images.device)
            self.compile_s += time.perf_counter() - t0
        if shape not in self._runners:
            self._runners[shape] = runner
            self.shapes.add(shape)
        return out[:n] if size > n and isinstance(out, torch.Tensor) else out
