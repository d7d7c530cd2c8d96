"""The one training loop of the project's own small models (the model zoo, the studies, the
tests): cross-entropy with any optimiser, batches drawn by the caller, hooks for adversarial
training and checkpoint views. Training is not part of I-ASIDE; it makes models to explain."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn import functional as F


def fit(
    model: nn.Module,
    epoch_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    optimiser: torch.optim.Optimizer,
    epochs: int,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    before_step: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    after_step: Callable[[int], None] | None = None,
) -> nn.Module:
    """Train ``model`` for ``epochs``; returns it in eval mode.

    ``epoch_batches()`` is called once per epoch and yields (x (B, ...), y (B,) int64) batches.
    Each step: train mode, ``x = before_step(model, x, y)`` (e.g. an adversarial example),
    cross-entropy, backward, optimiser step, scheduler step, ``after_step(step)`` (1-based).
    """
    step = 0
    for _ in range(epochs):
        for x, y in epoch_batches():
            model.train()
            if before_step is not None:
                x = before_step(model, x, y)
            loss = F.cross_entropy(model(x), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            if after_step is not None:
                after_step(step)
    return model.eval()


def fit_one_cycle(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, batch_size: int = 64
) -> nn.Module:
    """Adam with a one-cycle learning-rate schedule over shuffled batches (the global torch RNG);
    returns the model in eval mode. x (N, C, H, W), y (N,) int64."""
    opt = torch.optim.Adam(model.parameters(), lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * -(-len(x) // batch_size))
    return fit(
        model,
        lambda: ((x[idx], y[idx]) for idx in torch.randperm(len(x)).split(batch_size)),
        opt,
        epochs,
        scheduler=sched,
    )
