"""Shapes of the Open Inference Protocol's JSON objects, for the OpenAPI schema.

Requests are read by ``codec`` (tensors, binary data); these describe them and the answers.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.encoding import FIELDS

from .codec import NUMERIC_DTYPES, OUTPUTS

DATATYPES = [*NUMERIC_DTYPES, "BYTES"]
OUTPUT_DATATYPES = ["INT64", "FP64"]
OUTPUT_NAMES = list(OUTPUTS)
SCALAR = {"oneOf": [{"type": "number"}, {"type": "string"}]}


@extend_schema_field(
    {
        "type": "array",
        "items": {"oneOf": [SCALAR, {"type": "array", "items": {}}]},
        "description": "The values, row-major, flat or nested as the shape.",
    }
)
class TensorDataField(serializers.Field):
    pass


class InferenceErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="What was wrong; a bad value names its field and row.")


class ServerMetadataSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    extensions = serializers.ListField(child=serializers.CharField())


class ServerLiveSerializer(serializers.Serializer):
    live = serializers.BooleanField()


class ServerReadySerializer(serializers.Serializer):
    ready = serializers.BooleanField()
    error = serializers.CharField(required=False, help_text="Why the server is not ready.")


class ModelReadySerializer(serializers.Serializer):
    name = serializers.CharField()
    ready = serializers.BooleanField()
    error = serializers.CharField(required=False, help_text="Why the model cannot serve.")


class TensorMetadataSerializer(serializers.Serializer):
    name = serializers.CharField()
    datatype = serializers.ChoiceField(choices=DATATYPES)
    shape = serializers.ListField(child=serializers.IntegerField(), help_text="-1: any size.")
    parameters = serializers.DictField(required=False)


class ModelMetadataSerializer(serializers.Serializer):
    name = serializers.CharField()
    versions = serializers.ListField(child=serializers.CharField(), help_text="Every version number of the model.")
    platform = serializers.CharField(help_text="sklearn, or onnxruntime for a version served through ONNX.")
    inputs = TensorMetadataSerializer(many=True)
    outputs = TensorMetadataSerializer(many=True)


class InferenceInputSerializer(serializers.Serializer):
    name = serializers.CharField(
        help_text=f"Any name for one [N, {len(FIELDS)}] tensor; else the field's name ({', '.join(FIELDS)})."
    )
    shape = serializers.ListField(child=serializers.IntegerField(min_value=0), min_length=1, max_length=2)
    datatype = serializers.ChoiceField(choices=DATATYPES)
    parameters = serializers.DictField(
        required=False, help_text="binary_data_size: the tensor's bytes follow the JSON (binary tensor data)."
    )
    data = TensorDataField(required=False)


class InferenceRequestedOutputSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=OUTPUT_NAMES)
    parameters = serializers.DictField(required=False, help_text="binary_data: true to receive raw bytes.")


class InferenceRequestSerializer(serializers.Serializer):
    id = serializers.CharField(required=False, allow_blank=True, help_text="Echoed in the answer.")
    parameters = serializers.DictField(required=False, help_text="binary_data_output: true for raw-byte outputs.")
    # ListField, not many=True: the schema then says the lists may not be empty.
    inputs = serializers.ListField(child=InferenceInputSerializer(), min_length=1)
    outputs = serializers.ListField(
        child=InferenceRequestedOutputSerializer(),
        min_length=1,
        required=False,
        help_text="Default: predict and predict_proba.",
    )


class InferenceOutputSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=OUTPUT_NAMES)
    datatype = serializers.ChoiceField(choices=OUTPUT_DATATYPES)
    shape = serializers.ListField(child=serializers.IntegerField())
    parameters = serializers.DictField(required=False)
    data = serializers.ListField(child=serializers.FloatField(), required=False)


class InferenceResponseSerializer(serializers.Serializer):
    model_name = serializers.CharField()
    model_version = serializers.CharField(help_text="The version that answered.")
    id = serializers.CharField(required=False, allow_blank=True)
    outputs = InferenceOutputSerializer(many=True)
