"""Versions side by side: parameters (those unlike scikit-learn's defaults marked), metrics,
evaluation evidence, live accuracy and prediction counts, one column per version."""

from __future__ import annotations

import importlib
from typing import Any

from django.db.models import Count

from ..models import ModelVersion, Prediction
from ..selectors import versions_live_accuracy
from .common import METRICS, metric


def estimator_defaults(estimator: str) -> dict[str, Any] | None:
    """The default parameters of a scikit-learn estimator class named ``module.Class``; None if unknown."""
    module_name, _, class_name = estimator.rpartition(".")
    if not module_name.startswith("sklearn."):
        return None  # only scikit-learn's own classes are imported by name
    try:
        return getattr(importlib.import_module(module_name), class_name)().get_params()
    except Exception:
        return None


def _shown(value: Any) -> str:
    return "-" if value is None else str(value)


def versions_compare(versions: list[ModelVersion]) -> dict:
    """Rows of (label, [cell per version]); a cell is (text, differs_from_default)."""
    ids = [version.pk for version in versions]
    live = versions_live_accuracy(version_ids=ids)
    counts = dict(
        Prediction.objects.filter(version_id__in=ids).order_by().values_list("version_id").annotate(n=Count("id"))
    )
    names = sorted({name for version in versions for name in (version.params or {})})
    defaults = {version.pk: estimator_defaults(version.estimator) for version in versions}
    params = []
    for name in names:
        cells = []
        for version in versions:
            value = (version.params or {}).get(name)
            known = defaults[version.pk]
            differs = known is not None and name in known and repr(known[name]) != repr(value)
            cells.append((_shown(value), differs))
        params.append((name, cells))
    facts = [
        ("status", [(version.status, False) for version in versions]),
        ("algorithm", [(version.algorithm or "-", False) for version in versions]),
        ("created", [(version.created_at.strftime("%Y-%m-%d %H:%M"), False) for version in versions]),
        ("split seed / seed", [(_split(version), False) for version in versions]),
    ]
    metrics = [(label, [(metric(version.metrics, name), False) for version in versions]) for name, label in METRICS]
    evidence = [
        ("evaluated against", [(_evaluation(version, "against_version", "v{}"), False) for version in versions]),
        ("rows compared", [(_evaluation(version, "rows"), False) for version in versions]),
        ("right: candidate / champion", [(_right(version), False) for version in versions]),
        ("McNemar exact p", [(_evaluation(version, "p_value", "{:.3g}"), False) for version in versions]),
        ("decision", [(_evaluation(version, "decision"), False) for version in versions]),
    ]
    usage = [
        ("predictions", [(str(counts.get(version.pk, 0)), False) for version in versions]),
        ("live accuracy", [(_live(live.get(version.pk)), False) for version in versions]),
    ]
    return {
        "versions": versions,
        "sections": [
            ("Version", facts),
            ("Parameters (marked: set unlike scikit-learn's default)", params),
            ("Metrics", metrics),
            ("Evaluation against the champion when registered", evidence),
            ("Serving", usage),
        ],
    }


def _split(version: ModelVersion) -> str:
    dataset = version.dataset or {}
    return f"{_shown(dataset.get('split_seed'))} / {_shown(dataset.get('seed'))}"


def _evaluation(version: ModelVersion, key: str, template: str = "{}") -> str:
    value = (version.evaluation or {}).get(key)
    return "-" if value is None else template.format(value)


def _right(version: ModelVersion) -> str:
    evaluation = version.evaluation or {}
    if "candidate_correct" not in evaluation:
        return "-"
    return (
        f"{evaluation['candidate_correct']} / {evaluation['champion_correct']} "
        f"(only: {evaluation['candidate_only']} / {evaluation['champion_only']})"
    )


def _live(stats: dict | None) -> str:
    if not stats:
        return "no feedback yet"
    return f"{stats['accuracy']:.3f} ({stats['correct']}/{stats['labelled']})"
