"""Errors that carry their own exit code, so every edge (CLI, task, pod) reports them alike."""

from __future__ import annotations

from typing import Any


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


class RegistryDamagedError(MlpipeError):
    """A registry file was damaged (by hand, a bad disk); the message names it and the repair."""


class QualityGateError(MlpipeError):
    """A blocking data- or model-quality check failed, so downstream steps must not run.
    ``checks``: the failed check results, for an orchestrator that records checks itself."""

    def __init__(self, message: str, checks: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.checks = checks


class StepFailedError(MlpipeError):
    """A step failed inside a runner; wraps the cause and names the step."""

    def __init__(self, step: str, cause: BaseException) -> None:
        self.step = step
        self.cause = cause
        self.exit_code = getattr(cause, "exit_code", 1)
        super().__init__(f"step '{step}' failed: {cause}")


class RemoteStepError(MlpipeError):
    """An error that crossed a process boundary as a record and has no mlpipe class here."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def error_record(exc: BaseException) -> dict[str, object]:
    """What a task writes when a step fails, so the runner that launched it can raise it again."""
    cause = getattr(exc, "cause", exc)
    return {
        "error_type": type(cause).__name__,
        "message": str(cause),
        "exit_code": int(getattr(exc, "exit_code", getattr(cause, "exit_code", 1))),
    }


def error_from_record(record: dict[str, object]) -> MlpipeError:
    """The same mlpipe error class and exit code when there is one, else ``RemoteStepError``."""
    name = str(record.get("error_type", ""))
    message = str(record.get("message") or record.get("error") or "step failed")
    exit_code = int(str(record.get("exit_code", 1)))
    cls = globals().get(name)
    wrappers = (StepFailedError, RemoteStepError)
    if isinstance(cls, type) and issubclass(cls, MlpipeError) and cls not in wrappers:
        err = cls(message)
        err.exit_code = exit_code
        return err
    if cls in wrappers or not name:  # a record of a record: its message names the type already
        return RemoteStepError(message, exit_code)
    return RemoteStepError(f"{name}: {message}", exit_code)


class DivergedError(MlpipeError):
    """Training produced a non-finite loss, metric or weight: nothing is saved or published."""
