"""A paginator for the admin's big tables that never counts every row."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property


class EstimatedCountPaginator(Paginator):
    """Counts at most ``count_cap`` rows; an unfiltered list on PostgreSQL uses the planner's estimate.

    ``SELECT COUNT(*)`` over a million-row table is a full scan on PostgreSQL, paid again on
    every admin page. Unfiltered, the row estimate in ``pg_class.reltuples`` (kept fresh by
    autovacuum) is free; filtered, ``COUNT`` over a ``LIMIT count_cap`` subquery stops early,
    so the last reachable page is ``count_cap / per_page`` (narrow the filters to go further).
    """

    count_cap = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where:
            estimate = table_row_estimate(queryset.model, using=queryset.db)
            if estimate is not None and estimate >= self.count_cap:
                return estimate
        return queryset.order_by()[: self.count_cap].count()


def table_row_estimate(model, *, using: str = "default") -> int | None:
    """PostgreSQL's estimate of the table's rows, or None (other databases, never analysed)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        row = cursor.fetchone()
    # reltuples is -1 for a table never vacuumed or analysed (PostgreSQL 14+).
    return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None
