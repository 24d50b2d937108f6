"""Exact match and execution match for predicted SQL; stdlib only (sqlite3), never raises.

Execution match runs the predicted and the gold query on an in-memory sqlite database built from
the row's ``CREATE TABLE`` context and filled with a few deterministic synthetic rows. The rows
reuse the literals of both queries (``WHERE city = 'Paris'`` finds a Paris row), so filters select
something and a wrong literal gives a different result. Queries run read-only, one statement, under
a time and a row limit; anything that fails to run counts as a mismatch.
"""

from __future__ import annotations

import hashlib
import random
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_ORDER_BY = re.compile(r"\border\s+by\b")
_READ_ONLY = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}
_NO_FILES = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH}


@dataclass(frozen=True)
class Limits:
    """Per query: wall-clock budget and the most rows a result may have."""

    timeout_s: float = 1.0
    max_rows: int = 10_000
    rows_per_table: int = 12


def normalize_sql(sql: str) -> str:
    """Case-, whitespace- and trailing-semicolon-insensitive form; quoted text is kept as is."""
    text = sql.strip().rstrip(";").strip()
    parts: list[str] = []
    pos = 0
    for m in _QUOTED.finditer(text):
        parts.append(_normalize_code(text[pos : m.start()]))
        parts.append(m.group())
        pos = m.end()
    parts.append(_normalize_code(text[pos:]))
    return "".join(parts).strip()


def _normalize_code(code: str) -> str:
    code = re.sub(r"\s+", " ", code.lower())
    return re.sub(r"\s*([(),=<>!*+/-])\s*", r"\1", code)


def exact_match(pred: str, gold: str) -> bool:
    return normalize_sql(pred) == normalize_sql(gold)


def literals(*queries: str) -> tuple[list[str], list[float]]:
    """The string and number literals of the queries, sorted (so the database is deterministic)."""
    strings: set[str] = set()
    numbers: set[float] = set()
    for sql in queries:
        for m in _QUOTED.finditer(sql):
            if m.group().startswith("'"):
                strings.add(m.group()[1:-1].replace("''", "'"))
        for m in _NUMBER.finditer(_QUOTED.sub(" ", sql)):
            value = float(m.group())
            if abs(value) < 2**53:  # sqlite integers are 64-bit; absurd literals seed nothing
                numbers.add(value)
    return sorted(strings), sorted(numbers)


def build_database(
    context: str, strings: Sequence[str], numbers: Sequence[float], limits: Limits = Limits()
) -> sqlite3.Connection | None:
    """An in-memory database with the context's tables and synthetic rows; None if it fails."""
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.set_authorizer(lambda action, *_: sqlite3.SQLITE_DENY if action in _NO_FILES else 0)
    try:
        with _deadline(conn, limits.timeout_s):
            conn.executescript(context)
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            seed = hashlib.sha256(
                "\0".join([context, *strings, *map(repr, numbers)]).encode()
            ).digest()
            rng = random.Random(seed)
            for table in tables:
                cols = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
                if not cols:
                    continue
                rows = [
                    tuple(_value(rng, str(c[1]), str(c[2]), strings, numbers) for c in cols)
                    for _ in range(limits.rows_per_table)
                ]
                marks = ", ".join("?" * len(cols))
                conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
        conn.set_authorizer(lambda action, *_: 0 if action in _READ_ONLY else sqlite3.SQLITE_DENY)
        return conn
    except Exception:
        conn.close()
        return None


def _value(
    rng: random.Random, name: str, decl: str, strings: Sequence[str], numbers: Sequence[float]
) -> Any:
    decl = decl.upper()
    if "INT" in decl:
        if numbers and rng.random() < 0.6:
            return int(rng.choice(numbers)) + rng.choice((-1, 0, 0, 1))
        return rng.randint(0, 100)
    if any(t in decl for t in ("REAL", "FLOA", "DOUB", "NUM", "DEC")):
        if numbers and rng.random() < 0.6:
            return round(rng.choice(numbers) + rng.choice((-0.5, 0.0, 0.0, 0.5)), 2)
        return round(rng.uniform(0, 100), 2)
    pool = [*strings, *(f"{n:g}" for n in numbers)]
    if pool and rng.random() < 0.6:
        return rng.choice(pool)
    return f"{name}_{rng.randint(0, 4)}"


class _deadline:
    """Abort whatever the connection runs once ``seconds`` have passed (sqlite progress handler)."""

    def __init__(self, conn: sqlite3.Connection, seconds: float) -> None:
        self.conn = conn
        self.seconds = seconds

    def __enter__(self) -> None:
        end = time.monotonic() + self.seconds
        self.conn.set_progress_handler(lambda: int(time.monotonic() > end), 1000)

    def __exit__(self, *exc: object) -> None:
        self.conn.set_progress_handler(None, 0)


def run_query(conn: sqlite3.Connection, sql: str, limits: Limits = Limits()) -> list[tuple] | None:
    """The rows of one read-only statement, or None when it fails, times out or is too large."""
    try:
        with _deadline(conn, limits.timeout_s):
            rows = conn.execute(sql).fetchmany(limits.max_rows + 1)
    except Exception:
        return None
    if len(rows) > limits.max_rows:
        return None
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows]


def execution_match(pred: str, gold: str, context: str, limits: Limits = Limits()) -> bool | None:
    """True when both queries give the same rows (in order when the gold has ORDER BY).

    None when the gold query itself does not run on its context (a data problem, not the model's).
    """
    strings, numbers = literals(pred, gold)
    conn = build_database(context, strings, numbers, limits)
    if conn is None:  # the prediction's literals may be to blame: retry with the gold's alone
        conn = build_database(context, *literals(gold), limits)
    if conn is None:
        return None
    try:
        want = run_query(conn, gold, limits)
        if want is None:
            return None
        got = run_query(conn, pred, limits)
        if got is None:
            return False
        if _ORDER_BY.search(normalize_sql(_QUOTED.sub("''", gold))):
            return got == want
        return Counter(got) == Counter(want)
    finally:
        conn.close()


class SqlMatchCounter:
    """Exact and execution match accumulated row by row, so results can stream chunk by chunk."""

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits
        self.rows = self.exact = self.executed = self.gold_errors = 0

    def update(self, preds: Sequence[str], golds: Sequence[str], contexts: Sequence[str]) -> None:
        for pred, gold, context in zip(preds, golds, contexts, strict=True):
            self.rows += 1
            self.exact += exact_match(pred, gold)
            match = execution_match(pred, gold, context, self.limits)
            if match is None:
                self.gold_errors += 1
            else:
                self.executed += match

    def metrics(self) -> dict[str, float]:
        n = max(self.rows, 1)
        return {
            "exact_match": self.exact / n,
            "execution_match": self.executed / n,
            "gold_sql_errors": float(self.gold_errors),
        }
