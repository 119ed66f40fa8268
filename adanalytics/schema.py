"""The data contract (SPEC §2): the five tables, their columns and the validation rules.

The rules are declared here once; each engine implements them with its own expressions
(``engines/pandas/validate.py`` is the reference and the per-partition kernel of Dask).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from adanalytics.semantics import ACTIONS

#: Table -> (column, logical type). Extra input columns are allowed and ignored.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "campaigns": (
        ("campaign_id", "id"),
        ("name", "str"),
        ("start_date", "date"),
        ("end_date", "date"),
    ),
    "ads": (
        ("ad_id", "id"),
        ("campaign_id", "id"),
        ("establishment_id", "id"),
        ("category", "str"),
    ),
    "establishments": (
        ("establishment_id", "id"),
        ("name", "str"),
        ("category", "str"),
        ("lat", "float64"),
        ("lon", "float64"),
    ),
    "interactions": (
        ("user_id", "id"),
        ("ad_id", "id"),
        ("action", "action"),
        ("ts", "timestamp"),
    ),
    "locations": (
        ("user_id", "id"),
        ("lat", "float64"),
        ("lon", "float64"),
        ("ts", "timestamp"),
    ),
}

TABLE_NAMES: tuple[str, ...] = tuple(TABLES)
#: Small dimension tables (broadcast by the distributed engines) and big fact tables.
DIMENSION_TABLES: tuple[str, ...] = ("campaigns", "ads", "establishments")
FACT_TABLES: tuple[str, ...] = ("interactions", "locations")
#: Primary key of each dimension table.
PRIMARY_KEYS: dict[str, str] = {
    "campaigns": "campaign_id",
    "ads": "ad_id",
    "establishments": "establishment_id",
}
#: Validation order: a row whose parent was rejected is rejected too (foreign keys are
#: checked against the *valid* parents).
VALIDATION_ORDER: tuple[str, ...] = ("campaigns", "establishments", "ads", "interactions", "locations")


def columns(table: str) -> list[str]:
    """Column names of ``table``, in contract order."""
    return [c for c, _ in TABLES[table]]


def id_columns(table: str) -> list[str]:
    """The id columns of ``table``."""
    return [c for c, t in TABLES[table] if t == "id"]


@dataclass(frozen=True)
class Rule:
    """A validation rule: ``name`` is what reports and rejected rows carry."""

    name: str
    table: str
    description: str
    column: str | None = None
    #: for foreign keys: (parent table, parent column)
    references: tuple[str, str] | None = None


def _rules() -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for table in VALIDATION_ORDER:
        for col in id_columns(table):
            rules.append(Rule(f"{col}_not_null", table, f"{col} must not be null", col))
        if table in PRIMARY_KEYS:
            pk = PRIMARY_KEYS[table]
            rules.append(
                Rule(f"{pk}_unique", table, f"{pk} must be unique (later duplicates rejected)", pk)
            )
        if table == "campaigns":
            for col in ("start_date", "end_date"):
                rules.append(Rule(f"{col}_valid", table, f"{col} must be a date", col))
        if table in ("establishments", "locations"):
            rules.append(
                Rule("lat_range", table, "lat must be a finite number in [-90, 90]", "lat")
            )
            rules.append(
                Rule("lon_range", table, "lon must be a finite number in [-180, 180]", "lon")
            )
        if table in ("interactions", "locations"):
            rules.append(
                Rule(
                    "ts_parseable",
                    table,
                    "ts must be an ISO-8601 instant (offset or naive UTC) or epoch milliseconds",
                    "ts",
                )
            )
        if table == "interactions":
            rules.append(
                Rule(
                    "action_valid",
                    table,
                    f"action must be one of {', '.join(ACTIONS)} (case-insensitive)",
                    "action",
                )
            )
            rules.append(
                Rule("ad_id_exists", table, "ad_id must exist in ads", "ad_id", ("ads", "ad_id"))
            )
        if table == "ads":
            rules.append(
                Rule(
                    "campaign_id_exists",
                    table,
                    "campaign_id must exist in campaigns",
                    "campaign_id",
                    ("campaigns", "campaign_id"),
                )
            )
            rules.append(
                Rule(
                    "establishment_id_exists",
                    table,
                    "establishment_id must exist in establishments",
                    "establishment_id",
                    ("establishments", "establishment_id"),
                )
            )
    return tuple(rules)


RULES: tuple[Rule, ...] = _rules()


def rules_for(table: str) -> list[Rule]:
    """The rules of ``table``, in the order they are checked (first broken rule wins)."""
    return [r for r in RULES if r.table == table]


def rule(table: str, name: str) -> Rule:
    """Look a rule up by table and name."""
    for r in RULES:
        if r.table == table and r.name == name:
            return r
    msg = f"no rule {name!r} on table {table!r}"
    raise KeyError(msg)


#: Column added to rejected rows: the rule they broke.
REJECT_RULE_COLUMN = "_rule"
#: How many example rows an error or report shows per rule.
N_EXAMPLES = 5


@dataclass
class RuleViolation:
    """How many rows of a table broke one rule, with a few of them."""

    table: str
    rule: str
    count: int
    examples: pd.DataFrame

    @property
    def description(self) -> str:
        return rule(self.table, self.rule).description


@dataclass
class ValidationReport:
    """The outcome of validating a dataset: broken rules and row counts per table."""

    violations: list[RuleViolation] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    rejected_path: str | None = None

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def rejected(self) -> dict[str, int]:
        """Rejected row count per table."""
        out: dict[str, int] = {}
        for v in self.violations:
            out[v.table] = out.get(v.table, 0) + v.count
        return out

    def describe(self, header: str = "Validation report") -> str:
        """A human-readable report: every broken rule with count and example rows."""
        if self.ok:
            return f"{header}: all rules hold ({_fmt_rows(self.rows)})."
        lines = [f"{header}: {len(self.violations)} rule(s) broken"]
        for v in self.violations:
            lines.append(
                f"- table '{v.table}', rule '{v.rule}' ({v.description}): "
                f"{v.count:,} row(s); examples:"
            )
            ex = v.examples.head(N_EXAMPLES).to_string(index=False, max_colwidth=40)
            lines.extend("    " + line for line in ex.splitlines())
        if self.rejected_path:
            lines.append(f"Rejected rows (with the rule broken) written to {self.rejected_path}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": dict(self.rows),
            "violations": [
                {"table": v.table, "rule": v.rule, "count": v.count} for v in self.violations
            ],
            "rejected_path": self.rejected_path,
        }

    def __str__(self) -> str:
        return self.describe()


def _fmt_rows(rows: dict[str, int]) -> str:
    return ", ".join(f"{t}: {n:,} rows" for t, n in rows.items()) or "no tables"
