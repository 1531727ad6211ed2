"""manage.py generate_predictions: fill the prediction log with synthetic rows (benchmarks, demos)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from classifier.synthetic import FillError, prediction_log_fill


class Command(BaseCommand):
    help = (
        "Add synthetic predictions (dataset penguins classified by every serving model) until the log "
        "holds --total rows. Uses COPY on PostgreSQL. For benchmarks and demos, not for production data."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--total", type=int, required=True, help="Rows the log should hold afterwards.")
        parser.add_argument("--clear", action="store_true", help="Delete every logged prediction first.")
        parser.add_argument("--days", type=float, default=30.0, help="Spread the rows over this many past days.")
        parser.add_argument("--seed", type=int, default=0, help="Random seed (default 0).")

    def handle(self, *args, total: int, clear: bool, days: float, seed: int, **options) -> None:
        if total < 0:
            raise CommandError("--total must be 0 or more.")
        if days <= 0:
            raise CommandError("--days must be more than 0.")
        started = time.perf_counter()
        verbose = options["verbosity"] > 1

        def progress(added: int) -> None:
            if verbose:
                self.stdout.write(f"  {added:,} rows added")

        try:
            report = prediction_log_fill(total=total, clear=clear, days=days, seed=seed, progress=progress)
        except FillError as exc:
            raise CommandError(str(exc)) from None
        seconds = time.perf_counter() - started
        rate = f", {report.added / seconds:,.0f} rows/s" if report.added else ""
        self.stdout.write(
            f"{report.added:,} rows added with {report.method} in {seconds:.1f} s{rate}; "
            f"the log holds {report.after:,}."
        )
