"""Errors a user meets: each names what is wrong and what was expected."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adanalytics.schema import ValidationReport


class AdAnalyticsError(Exception):
    """Base class of every error adanalytics raises on purpose."""


class DataContractError(AdAnalyticsError):
    """A table or column is missing, or a file cannot be read as the expected table."""


class ValidationError(AdAnalyticsError):
    """Rows break the data contract (SPEC §2) and ``on_invalid="raise"``."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(report.describe(header="Invalid input data (on_invalid='raise')"))


class ClusterConnectionError(AdAnalyticsError):
    """A Dask scheduler or Spark master cannot be reached."""


class StreamMessageError(AdAnalyticsError):
    """A stream message is malformed (it goes to the dead-letter stream)."""
