"""Model sources behind one call: ``load_model(spec) -> LoadedModel`` (Classifier + DataConfig)."""
from .base import Classifier, LoadedModel
from .registry import available_models, load_model, register_model, register_source

__all__ = ["Classifier", "LoadedModel", "available_models", "load_model", "register_model", "register_source"]
