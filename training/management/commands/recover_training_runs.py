"""manage.py recover_training_runs: fail runs whose worker or queued message is gone."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from training.services.runs import stale_after_seconds, training_run_fail_stale


class Command(BaseCommand):
    help = (
        "Record as failed the training runs that no worker can still be running: 'running' for longer "
        "than the hard time limit (every worker also does this when it starts), and, with "
        "--queued-older-than, runs whose queued message was lost."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="SECONDS",
            help=f"fail runs 'running' for longer than this (default {stale_after_seconds():g}: the hard limit + 60)",
        )
        parser.add_argument(
            "--queued-older-than",
            type=float,
            metavar="SECONDS",
            help="also fail runs queued for longer than this (only when their messages were lost)",
        )

    def handle(self, *args, **options) -> None:
        failed = training_run_fail_stale(
            older_than_seconds=options["older_than"], queued_older_than_seconds=options["queued_older_than"]
        )
        if failed:
            self.stdout.write(f"recorded {len(failed)} run(s) as failed: {', '.join(map(str, failed))}")
        else:
            self.stdout.write("no lost runs")
