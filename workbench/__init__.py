"""Research workbench for fine-tuning sentence-transformer ticket classifiers."""

from workbench.errors import WorkbenchError

__version__ = "0.1.0"
__all__ = ["WorkbenchError", "__version__"]
