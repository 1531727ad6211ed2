"""Open Inference Protocol tensors ↔ the service's parsed penguin rows.

A request carries its inputs in one of two layouts:

- one tensor of shape ``[N, 7]`` (FP32 or FP64): the seven fields in the API's order
  (``FIELDS``), island and sex as codes; its name is free;
- one tensor per field, named like the API field, of shape ``[N]`` or ``[N, 1]``; any
  numeric datatype, and ``BYTES`` names for island and sex (``"Biscoe"``, ``"female"``),
  as MLServer's column convention sends a table.

Tensor data is JSON (flat or nested, row-major) or, with the binary tensor data extension
that tritonclient uses by default, raw little-endian bytes after the JSON header. Every
value then goes through ``parse_rows``, the rules every other door uses; a problem is
reported as ``field (row i): message``.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.encoding import FIELDS, InputError, parse_rows

# Header of the binary tensor data extension: the length of the JSON part of the body.
HEADER_LENGTH = "Inference-Header-Content-Length"

NUMERIC_DTYPES: dict[str, str] = {
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
MATRIX_DTYPES = ("FP32", "FP64")
NAMED_FIELDS = ("island", "sex")  # the fields that may come as BYTES names

OUTPUT_PREDICT = "predict"
OUTPUT_PROBA = "predict_proba"
OUTPUT_PREDICTION_ID = "prediction_id"
OUTPUTS = (OUTPUT_PREDICT, OUTPUT_PROBA, OUTPUT_PREDICTION_ID)
DEFAULT_OUTPUTS = (OUTPUT_PREDICT, OUTPUT_PROBA)

MAX_REPORTED = 5  # problems quoted in one error message


class ProtocolError(Exception):
    """A request the protocol cannot accept; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class InferBody:
    """An inference request as received: its JSON header and the binary bytes after it."""

    header: Any
    binary: bytes = b""


@dataclass
class InferRequest:
    """A validated inference request."""

    id: str | None
    matrix: np.ndarray  # (N, 7) float64 in FIELDS order
    outputs: list[str]
    binary_outputs: set[str] = field(default_factory=set)
    explicit_outputs: bool = False


def split_body(raw: bytes, header_length: str | None) -> InferBody:
    """The JSON header and the binary tail of a request body (binary tensor data extension)."""
    if header_length is None:
        return InferBody(_json(raw))
    try:
        size = int(header_length)
    except ValueError:
        raise ProtocolError(f"{HEADER_LENGTH} must be a whole number of bytes; got {header_length[:20]!r}.") from None
    if not 0 < size <= len(raw):
        raise ProtocolError(f"{HEADER_LENGTH} is {size}, but the body has {len(raw)} bytes.")
    return InferBody(_json(raw[:size]), raw[size:])


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _json(raw: bytes) -> Any:
    if not raw.strip():
        raise ProtocolError('Send an inference request: {"inputs": [{"name", "shape", "datatype", "data"}]}.')
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"Body is not valid JSON: {str(exc)[:200]}.") from None


# --- request -----------------------------------------------------------------------------------


def decode_request(body: InferBody, *, max_rows: int) -> InferRequest:
    """Validate an inference request and turn its tensors into parsed rows; raises ProtocolError."""
    header = body.header
    if not isinstance(header, dict):
        raise ProtocolError('Expected a JSON object with "inputs".')
    request_id = header.get("id")
    if "id" in header and not isinstance(request_id, str):
        raise ProtocolError('"id" must be a string.')
    parameters = _object(header, "parameters", "parameters")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError('"inputs" must be a non-empty list of tensors.')
    tensors = _read_tensors(inputs, body.binary)
    matrix = _matrix(tensors, max_rows=max_rows)
    outputs, binary_outputs, explicit = _requested_outputs(header, parameters)
    return InferRequest(
        id=request_id, matrix=matrix, outputs=outputs, binary_outputs=binary_outputs, explicit_outputs=explicit
    )


def _object(container: dict, key: str, where: str) -> dict:
    """``container[key]``, a JSON object when present (``null`` is not one); ``{}`` when absent."""
    if key not in container:
        return {}
    value = container[key]
    if not isinstance(value, dict):
        raise ProtocolError(f'"{where}" must be a JSON object.')
    return value


@dataclass
class Tensor:
    name: str
    shape: list[int]
    datatype: str
    values: list[Any]  # flat, row-major, Python scalars


