"""Dagster adapter: core's plan as software-defined assets with asset checks (``assets``; pods in
``cluster``), ``Definitions`` (``build``), the code location (``definitions``) and the runner."""
