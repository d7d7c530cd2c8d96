"""The model sources' imports of torchvision / timm / transformers: the public ``iaside.compat``."""

from ..compat import import_timm, import_torchvision, import_transformers

__all__ = ["import_timm", "import_torchvision", "import_transformers"]