def _read_tensors(inputs: list, binary: bytes) -> list[Tensor]:
    tensors = []
    offset = 0
    for index, raw in enumerate(inputs):
        where = f"inputs[{index}]"
        if not isinstance(raw, dict):
            raise ProtocolError(f"{where} must be a tensor: an object with name, shape, datatype and data.")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"{where}.name must be a non-empty string.")
        where = f"input {name[:40]!r}"
        shape = raw.get("shape")
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape)
        ):
            raise ProtocolError(f"{where}: shape must be a list of non-negative whole numbers, such as [2, 7].")
        datatype = raw.get("datatype")
        if not isinstance(datatype, str) or (datatype not in NUMERIC_DTYPES and datatype != "BYTES"):
            raise ProtocolError(
                f"{where}: datatype {str(datatype)[:20]!r} is not accepted; use FP32 or FP64 "
                "(BYTES for island and sex names)."
            )
        count = math.prod(shape)
        parameters = _object(raw, "parameters", f"{where} parameters")
        size = parameters.get("binary_data_size")
        if size is not None:
            if "data" in raw:
                raise ProtocolError(f"{where}: give either data or binary_data_size, not both.")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
                raise ProtocolError(f"{where}: binary_data_size {size!r} does not fit the binary part of the body.")
            values = _from_binary(binary[offset : offset + size], datatype, count, where)
            offset += size
        else:
            if "data" not in raw:
                raise ProtocolError(f"{where}: data is required.")
            if not isinstance(raw["data"], list):
                raise ProtocolError(f"{where}: data must be a list of values, flat or nested as the shape.")
            values = _flatten(raw["data"], where)
            _check_json_types(values, datatype, where)
        if len(values) != count:
            raise ProtocolError(f"{where}: shape {shape} holds {count} values, but data has {len(values)}.")
        tensors.append(Tensor(name=name, shape=shape, datatype=datatype, values=values))
    if offset != len(binary):
        raise ProtocolError(f"The body has {len(binary) - offset} bytes of binary data that no input claims.")
    return tensors


def _flatten(data: list, where: str) -> list[Any]:
    """Row-major values of flat or nested JSON data."""
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _check_json_types(values: list[Any], datatype: str, where: str) -> None:
    if datatype == "BYTES":
        bad = next((value for value in values if not isinstance(value, str)), None)
        if bad is not None:
            raise ProtocolError(f"{where}: BYTES data must be strings; got {_short(bad)}.")
        return
    bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))), None)
    if bad is not None:
        raise ProtocolError(f"{where}: {datatype} data must be numbers; got {_short(bad)}.")


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _from_binary(raw: bytes, datatype: str, count: int, where: str) -> list[Any]:
    if datatype == "BYTES":
        values, position = [], 0
        while position < len(raw):
            if position + 4 > len(raw):
                raise ProtocolError(f"{where}: BYTES data ends inside an element's length.")
            (length,) = struct.unpack_from("<I", raw, position)
            position += 4
            if position + length > len(raw):
                raise ProtocolError(f"{where}: a BYTES element runs past the end of its data.")
            try:
                values.append(raw[position : position + length].decode("utf-8"))
            except UnicodeDecodeError:
                raise ProtocolError(f"{where}: BYTES elements must be UTF-8 text.") from None
            position += length
        return values
    dtype = np.dtype(NUMERIC_DTYPES[datatype])
    if len(raw) != count * dtype.itemsize:
        raise ProtocolError(
            f"{where}: {count} {datatype} values take {count * dtype.itemsize} bytes; binary_data_size is {len(raw)}."
        )
    array = np.frombuffer(raw, dtype=dtype)
    if dtype.kind == "f" and dtype.itemsize < 8:
        # 39.1 sent as FP32 arrives as 39.09999847...: read each value back as the shortest
        # decimal that gives the same FP32 number, which is what the client wrote.
        return array.astype(str).astype(np.float64).tolist()
    return array.tolist()


def _matrix(tensors: list[Tensor], *, max_rows: int) -> np.ndarray:
    if len(tensors) == 1 and tensors[0].name not in FIELDS:
        tensor = tensors[0]
        where = f"input {tensor.name[:40]!r}"
        if len(tensor.shape) != 2 or tensor.shape[1] != len(FIELDS):
            raise ProtocolError(
                f"{where}: a single input must have shape [N, {len(FIELDS)}] (the fields {', '.join(FIELDS)}); "
                f"got {tensor.shape}. Or send one input per field, named like the field."
            )
        if tensor.datatype not in MATRIX_DTYPES:
            raise ProtocolError(f"{where}: an [N, {len(FIELDS)}] input must be FP32 or FP64; got {tensor.datatype}.")
        rows_count = tensor.shape[0]
        _check_rows(rows_count, max_rows)
        width = len(FIELDS)
        values = tensor.values
        columns = {name: values[position::width] for position, name in enumerate(FIELDS)}
    else:
        columns = _columns(tensors)
        rows_count = len(next(iter(columns.values())))
        _check_rows(rows_count, max_rows)
    rows = [dict(zip(FIELDS, row)) for row in zip(*(columns[name] for name in FIELDS))]
    try:
        return parse_rows(rows, prefix="row")
    except InputError as exc:
        raise ProtocolError(_describe(exc.errors)) from None


