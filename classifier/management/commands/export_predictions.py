"""manage.py export_predictions: the prediction log as JSON lines (the earlier format) or CSV."""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, datetime, time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from classifier.exports import FORMATS, prediction_export
from classifier.models import MLModel


def parse_since(text: str) -> datetime:
    """An ISO date (midnight UTC) or date-time (UTC unless it names a zone)."""
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            moment = datetime.combine(day, time.min) if day else None
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"--since {text!r}: expected an ISO date or time, e.g. 2025-05-01 or 2025-05-01T12:00:00Z.")
    return timezone.make_aware(moment, UTC) if timezone.is_naive(moment) else moment


class Command(BaseCommand):
    help = (
        "Write the prediction log, oldest first, as JSON lines "
        '{"timestamp", "input", "result": {"model", "species_id", "species_name"}} (the earlier '
        "service's format) or as CSV. Streams from the database; safe for millions of rows."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", help="Only predictions at or after this ISO date/time (UTC if no zone).")
        parser.add_argument("--model", help="Only predictions of this model.")
        parser.add_argument("--format", choices=FORMATS, default="jsonl", help="jsonl (default) or csv.")
        parser.add_argument("--output", "-o", help="Write to this file (replaced atomically); default stdout.")

    def handle(self, *args, **options) -> None:
        since = parse_since(options["since"]) if options["since"] else None
        model_name = options["model"]
        if model_name and not MLModel.objects.filter(name=model_name).exists():
            known = ", ".join(MLModel.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"--model {model_name!r}: no such model (known: {known}).")
        export = {"fmt": options["format"], "since": since, "model_name": model_name}

        if not options["output"]:
            try:
                count = prediction_export(stream=options.get("stdout") or sys.stdout, **export)
                sys.stdout.flush()
            except BrokenPipeError:
                # The reader stopped early (`export_predictions | head`): that is its choice, not an
                # error. Point stdout at /dev/null so that the exit's own flush cannot fail again.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return
            self.stderr.write(f"exported {count} predictions")
            return

        target = Path(options["output"])
        try:
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise CommandError(f"--output {target}: cannot write there ({exc.strerror}).") from None
        try:
            with os.fdopen(handle, "w", newline="", encoding="utf-8") as stream:
                count = prediction_export(stream=stream, **export)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self.stderr.write(f"exported {count} predictions to {target}")
