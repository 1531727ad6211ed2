"""Serializers: response shapes, and request shapes for the OpenAPI schema.

Penguin inputs are validated by ``classifier.encoding`` (vectorised, one rule set for
every door); the input serializers below exist to describe those rules in the schema.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from classifier.encoding import ISLANDS, RULES, SEXES


def _any_case(word: str) -> str:
    return "".join(f"[{char.lower()}{char.upper()}]" if char.isalpha() else char for char in word)


def _code_or_name(field: str, names: dict[int, str]) -> dict:
    rule = RULES[field]
    pattern = "^(?:" + "|".join(_any_case(name) for name in names.values()) + ")$"
    described = ", ".join(f"{code}={name}" for code, name in names.items())
    return {
        "oneOf": [
            {"type": "integer", "minimum": int(rule.minimum), "maximum": int(rule.maximum)},
            {"type": "string", "pattern": pattern},
        ],
        "description": f"{described}; the code or the name, in any case.",
        "example": next(iter(names)),
    }


@extend_schema_field(_code_or_name("island", ISLANDS))
class IslandField(serializers.Field):
    pass


@extend_schema_field(_code_or_name("sex", SEXES))
class SexField(serializers.Field):
    pass


class PenguinSerializer(serializers.Serializer):
    """One penguin: all seven fields are required."""

    island = IslandField(help_text="1=Torgersen, 2=Biscoe, 3=Dream, or the name.")
    bill_length_mm = serializers.FloatField(min_value=10.0, max_value=100.0, help_text="Bill length, mm.")
    bill_depth_mm = serializers.FloatField(min_value=5.0, max_value=35.0, help_text="Bill depth, mm.")
    flipper_length_mm = serializers.FloatField(min_value=100.0, max_value=300.0, help_text="Flipper length, mm.")
    body_mass_g = serializers.FloatField(min_value=1000.0, max_value=10000.0, help_text="Body mass, g.")
    sex = SexField(help_text="0=female, 1=male, or the name.")
    year = serializers.IntegerField(min_value=2000, max_value=2030, help_text="Year of observation.")


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong and how to fix it.")
    code = serializers.CharField(help_text="Machine-readable error code.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per-field messages (validation errors only); batch rows appear as instances[i].field.",
    )


class CompatMetricsSerializer(serializers.Serializer):
    train_accuracy = serializers.FloatField(allow_null=True)
    test_accuracy = serializers.FloatField(allow_null=True)
    test_precision = serializers.FloatField(allow_null=True)
    test_recall = serializers.FloatField(allow_null=True)
    test_f1 = serializers.FloatField(allow_null=True)


class CompatModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    endpoint = serializers.CharField(help_text='"POST /classify/<name>"')
    metrics = CompatMetricsSerializer()
    status = serializers.ChoiceField(choices=["ready", "broken"], help_text="broken: the model cannot serve.")
    version = serializers.IntegerField(help_text="The active version's number.")
    error = serializers.CharField(required=False, help_text="Why a broken model cannot serve.")


class CompatModelsSerializer(serializers.Serializer):
    available_models = CompatModelSerializer(many=True)


class CompatClassifySerializer(serializers.Serializer):
    model = serializers.CharField()
    species_id = serializers.IntegerField(help_text="1=Adelie, 2=Chinstrap, 3=Gentoo.")
    species_name = serializers.ChoiceField(choices=["Adelie", "Chinstrap", "Gentoo"])
