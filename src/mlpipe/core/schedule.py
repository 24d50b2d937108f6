"""The one reading of ``runtime.schedule`` every orchestrator gets: a five-field cron string,
presets translated, checked here (no cron library) so a bad schedule fails at config load on any
runner instead of later in one orchestrator's own parser."""

from __future__ import annotations

PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@quarterly": "0 0 1 */3 *",
           "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
#: (lowest, highest, names from lowest) of minute, hour, day of month, month, day of week
_FIELDS = ((0, 59, ()), (0, 23, ()), (1, 31, ()), (1, 12, _MONTHS), (0, 7, _DAYS))


def _value(text: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    if text.lower() in names:
        return True
    return text.isdigit() and low <= int(text) <= high


def _field(text: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    """A comma list of ``*``, ``a`` or ``a-b``, each with an optional ``/step``."""
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and not (step.isdigit() and int(step) > 0):
            return False
        if base != "*" and not all(_value(v, low, high, names) for v in base.split("-", 1)):
            return False
    return True


def cron_of(schedule: str) -> str:
    """``schedule`` as a five-field cron string (a preset translated); ValueError if it is
    neither (``@once`` included: a one-off run is ``mlpipe run``, not a schedule)."""
    cron = PRESETS.get(schedule.strip().lower(), schedule.strip())
    fields = cron.split()
    if len(fields) != 5 or not all(_field(f, *spec) for f, spec in zip(fields, _FIELDS,
                                                                       strict=True)):
        raise ValueError(f"{schedule!r} is not a cron schedule (five fields like '0 3 * * 0', "
                         f"or one of {', '.join(PRESETS)})")
    return cron
