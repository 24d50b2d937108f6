"""What every config schema shares: strict models, and one way to report a validation error
(the field's dotted path, what is allowed there) as a ``ConfigError``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from mlpipe.core.errors import ConfigError


class StrictModel(BaseModel):
    """Unknown fields, NaN/infinity and ``true`` for a number are errors, not guesses."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bools_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if isinstance(value, bool) and field is not None and _numeric(field.annotation):
                    raise ValueError(f"{name}: expected a number, got {value!r}")
        return data


def _numeric(annotation: Any) -> bool:
    """Whether a field takes numbers and not booleans (``int``, ``float | None``...)."""
    import typing

    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Annotated:
        return _numeric(args[0])
    if args:
        return bool(args) and any(_numeric(a) for a in args) and bool not in args
    return annotation in (int, float)

def validate_section(schema: type[BaseModel], value: Any, where: str) -> BaseModel:
    """``schema.model_validate(value)`` with errors reported under the section's name."""
    try:
        return schema.model_validate(value)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, schema, prefix=where)) from None

def format_validation_error(exc: ValidationError, root: type[BaseModel], prefix: str = "") -> str:
    lines = ["invalid config:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in (*([prefix] if prefix else []), *err["loc"])) or "<root>"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_fields(root, err["loc"][:-1])
            lines.append(f"  {loc}: unknown field; allowed here: {', '.join(allowed)}")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  {loc}: {err['msg']}{shown}")
    return "\n".join(lines)


def _allowed_fields(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    model: Any = root
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))
