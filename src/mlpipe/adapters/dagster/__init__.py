"""Dagster adapter: mlpipe's pipelines as software-defined assets with asset checks.

- ``assets``: one asset per step output, generated from ``Pipeline.steps``; the resource and the
  JSON reference IO manager.
- ``build``: jobs, stopped schedules and ``Definitions`` from mlpipe configs.
- ``definitions``: the code location ``dagster dev -m mlpipe.adapters.dagster.definitions`` loads.
- ``runner``: ``run_pipeline(...)``, the adapter contract the CLI's ``--runner dagster`` calls.

Nothing here is imported by ``mlpipe`` itself; dagster is only needed when this package is used.
"""
