"""Model sources behind one call: ``load_model(spec) -> LoadedModel`` (Classifier + DataConfig)."""

from ._common import file_fingerprint, state_fingerprint
from .base import Classifier, LoadedModel
from .registry import available_models, load_model, register_model, register_source

__all__ = [
    "Classifier",
    "LoadedModel",
    "available_models",
    "file_fingerprint",
    "load_model",
    "register_model",
    "register_source",
    "state_fingerprint",
]
