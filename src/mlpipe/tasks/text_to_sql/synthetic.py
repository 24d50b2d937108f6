"""A generated text-to-SQL set (question + CREATE TABLE context -> SQL) for offline demos and tests.

Deterministic by seed. Several table schemas with typed columns, table names that vary (so the
model must read the context), and question templates covering plain selects, counts, filters on
strings and numbers, ORDER BY/LIMIT, aggregates, DISTINCT and GROUP BY. Every gold query runs on
sqlite against its context (``tests/integration/test_text_to_sql.py`` checks that).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # INTEGER, REAL or TEXT
    words: str  # how questions say it
    values: tuple[str, ...] = ()  # typical values of a TEXT column (for filters)
    low: int = 0  # range of a numeric column (for filters)
    high: int = 100


@dataclass(frozen=True)
class Schema:
    names: tuple[str, ...]  # table names this schema appears under
    entity: str  # singular, as questions say it
    entities: str  # plural
    columns: tuple[Column, ...]

    def create_table(self, table: str) -> str:
        cols = ", ".join(f"{c.name} {c.sql_type}" for c in self.columns)
        return f"CREATE TABLE {table} ({cols})"

    def text_columns(self) -> list[Column]:
        return [c for c in self.columns if c.sql_type == "TEXT"]

    def filter_columns(self) -> list[Column]:
        return [c for c in self.columns if c.sql_type == "TEXT" and c.values]

    def numeric_columns(self) -> list[Column]:
        return [c for c in self.columns if c.sql_type in ("INTEGER", "REAL")]


_CITIES = ("Paris", "Berlin", "Madrid", "Rome", "Lisbon", "Vienna", "Oslo", "Dublin", "Prague")
_COUNTRIES = ("France", "Germany", "Spain", "Italy", "Portugal", "Austria", "Norway", "Ireland")

SCHEMAS: tuple[Schema, ...] = (
    Schema(
        ("employees", "staff", "employee_records"),
        "employee",
        "employees",
        (
            Column("id", "INTEGER", "id", low=1, high=500),
            Column("name", "TEXT", "name"),
            Column(
                "department",
                "TEXT",
                "department",
                ("Sales", "Engineering", "Finance", "Marketing", "Support", "Legal"),
            ),
            Column("salary", "INTEGER", "salary", low=30000, high=150000),
            Column("age", "INTEGER", "age", low=20, high=65),
            Column("city", "TEXT", "city", _CITIES),
        ),
    ),
    Schema(
        ("products", "items", "catalog"),
        "product",
        "products",
        (
            Column("id", "INTEGER", "id", low=1, high=900),
            Column("name", "TEXT", "name"),
            Column(
                "category",
                "TEXT",
                "category",
                ("Books", "Toys", "Garden", "Kitchen", "Sports", "Music"),
            ),
            Column("price", "REAL", "price", low=1, high=500),
            Column("stock", "INTEGER", "stock", low=0, high=1000),
        ),
    ),
    Schema(
        ("students", "pupils", "enrollment"),
        "student",
        "students",
        (
            Column("id", "INTEGER", "id", low=1, high=3000),
            Column("name", "TEXT", "name"),
            Column(
                "major",
                "TEXT",
                "major",
                ("Physics", "History", "Biology", "Economics", "Art", "Chemistry"),
            ),
            Column("gpa", "REAL", "gpa", low=1, high=4),
            Column("year", "INTEGER", "year", low=1, high=5),
        ),
    ),
    Schema(
        ("flights", "routes", "flight_log"),
        "flight",
        "flights",
        (
            Column("id", "INTEGER", "id", low=1, high=9000),
            Column(
                "airline", "TEXT", "airline", ("Lufthansa", "Iberia", "Alitalia", "Ryanair", "KLM")
            ),
            Column("origin", "TEXT", "origin", _CITIES),
            Column("destination", "TEXT", "destination", _CITIES),
            Column("distance", "INTEGER", "distance", low=200, high=3000),
            Column("passengers", "INTEGER", "number of passengers", low=20, high=400),
        ),
    ),
    Schema(
        ("books", "library", "titles"),
        "book",
        "books",
        (
            Column("title", "TEXT", "title"),
            Column("author", "TEXT", "author", ("Austen", "Tolstoy", "Orwell", "Woolf", "Kafka")),
            Column("genre", "TEXT", "genre", ("Fiction", "Poetry", "Drama", "Essay", "Mystery")),
            Column("pages", "INTEGER", "number of pages", low=50, high=1200),
            Column("published", "INTEGER", "publication year", low=1800, high=2024),
        ),
    ),
    Schema(
        ("cities", "towns", "city_stats"),
        "city",
        "cities",
        (
            Column("name", "TEXT", "name"),
            Column("country", "TEXT", "country", _COUNTRIES),
            Column("population", "INTEGER", "population", low=10000, high=9000000),
            Column("area", "REAL", "area", low=10, high=2000),
        ),
    ),
    Schema(
        ("matches", "games", "fixtures"),
        "match",
        "matches",
        (
            Column("id", "INTEGER", "id", low=1, high=2000),
            Column("home_team", "TEXT", "home team", ("Lions", "Eagles", "Wolves", "Sharks")),
            Column("away_team", "TEXT", "away team", ("Lions", "Eagles", "Wolves", "Sharks")),
            Column("home_score", "INTEGER", "home score", low=0, high=9),
            Column("away_score", "INTEGER", "away score", low=0, high=9),
            Column("season", "INTEGER", "season", low=2000, high=2024),
        ),
    ),
    Schema(
        ("songs", "tracks", "playlist"),
        "song",
        "songs",
        (
            Column("title", "TEXT", "title"),
            Column("artist", "TEXT", "artist", ("Adele", "Queen", "Prince", "Madonna", "Bowie")),
            Column("album", "TEXT", "album"),
            Column("duration", "INTEGER", "duration", low=90, high=600),
            Column("plays", "INTEGER", "number of plays", low=0, high=100000),
        ),
    ),
)

_AGGREGATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AVG", ("average", "mean")),
    ("MAX", ("maximum", "highest")),
    ("MIN", ("minimum", "lowest")),
    ("SUM", ("total",)),
)


def _number(rng: random.Random, col: Column) -> int:
    return rng.randint(col.low, col.high)


def generate_example(rng: random.Random) -> tuple[str, str, str]:
    """One (question, context, answer) triple."""
    schema = rng.choice(SCHEMAS)
    table = rng.choice(schema.names)
    if rng.random() < 0.25:
        table = f"{table}_{rng.randint(1, 99)}"
    context = schema.create_table(table)
    if rng.random() < 0.3:  # a second, unrelated table: the model must pick the right one
        other = rng.choice([s for s in SCHEMAS if s is not schema])
        context = f"{context}; {other.create_table(rng.choice(other.names))}"
    e, es = schema.entity, schema.entities
    text_cols, filters, nums = (
        schema.text_columns(),
        schema.filter_columns(),
        schema.numeric_columns(),
    )
    col = rng.choice(schema.columns)
    kind = rng.choice(
        (
            "select_where",
            "count",
            "count_where",
            "compare",
            "top",
            "aggregate",
            "aggregate_where",
            "distinct",
            "group",
        )
    )
    if kind == "select_where" and filters:
        f = rng.choice(filters)
        shown = rng.choice([c for c in schema.columns if c is not f])
        v = rng.choice(f.values)
        q = rng.choice(
            (
                f"What is the {shown.words} of the {e} whose {f.words} is {v}?",
                f"List the {shown.words} of {es} with {f.words} {v}.",
                f"Show the {shown.words} for every {e} where the {f.words} is {v}.",
            )
        )
        return q, context, f"SELECT {shown.name} FROM {table} WHERE {f.name} = '{v}'"
    if kind == "count_where" and filters:
        f = rng.choice(filters)
        v = rng.choice(f.values)
        q = rng.choice(
            (f"How many {es} have {f.words} {v}?", f"Count the {es} whose {f.words} is {v}.")
        )
        return q, context, f"SELECT COUNT(*) FROM {table} WHERE {f.name} = '{v}'"
    if kind == "compare":
        n = rng.choice(nums)
        shown = rng.choice(text_cols or list(schema.columns))
        x = _number(rng, n)
        op, words = rng.choice(
            ((">", ("greater than", "above", "more than")), ("<", ("less than", "below", "under")))
        )
        q = rng.choice(
            (
                f"List the {shown.words} of {es} with {n.words} {rng.choice(words)} {x}.",
                f"Which {es} have a {n.words} {rng.choice(words)} {x}? Give the {shown.words}.",
            )
        )
        return q, context, f"SELECT {shown.name} FROM {table} WHERE {n.name} {op} {x}"
    if kind == "top":
        n = rng.choice(nums)
        shown = rng.choice(text_cols or list(schema.columns))
        k = rng.choice((1, 1, 3, 5))
        desc = rng.random() < 0.5
        most = "highest" if desc else "lowest"
        order = "DESC" if desc else "ASC"
        if k == 1:
            q = f"Which {e} has the {most} {n.words}? Give the {shown.words}."
        else:
            q = f"List the {shown.words} of the {k} {es} with the {most} {n.words}."
        return q, context, f"SELECT {shown.name} FROM {table} ORDER BY {n.name} {order} LIMIT {k}"
    if kind in ("aggregate", "aggregate_where"):
        n = rng.choice(nums)
        fn, agg_words = rng.choice(_AGGREGATES)
        word = rng.choice(agg_words)
        if kind == "aggregate_where" and filters:
            f = rng.choice(filters)
            v = rng.choice(f.values)
            q = f"What is the {word} {n.words} of {es} with {f.words} {v}?"
            return q, context, f"SELECT {fn}({n.name}) FROM {table} WHERE {f.name} = '{v}'"
        q = rng.choice(
            (f"What is the {word} {n.words} of all {es}?", f"Find the {word} {n.words}.")
        )
        return q, context, f"SELECT {fn}({n.name}) FROM {table}"
    if kind == "distinct" and text_cols:
        t = rng.choice(filters or text_cols)
        q = rng.choice(
            (f"List the distinct {t.words} values.", f"What are the different values of {t.words}?")
        )
        return q, context, f"SELECT DISTINCT {t.name} FROM {table}"
    if kind == "group" and filters:
        f = rng.choice(filters)
        q = rng.choice(
            (f"How many {es} are there for each {f.words}?", f"Count the {es} per {f.words}.")
        )
        return q, context, f"SELECT {f.name}, COUNT(*) FROM {table} GROUP BY {f.name}"
    if kind == "count" or col.sql_type != "TEXT":
        q = rng.choice((f"How many {es} are there?", f"Count all {es}.", f"How many {es} exist?"))
        return q, context, f"SELECT COUNT(*) FROM {table}"
    q = f"List the {col.words} of all {es}."
    return q, context, f"SELECT {col.name} FROM {table}"


def generate_sql_rows(n: int, seed: int) -> Iterator[tuple[str, str, str]]:
    """Yield ``n`` (question, context, answer) rows, the same ones for the same seed.

    Rows are unique by (question, context) as long as the templates allow; the set of seen keys
    grows with ``n`` (about 100 bytes a row).
    """
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    for _ in range(n):
        for _attempt in range(20):  # unique (question, context) while the templates allow it
            row = generate_example(rng)
            if (row[0], row[1]) not in seen:
                break
        seen.add((row[0], row[1]))
        yield row
