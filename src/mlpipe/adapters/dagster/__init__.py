"""dagster adapter for mlpipe."""
