"""The one streaming engine, in three parts: the model runner (runner.py: precision,
optimisation, batch probe, out-of-memory back-off, the output check), the packer of (image,
coalition) pairs into model batches (packer.py), and the loop (loop.py) with its recorders
(recorders.py: what each pass keeps);
images are loaded chunk by chunk with their partners (loading.py), and the per-image results
live in an ``EngineState`` whose fields declare how they merge (state.py)."""

from .loop import Engine
from .recorders import LogProbRecorder, LogSoftmaxRecorder, Recorder, Top1HitRecorder
from .runner import OPTIMIZATIONS, PRECISIONS, ModelRunner, resolve_precision
from .state import EngineState, EngineStats

__all__ = [
    "OPTIMIZATIONS",
    "PRECISIONS",
    "Engine",
    "EngineState",
    "EngineStats",
    "LogProbRecorder",
    "LogSoftmaxRecorder",
    "ModelRunner",
    "Recorder",
    "Top1HitRecorder",
    "resolve_precision",
]
