"""kubeflow adapter for mlpipe."""
