"""Times as the database can hold them."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive time is read as UTC.

    PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows (``-17:57``). An instant
    that Python cannot hold in UTC (year 1 at +10:00 is still year 0 in UTC) lies before or
    after every row, so it becomes the earliest or latest time there is.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)
