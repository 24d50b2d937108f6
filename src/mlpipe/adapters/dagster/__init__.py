"""Dagster adapter: any mlpipe pipeline as software-defined assets with asset checks.

- ``assets``: core's plan as assets (a step or fused group each, a graph asset per map step);
  the resource and the JSON reference IO manager.
- ``cluster``: cluster mode, one pod per asset through dagster-k8s Pipes; ``render_cluster``.
- ``build``: assets, jobs, stopped schedules and ``Definitions`` for any set of pipelines.
- ``definitions``: the code location ``dagster dev -m mlpipe.adapters.dagster.definitions`` loads.
- ``runner``: ``DagsterRunner``, what ``mlpipe run --runner dagster`` uses.

Nothing here is imported by ``mlpipe`` itself; dagster is only needed when this package is used.
"""
