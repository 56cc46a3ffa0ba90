"""batch-poller: tracks Amazon Bedrock batch inference jobs, stores their results, cleans S3 up."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batch_poller.submission.library import submit_files as submit

__all__ = ["__version__", "submit"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`batch_poller.submit`, imported on first use: `import batch_poller` stays light."""
    if name == "submit":
        from batch_poller.submission.library import submit_files

        return submit_files
    raise AttributeError(f"module 'batch_poller' has no attribute {name!r}")
