"""mlpipe: write ML training and inference pipelines once, run them on any orchestrator."""

__version__ = "0.1.0"
