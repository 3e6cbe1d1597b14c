"""The three TF Serving calls on protos, independent of transport (gRPC and REST both use them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)

from model_server import tensors
from model_server.errors import invalid_argument
from model_server.manager import ModelRegistry, Spec
from model_server.servable import CallableSignature

SIGNATURE_DEF_FIELD = "signature_def"

Decoder = Callable[[CallableSignature], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Prediction:
    version: int
    signature_name: str
    outputs: dict[str, np.ndarray]


def spec_from_proto(model_spec: model_pb2.ModelSpec, registry: ModelRegistry) -> Spec:
    version = model_spec.version.value if model_spec.HasField("version") else None
    return registry.spec(model_spec.name, version, model_spec.version_label or None)


def run_signature(registry: ModelRegistry, spec: Spec, signature_name: str, decode: Decoder,
                  output_filter: Iterable[str] = ()) -> Prediction:
    """Resolve the servable and signature, decode and check the inputs, run; TF Serving's order."""
    with registry.hold(spec) as servable:
        signature = servable.signature(signature_name)
        inputs = decode(signature)
        for alias, array in inputs.items():
            signature.check_input(alias, array)
        outputs = signature.output_aliases(list(output_filter))
        results = signature.run(inputs, outputs)
        return Prediction(servable.version, signature.name, results)


def proto_inputs(request: predict_pb2.PredictRequest) -> Decoder:
    """Inputs from the request's TensorProtos."""
    def decode(signature: CallableSignature) -> dict[str, np.ndarray]:
        signature.check_input_aliases(request.inputs.keys())
        arrays = {}
        for alias, proto in request.inputs.items():
            try:
                arrays[alias] = tensors.to_numpy(proto)
            except tensors.TensorParseError as error:
                raise invalid_argument(f"tensor parsing error: {alias} ({error})") from None
        return arrays
    return decode


def predict(registry: ModelRegistry, request: predict_pb2.PredictRequest,
            as_content: bool = False) -> predict_pb2.PredictResponse:
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    spec = spec_from_proto(request.model_spec, registry)
    result = run_signature(registry, spec, request.model_spec.signature_name,
                           proto_inputs(request), request.output_filter)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = spec.name
    response.model_spec.version.value = result.version
    response.model_spec.signature_name = result.signature_name
    for alias, array in result.outputs.items():
        tensors.fill_proto(response.outputs[alias], array, as_content)
    return response


def get_model_metadata(
    registry: ModelRegistry, request: get_model_metadata_pb2.GetModelMetadataRequest,
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    if not request.metadata_field:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise invalid_argument(f"Metadata field {field} is not supported")
    spec = spec_from_proto(request.model_spec, registry)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    with registry.hold(spec) as servable:
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, definition in servable.meta_graph.signature_def.items():
            signature_map.signature_def[key].CopyFrom(definition)
        response.model_spec.name = spec.name
        response.model_spec.version.value = servable.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def get_model_status(registry: ModelRegistry, request: get_model_status_pb2.GetModelStatusRequest
                     ) -> get_model_status_pb2.GetModelStatusResponse:
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    name = request.model_spec.name
    version = request.model_spec.version.value if request.model_spec.HasField("version") else None
    if version is None and request.model_spec.version_label:
        version = registry.resolve_label(name, request.model_spec.version_label)
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in registry.status(name, version):
        entry = response.model_version_status.add()
        entry.version = status.version
        entry.state = status.state
        entry.status.SetInParent()  # TF Serving always reports a status, OK included
        if status.error is not None:
            entry.status.error_code = status.error.code_number
            entry.status.error_message = status.error.message
    return response
