"""The logic of the speed features, checked on CPU (no timing assertions)."""

import numpy as np
import pytest
import torch
from conftest import tiny_cnn
from torch import nn

import iaside
from iaside.coalitions import CoalitionSynthesizer
from iaside.data.tensors import TensorImages
from iaside.engine import Engine, resolve_precision
from iaside.fills import make_fill
from iaside.game import coalition_bits
from iaside.spectral import band_masks


def images(n=5, size=32):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=g), torch.arange(n) % 5


class OutOfMemoryAbove(nn.Module):
    """Raises the out-of-memory error a GPU raises when a batch is larger than ``limit``."""

    def __init__(self, limit: int):
        super().__init__()
        self.net, self.limit, self.sizes = tiny_cnn(), limit, []

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.sizes.append(x.shape[0])
        return self.net(x)


def test_out_of_memory_halves_the_batch_and_keeps_every_number():
    x, y = images()
    reference = iaside.explain(tiny_cnn(), (x, y), bands=3, show_progress=False, n_bootstrap=0, batch_size=16)
    model = OutOfMemoryAbove(limit=5)
    engine = Engine(
        model, CoalitionSynthesizer(band_masks(32, 32, 3)), make_fill("partner"), batch_size=16, show_progress=False
    )
    state, _ = engine.run(TensorImages(x, y))
    assert engine.batch_size <= 5 and max(model.sizes) <= 5
    assert np.allclose(
        state.logp_nats, reference.per_image["logp_nats"][np.argsort(reference.per_image["index"])], atol=1e-5
    )


def test_other_runtime_errors_are_not_swallowed():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    engine = Engine(Broken(), CoalitionSynthesizer(band_masks(32, 32, 3)), make_fill("zero"), show_progress=False)
    with pytest.raises(RuntimeError, match="mat1"):
        engine.run(TensorImages(*images()))


def test_batch_size_probe_picks_a_candidate_and_backs_off_on_oom():
    engine = Engine(tiny_cnn(), CoalitionSynthesizer(band_masks(32, 32, 3)), make_fill("zero"), show_progress=False)
    assert engine.probe_batch_size((3, 32, 32), candidates=(4, 8, 16)) in (4, 8, 16)
    limited = Engine(
        OutOfMemoryAbove(8), CoalitionSynthesizer(band_masks(32, 32, 3)), make_fill("zero"), show_progress=False
    )
    assert limited.probe_batch_size((3, 32, 32), candidates=(4, 8, 16, 32)) in (4, 8)
    r = iaside.explain(tiny_cnn(), images(), bands=3, show_progress=False, n_bootstrap=0, batch_size="auto")
    assert r.meta["batch_size"] in (16, 32, 64, 128)


@pytest.mark.parametrize("fill,synthesis", [("zero", "sum"), ("mean", "sum"), ("partner", "sum"), ("partner", "paper")])
def test_reused_coalitions_equal_evaluated_ones(fill, synthesis):
    """Reuse (clean = grand coalition, shared or partner empty coalition) changes no number:
    compare with the same coalitions listed in an order that disables every reuse."""
    x, y = images(6)
    masks = band_masks(32, 32, 3, "square" if synthesis == "paper" else "linf")
    bits = coalition_bits(3)
    reorder = np.r_[1:8, 0]  # the empty coalition last: no reuse applies
    runs = []
    for order in (np.arange(8), reorder):
        engine = Engine(
            tiny_cnn(),
            CoalitionSynthesizer(masks, synthesis),
            make_fill(fill),
            coalitions=bits[order],
            batch_size=7,
            show_progress=False,
        )
        state, stats = engine.run(TensorImages(x, y))
        runs.append((state.logp_nats[:, np.argsort(order)], stats))
    (reused, s1), (plain, s2) = runs
    assert s2.reused == 0 and s1.reused > 0 and s1.passes < s2.passes
    assert np.allclose(reused, plain, atol=2e-5)


def test_precision_names():
    assert resolve_precision("fp32", torch.device("cpu")) is None
    assert resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16
    assert resolve_precision("auto", torch.device("cpu")) in (None, torch.bfloat16)
    with pytest.raises(iaside.IasideError, match="precision"):
        resolve_precision("int8", torch.device("cpu"))


class ShapeDependent(nn.Module):
    """Branches in Python on its input (the batch size): a trace records one branch only, so
    freezing must be refused."""

    def __init__(self):
        super().__init__()
        self.net = tiny_cnn()

    def forward(self, x):
        out = self.net(x)
        return out if x.shape[0] <= 2 else -out


def run_with(model, optimize, precision="fp32", n=5):
    x, y = images(n)
    engine = Engine(
        model,
        CoalitionSynthesizer(band_masks(32, 32, 3)),
        make_fill("partner", 0),
        batch_size=7,
        optimize=optimize,
        precision=precision,
        show_progress=False,
    )
    state, _ = engine.run(TensorImages(x, y))
    return engine, state