def _columns(tensors: list[Tensor]) -> dict[str, list[Any]]:
    unknown = [tensor.name for tensor in tensors if tensor.name not in FIELDS]
    if unknown:
        raise ProtocolError(
            f"Unknown input {unknown[0][:40]!r}: send one input per field named {', '.join(FIELDS)}, "
            f"or a single [N, {len(FIELDS)}] input."
        )
    columns: dict[str, list[Any]] = {}
    rows_count: int | None = None
    for tensor in tensors:
        where = f"input {tensor.name!r}"
        if tensor.name in columns:
            raise ProtocolError(f"{where} is given twice.")
        if not (len(tensor.shape) == 1 or (len(tensor.shape) == 2 and tensor.shape[1] == 1)):
            raise ProtocolError(f"{where}: shape must be [N] or [N, 1]; got {tensor.shape}.")
        if tensor.datatype == "BYTES" and tensor.name not in NAMED_FIELDS:
            raise ProtocolError(f"{where}: BYTES is accepted for island and sex only; send numbers.")
        if rows_count is not None and tensor.shape[0] != rows_count:
            raise ProtocolError(f"{where} has {tensor.shape[0]} rows; the other inputs have {rows_count}.")
        rows_count = tensor.shape[0]
        columns[tensor.name] = tensor.values
    missing = [name for name in FIELDS if name not in columns]
    if missing:
        raise ProtocolError(f"Missing input {', '.join(missing)}: all seven fields are required ({', '.join(FIELDS)}).")
    return columns


def _check_rows(count: int, max_rows: int) -> None:
    if count == 0:
        raise ProtocolError("Send at least one row.")
    if count > max_rows:
        raise ProtocolError(
            f"{count} rows in one request; at most {max_rows} are accepted (PENGUIN_MAX_BATCH). Split the batch.",
            status=413,
        )


def _describe(errors: dict[str, list[str]]) -> str:
    """``row[3].island`` → ``island (row 3): …``, a few problems per message."""
    parts = []
    for key, messages in list(errors.items())[:MAX_REPORTED]:
        row, _, name = key.partition(".")
        index = row[len("row[") : -1]
        parts.append(f"{name or 'row'} (row {index}): {' '.join(messages)}")
    more = len(errors) - MAX_REPORTED
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _requested_outputs(header: dict, parameters: dict) -> tuple[list[str], set[str], bool]:
    binary_default = parameters.get("binary_data_output") is True
    raw = header.get("outputs")
    if "outputs" not in header:
        names = list(DEFAULT_OUTPUTS)
        return names, set(names) if binary_default else set(), False
    if not isinstance(raw, list) or not raw:
        raise ProtocolError('"outputs" must be a non-empty list of {"name": ...} objects.')
    names: list[str] = []
    binary: set[str] = set()
    for index, output in enumerate(raw):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUTS:
            raise ProtocolError(
                f"outputs[{index}]: unknown output {str(name)[:40]!r}; choose from {', '.join(OUTPUTS)}."
            )
        if name in names:
            raise ProtocolError(f"outputs[{index}]: {name} is asked for twice.")
        names.append(name)
        flag = _object(output, "parameters", f"outputs[{index}].parameters").get("binary_data")
        if flag is True or (flag is None and binary_default):
            binary.add(name)
    return names, binary, True


# --- response ----------------------------------------------------------------------------------


def encode_response(
    *,
    request: InferRequest,
    model_name: str,
    model_version: int,
    species_ids: np.ndarray,
    probabilities: np.ndarray | None,
    prediction_ids: list[int],
) -> tuple[bytes, int | None]:
    """The response body, and the length of its JSON header when binary outputs follow it."""
    tensors = {
        OUTPUT_PREDICT: ("INT64", [len(species_ids)], np.asarray(species_ids, dtype="<i8")),
        OUTPUT_PREDICTION_ID: ("INT64", [len(prediction_ids)], np.asarray(prediction_ids, dtype="<i8")),
    }
    if probabilities is not None:
        tensors[OUTPUT_PROBA] = ("FP64", list(probabilities.shape), np.asarray(probabilities, dtype="<f8"))
    outputs, blobs = [], []
    for name in request.outputs:
        if name not in tensors:  # predict_proba of a model without probabilities, not asked for
            continue
        datatype, shape, array = tensors[name]
        output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if name in request.binary_outputs:
            blob = array.tobytes()
            output["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            output["data"] = array.ravel().tolist()
        outputs.append(output)
    body: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if request.id is not None:
        body["id"] = request.id
    body["outputs"] = outputs
    header = json.dumps(body, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
