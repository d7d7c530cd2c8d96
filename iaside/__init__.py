"""I-ASIDE: which frequency bands an image classifier's predictions rest on, by exact Shapley values."""

__version__ = "0.1.0"

from .api import explain
from .config import DataConfig, ExplainConfig
from .errors import IasideError
from .options import RunOptions
from .result import Result

__all__ = ["DataConfig", "ExplainConfig", "IasideError", "Result", "RunOptions", "__version__", "explain"]
