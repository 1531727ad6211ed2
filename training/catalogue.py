"""The algorithm catalogue: each entry builds a scaler + estimator Pipeline.

Defaults follow the earlier service for randomforest, gradientboosting and svm.
``--param k=v`` values are checked against the estimator's real
parameters and scikit-learn's own validation before anything is trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from core.errors import DomainError


class ParamError(DomainError, ValueError):
    """A parameter name or value the estimator does not accept; ``field`` names it (400)."""

    def __init__(self, field: str, message: str):
        super().__init__(message, field)


@dataclass(frozen=True)
class Algorithm:
    name: str
    estimator_class: type[BaseEstimator]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    seeded: bool = True  # takes random_state from --seed

    def estimator_params(self, params: dict[str, Any], seed: int) -> dict[str, Any]:
        merged = dict(self.defaults)
        if self.seeded:
            merged["random_state"] = seed
        merged.update(params)
        return merged

    def build(self, params: dict[str, Any] | None = None, *, seed: int = 42) -> Pipeline:
        """The pipeline with ``params`` applied; raises ParamError for a bad name or value."""
        params = dict(params or {})
        accepted = self.estimator_class().get_params()
        for name in params:
            if name not in accepted:
                known = ", ".join(sorted(accepted))
                raise ParamError(name, f"{self.name} has no parameter {name!r}; it accepts: {known}.")
        estimator = self.estimator_class(**self.estimator_params(params, seed))
        validate = getattr(estimator, "_validate_params", None)
        if callable(validate):
            try:
                validate()
            except (ValueError, TypeError) as exc:
                bad = next((name for name in params if f"'{name}'" in str(exc)), next(iter(params), "params"))
                raise ParamError(bad, str(exc)) from None
        return Pipeline([("scaler", StandardScaler()), ("estimator", estimator)])


CATALOGUE: dict[str, Algorithm] = {
    algorithm.name: algorithm
    for algorithm in (
        Algorithm(
            "randomforest",
            RandomForestClassifier,
            {"n_estimators": 100, "max_depth": 10},
            "Random forest, 100 trees of depth at most 10.",
        ),
        Algorithm(
            "gradientboosting",
            GradientBoostingClassifier,
            {"n_estimators": 100, "max_depth": 5, "learning_rate": 0.1},
            "Gradient boosting, 100 stages of depth 5, learning rate 0.1.",
        ),
        Algorithm(
            "svm",
            SVC,
            {"kernel": "rbf", "C": 1.0, "probability": True},
            "Support vector machine, RBF kernel, C=1, with probability estimates.",
        ),
        Algorithm("knn", KNeighborsClassifier, {"n_neighbors": 5}, "k nearest neighbours, k=5.", seeded=False),
        Algorithm(
            "logisticregression",
            LogisticRegression,
            {"max_iter": 1000},
            "Multinomial logistic regression.",
        ),
    )
}
DEFAULT_ALGORITHMS: tuple[str, ...] = tuple(CATALOGUE)


def algorithm_get(name: str) -> Algorithm:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ParamError("algorithm", f"Unknown algorithm {name!r}; choose one of {', '.join(CATALOGUE)}.") from None


def parse_param_value(text: str) -> Any:
    """``--param`` values: ints, floats, true/false, none/null, else the string itself."""
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_param_pairs(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParamError("params", f"--param {pair!r}: expected NAME=VALUE, for example n_neighbors=7.")
        params[name.strip()] = parse_param_value(value)
    return params
