"""Calendar buckets of instants in the dataset's time zone, as Spark Column expressions.

Every bucket is derived from the *local epoch microseconds* of an instant
(``unix_micros(from_utc_timestamp(ts, tz))``: UTC micros plus the zone's offset at that
instant) with integer arithmetic, so the result does not depend on the session time
zone at all: two datasets with different ``tz`` can share the session, and a frame
built under one session zone gives the same buckets when collected under another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adanalytics.semantics import PERIODS

if TYPE_CHECKING:
    from pyspark.sql import Column

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 86_400_000_000
#: 1970-01-01 was a Thursday: weekday 3 when Monday = 0.
_EPOCH_WEEKDAY = 3


def epoch_us(ts: Column) -> Column:
    """UTC instants as microseconds since the epoch (long)."""
    from pyspark.sql import functions as F

    return F.unix_micros(ts)


def local_us(ts: Column, tz: str) -> Column:
    """Wall-clock time in ``tz`` as "local epoch" microseconds (long)."""
    from pyspark.sql import functions as F

    return F.unix_micros(F.from_utc_timestamp(ts, F.lit(tz)))


def local_days(local: Column) -> Column:
    """Days since 1970-01-01 of local epoch micros (floor, exact integer arithmetic)."""
    from pyspark.sql import functions as F

    return ((local - F.pmod(local, F.lit(US_PER_DAY))) / F.lit(US_PER_DAY)).cast("long")


def hour(local: Column) -> Column:
    """Local hour 0-23 (long)."""
    from pyspark.sql import functions as F

    return (F.pmod(local, F.lit(US_PER_DAY)) / F.lit(US_PER_HOUR)).cast("long")


def weekday(local: Column) -> Column:
    """Local weekday, 0 = Monday ... 6 = Sunday (long)."""
    from pyspark.sql import functions as F

    return F.pmod(local_days(local) + F.lit(_EPOCH_WEEKDAY), F.lit(7)).cast("long")


def local_date(local: Column) -> Column:
    """Local calendar date (DateType)."""
    from pyspark.sql import functions as F

    return F.date_from_unix_date(local_days(local).cast("int"))


def month(local: Column) -> Column:
    """``YYYY-MM`` of local times (string)."""
    from pyspark.sql import functions as F

    d = local_date(local)
    return F.format_string("%04d-%02d", F.year(d), F.month(d))


def month_key(local: Column) -> Column:
    """``year * 100 + month`` of local times (int): a cheap grouping key; format it with
    :func:`month_label` after aggregating."""
    from pyspark.sql import functions as F

    d = local_date(local)
    return F.year(d) * F.lit(100) + F.month(d)


def month_label(key: Column) -> Column:
    """``YYYY-MM`` of a :func:`month_key` (string), as :func:`month`."""
    from pyspark.sql import functions as F

    return F.format_string("%04d-%02d", (key / F.lit(100)).cast("int"), F.pmod(key, F.lit(100)))


def period(hour_col: Column) -> Column:
    """Period of the day (``semantics.PERIODS``) of a local hour column."""
    from pyspark.sql import functions as F

    expr = None
    for name, _start, end in PERIODS:
        expr = (F.when(hour_col < end, F.lit(name)) if expr is None
                else expr.when(hour_col < end, F.lit(name)))
    return expr  # type: ignore[return-value]
