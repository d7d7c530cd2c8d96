"""I-ASIDE: which frequency bands an image classifier's predictions rest on, by exact Shapley values."""
__version__ = "0.1.0"

from .api import explain  # noqa: E402
from .config import DataConfig, ExplainConfig  # noqa: E402
from .errors import IasideError  # noqa: E402
from .result import Result  # noqa: E402

__all__ = ["explain", "Result", "DataConfig", "ExplainConfig", "IasideError", "__version__"]
