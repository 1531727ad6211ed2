"""The admin's "Train a new model" form: the same checks as the API and ``train_model``."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from classifier.models import model_name_validator

from .catalogue import CATALOGUE, ParamError, parse_param_pairs
from .holdout import DEFAULT_SPLIT_SEED
from .models import ActivationMode
from .services.runs import MAX_SEED, training_request_validate

# How the form explains each activation mode.
ACTIVATION_LABELS = {
    ActivationMode.NOT_WORSE: "not worse: replace the champion unless significantly worse on the same rows",
    ActivationMode.BETTER: "better: replace the champion only if significantly better on the same rows",
    ActivationMode.FORCE: "force: serve the new version whatever the evidence",
    ActivationMode.NEVER: "never: keep the current version serving",
}


def params_from_text(text: str) -> dict[str, Any]:
    """Estimator params typed by a person: a JSON object, or one ``name=value`` per line."""
    text = (text or "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParamError("params", f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
        if not isinstance(value, dict):
            raise ParamError("params", "Give a JSON object of parameter names to values.")
        return value
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return parse_param_pairs(lines)


class TrainModelForm(forms.Form):
    algorithm = forms.ChoiceField(
        choices=[(name, f"{name}: {spec.description}") for name, spec in CATALOGUE.items()],
        help_text="The scaler + estimator pipeline to train.",
    )
    name = forms.CharField(
        required=False,
        max_length=64,
        validators=[model_name_validator],
        help_text="Model name; empty means the algorithm's name. An existing name gets a new version.",
    )
    params = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 60, "placeholder": "n_neighbors=7\nweights=distance"}),
        help_text='Estimator parameters: one name=value per line, or a JSON object such as {"n_neighbors": 7}.',
    )
    test_size = forms.FloatField(
        initial=0.2, min_value=0.05, max_value=0.5, help_text="Held-out share for the test metrics."
    )
    seed = forms.IntegerField(
        initial=42, min_value=0, max_value=MAX_SEED, help_text="The estimator's seed; it does not move the test rows."
    )
    split_seed = forms.IntegerField(
        required=False,
        initial=DEFAULT_SPLIT_SEED,
        min_value=0,
        max_value=MAX_SEED,
        help_text="Decides, with the data, which rows are held out; keep it to compare with the champion on its rows.",
    )
    activation = forms.ChoiceField(
        choices=[(mode.value, ACTIVATION_LABELS[mode]) for mode in ActivationMode],
        initial=ActivationMode.NOT_WORSE,
        label="Activate",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            params = params_from_text(cleaned.get("params", ""))
            name, _ = training_request_validate(
                algorithm=cleaned["algorithm"],
                params=params,
                model_name=cleaned.get("name") or None,
                data_path=None,
                test_size=cleaned["test_size"],
            )
        except ParamError as exc:
            # A parameter's own name is not a form field: its message goes under "params".
            field = exc.field if exc.field in {"algorithm", "name", "test_size"} else "params"
            if exc.field == "data":
                field = None
            self.add_error(field, str(exc))
            return cleaned
        cleaned["params"] = params
        cleaned["model_name"] = name
        return cleaned

    def run_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``training_run_start``."""
        data = self.cleaned_data
        return {
            "algorithm": data["algorithm"],
            "params": data["params"],
            "model_name": data["model_name"],
            "test_size": data["test_size"],
            "seed": data["seed"],
            "split_seed": DEFAULT_SPLIT_SEED if data.get("split_seed") is None else data["split_seed"],
            "activation": data["activation"],
        }