def batch_norm_net() -> nn.Module:
    """conv -> batch norm -> ReLU -> pool -> linear, batch norm with non-trivial statistics (so
    folding it changes the graph)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_freeze_gives_the_same_numbers_as_the_model(precision):
    net = batch_norm_net()
    _, plain = run_with(net, "none", precision)
    engine, frozen = run_with(net, "freeze", precision)
    assert engine.optimized_as == "freeze"
    assert isinstance(engine.forward, torch.jit.ScriptModule)
    tol = 1e-4 if precision == "fp32" else 0.05
    assert np.abs(frozen.logp_nats - plain.logp_nats).max() < tol
    assert frozen.done.all()


def test_compile_runs_at_two_fixed_shapes_and_gives_the_same_numbers():
    """--optimize compile (inductor, frozen weights): short batches are padded to the clean
    pass's size (4 images) or the model batch (7), so at most two shapes are compiled, and the
    padding rows never reach the results."""
    from iaside.compiled import CompiledModel

    net = batch_norm_net()
    _, plain = run_with(net, "none")
    x, y = images(5)
    engine = Engine(
        net,
        CoalitionSynthesizer(band_masks(32, 32, 3)),
        make_fill("partner", 0),
        batch_size=7,
        optimize="compile",
        show_progress=False,
    )
    compiled, stats = engine.run(TensorImages(x, y))
    assert engine.optimized_as == "compile" and isinstance(engine.forward, CompiledModel)
    # clean passes of 4 and 1 (padded to 4) images; 5 images x 8 coalitions less reuse is not a multiple of 7
    assert {shape[0] for shape in engine.forward.shapes} == {4, 7}
    assert stats.passes == 5 * 8 - stats.reused and stats.passes % 7 != 0
    assert stats.seconds["compile"] > 0
    assert engine.forward.batch_norms_folded == 2  # the one (conv, batch norm) pair, in each shape's graph
    assert compiled.done.all()
    assert np.abs(compiled.logp_nats - plain.logp_nats).max() < 1e-4


def test_compile_under_bf16_stays_close_to_bf16():
    net = batch_norm_net()
    _, plain = run_with(net, "none", "bf16")
    engine, compiled = run_with(net, "compile", "bf16")
    assert engine.optimized_as == "compile" and engine.forward.batch_norms_folded == 2
    assert np.abs(compiled.logp_nats - plain.logp_nats).max() < 0.05


class ConvBatchNorms(nn.Module):
    """conv1 -> bn1 can be folded; conv2's output also feeds a residual sum, so bn2 cannot."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4, affine=False)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        y = self.conv2(h)
        return (self.bn2(y) + y).mean(dim=(2, 3))


def test_fold_batch_norm_folds_eval_pairs_whose_convolution_has_no_other_user():
    from iaside.compiled import fold_batch_norm

    torch.manual_seed(0)
    net = ConvBatchNorms().eval()
    with torch.no_grad():
        for bn in (net.bn1, net.bn2):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.2, 3.0)
        net.bn1.weight.uniform_(0.5, 2.0)
        net.bn1.bias.uniform_(-1, 1)
    folded = []

    def capture(gm, example_inputs):
        folded.append(fold_batch_norm(gm))
        return gm.forward

    x = torch.rand(2, 3, 8, 8)
    with torch.inference_mode():
        want = net(x)
        got = torch.compile(net, backend=capture)(x)
    assert folded == [1]
    assert torch.allclose(got, want, atol=1e-5)


def test_every_compiled_engine_of_a_process_is_compiled():
    """dynamo keeps at most 8 graphs per code object: engines after the fourth (two shapes
    each) would silently run eager if they shared one."""
    from torch._dynamo.utils import counters

    x, y = images(5)
    for seed in range(5):
        before = counters["stats"]["unique_graphs"]
        engine = Engine(
            tiny_cnn(seed=seed),
            CoalitionSynthesizer(band_masks(32, 32, 3)),
            make_fill("partner", 0),
            batch_size=7,
            optimize="compile",
            show_progress=False,
        )
        engine.run(TensorImages(x, y))
        assert counters["stats"]["unique_graphs"] - before == 2, f"engine {seed} was not compiled"


@pytest.mark.parametrize("fill", ["partner", "zero"])  # zero: the first batch is a single image
def test_freeze_falls_back_when_tracing_would_change_the_model(capsys, fill):
    x, y = images(5)
    runs = {}
    for optimize in ("freeze", "none"):
        engine = Engine(
            ShapeDependent(),
            CoalitionSynthesizer(band_masks(32, 32, 3)),
            make_fill(fill, 0),
            batch_size=7 if fill == "partner" else 8,
            optimize=optimize,
            show_progress=False,
        )
        runs[optimize] = engine.run(TensorImages(x, y))[0]
        if optimize == "freeze":
            assert engine.optimized_as == "none"
            assert "--optimize freeze does not apply" in capsys.readouterr().err
    assert np.allclose(runs["freeze"].logp_nats, runs["none"].logp_nats)


def test_optimize_names():
    with pytest.raises(iaside.IasideError, match="optimize"):
        Engine(tiny_cnn(), CoalitionSynthesizer(band_masks(8, 8, 2)), make_fill("zero", 0), optimize="fast")
