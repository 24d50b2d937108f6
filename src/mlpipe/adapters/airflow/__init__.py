"""airflow adapter for mlpipe."""
