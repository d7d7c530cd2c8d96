"""``module:pkg.mod:factory``: a network built by the user's own Python function."""

from __future__ import annotations

import importlib

import torch
from torch import nn

from ..errors import IasideError
from ._common import Built, file_fingerprint, load_weights, state_fingerprint
from .torchscript import declared_attribute


def load_factory(target: str, *, weights: str | None, device: torch.device, num_classes: int | None) -> Built:
    """Call ``pkg.mod:factory`` (with ``num_classes=`` when given), then load ``weights`` if given.

    The factory returns an nn.Module or (nn.Module, dict of DataConfig fields). Declared data
    config, lowest priority first: the module-level ``DATA_CONFIG`` dict, a ``DATA_CONFIG``
    attribute of the network, the factory's dict.
    """
    module_name, _, factory_name = target.partition(":")
    if not module_name or not factory_name:
        raise IasideError(f"module:{target} needs the form module:pkg.mod:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise IasideError(
            f"cannot import {module_name!r} for module:{target} ({e}); install it or put it on PYTHONPATH"
        ) from e
    except Exception as e:  # the user's own code, failing as it is imported
        raise IasideError(
            f"importing {module_name!r} for module:{target} raised {type(e).__name__}: {e}; fix the module"
        ) from e
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise IasideError(
            f"module {module_name!r} has no function {factory_name!r}; name the function that builds the network"
        )
    try:
        made = factory(num_classes=num_classes) if num_classes is not None else factory()
    except Exception as e:  # the user's own function: name it and what it raised
        raise IasideError(
            f"{module_name}:{factory_name}() raised {type(e).__name__}: {e}; "
            "fix the factory (call it in Python to see the traceback)"
        ) from e
    net, fields = made if isinstance(made, tuple) and len(made) == 2 else (made, {})
    if not isinstance(net, nn.Module):
        raise IasideError(f"{module_name}:{factory_name}() returned {type(net).__name__}; it must return an nn.Module")
    declared = [
        *declared_attribute(module, module_name),
        *declared_attribute(net, f"{module_name}:{factory_name}()"),
        (fields, f"{module_name}:{factory_name}()"),
    ]
    if weights is None:
        return Built(net, declared, state_fingerprint(net))
    load_weights(net, weights, f"{module_name}:{factory_name}()")
    return Built(net, declared, file_fingerprint(weights), extra={"weights": str(weights)})
