"""Celery tasks of the serving side: the scheduled monitoring check (beat sends it)."""

from __future__ import annotations

import logging

from celery import shared_task

from .services.monitoring import monitoring_check_all

logger = logging.getLogger(__name__)


@shared_task(name="classifier.monitor_models", ignore_result=True)
def monitor_models() -> int:
    """Check every active version once and store the reports; returns how many were checked."""
    reports = monitoring_check_all()
    for report in reports:
        logger.info("monitoring: %s", report)
    return len(reports)
