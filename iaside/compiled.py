"""``--optimize compile``: the model through torch.compile with frozen weights.

Inductor's freezing turns the weights into constants, folds batch norm into the convolutions
and prepacks their weights (oneDNN on CPU). Under bf16 autocast its folding rounds the folded
bias to bf16, where eager bf16 applies the batch norm's shift in float32, and the answer drifts
(EfficientNet-Lite0: mean |Δ log p(y)| 0.091 from float32 against 0.050 for eager bf16 and
0.056 with this module's fold; ``benchmarks/bf16_drift.py``). So the graph
reaches inductor with every (conv2d -> batch_norm) pair already folded: the scale goes into the
convolution's weight (folded in float32, rounded once), the shift is added in float32 after it.
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
    ``conv2d(x, w * s, None).float() + (beta - mean * s + b * s)``, s = gamma / sqrt(var + eps),
    where the convolution has no other user. The weight arithmetic stays in the graph (on
    parameters only, so freezing folds it to constants in float32). Returns how many were folded.
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
            out = op(operator.add, graph.call_method("float", (out,)),
                     graph.call_method("reshape", (shift, (1, -1, 1, 1))))
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


class CompiledModel:
    """``module`` through ``torch.compile`` (batch norm folded by :func:`fold_batch_norm`,
    then inductor with freezing: an inference run never changes the weights), static shapes.
    ``compile_s``: seconds spent in first calls at a new shape (compiling, plus one pass);
    ``batch_norms_folded``: pairs folded over all compiled graphs. ``fold=False`` leaves the
    folding to inductor (for comparison: its folded bias is rounded to bf16 under autocast).
    ``sizes()``: the batch sizes to compile; a shorter batch is padded (repeating its last
    image) to the smallest that holds it and the padding rows are dropped from the output, so
    a run compiles one graph per size, not one per batch shape."""

    def __init__(self, module: nn.Module, fold: bool = True,
                 sizes: Callable[[], Sequence[int]] = tuple) -> None:
        # dynamo caches compiled graphs on the code object it runs, at most 8 per code object
        # for the whole process: a code object of its own per engine keeps one engine's shapes
        # from crowding out the next's (and frees the graphs with the engine)
        fresh = types.FunctionType(_call_model.__code__.replace(), _call_model.__globals__, "iaside_model")
        self.module = module
        self.compiled = torch.compile(fresh, backend=self._backend, dynamic=False)
        self.shapes: set[tuple[int, ...]] = set()
        self.compile_s = 0.0
        self.batch_norms_folded = 0
        self.fold, self.sizes = fold, sizes

    def _backend(self, gm: fx.GraphModule, example_inputs):
        from torch._inductor.compile_fx import compile_fx

        if self.fold:
            self.batch_norms_folded += fold_batch_norm(gm)
        return compile_fx(gm, example_inputs)

    def __call__(self, images: torch.Tensor):
        """(B, ...) -> the module's (B, K) output."""
        import torch._inductor.config as inductor_config

        n = images.shape[0]
        size = min((s for s in self.sizes() if s >= n), default=n)
        if size > n:
            layout = torch.channels_last if images.dim() == 4 and images.is_contiguous(
                memory_format=torch.channels_last) else torch.contiguous_format
            images = torch.cat([images, images[-1:].expand(size - n, *images.shape[1:])])
            images = images.contiguous(memory_format=layout)  # the layout the graph was compiled for
        new = tuple(images.shape) not in self.shapes
        t0 = time.perf_counter()
        with inductor_config.patch(freezing=True):
            out = self.compiled(self.module, images)
        if new:
            if images.is_cuda:
                torch.cuda.synchronize(images.device)
            self.shapes.add(tuple(images.shape))
            self.compile_s += time.perf_counter() - t0
        return out[:n] if size > n and isinstance(out, torch.Tensor) else out
