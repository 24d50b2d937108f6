"""Integrations with outside services (experiment tracking, remote registries); imported lazily."""
