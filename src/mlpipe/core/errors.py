"""Errors that carry their own exit code, so every edge (CLI, task, pod) reports them alike."""

from __future__ import annotations


class MlpipeError(Exception):
    """Base error. ``exit_code`` 1 is a runtime failure, 2 is bad input the user can fix."""

    exit_code = 1


class ConfigError(MlpipeError):
    """A config field or file is wrong; the message names it and what is allowed."""

    exit_code = 2


class DataError(MlpipeError):
    """An input data file or dataset is unusable (missing column, bad labels, empty)."""

    exit_code = 2


class ModelNotFoundError(MlpipeError):
    """A model reference (``name:alias`` or ``name:vN``) does not resolve in the registry."""

    exit_code = 2


class ChecksumError(MlpipeError):
    """A stored file no longer matches the sha256 its manifest recorded."""


class QualityGateError(MlpipeError):
    """A blocking data- or model-quality check failed, so downstream steps must not run."""


class StepFailedError(MlpipeError):
    """A step failed inside a runner; wraps the cause and names the step."""

    def __init__(self, step: str, cause: BaseException) -> None:
        self.step = step
        self.cause = cause
        self.exit_code = getattr(cause, "exit_code", 1)
        super().__init__(f"step '{step}' failed: {cause}")
