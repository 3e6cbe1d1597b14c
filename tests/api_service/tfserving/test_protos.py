"""Our .proto subset: generated code up to date, and wire-compatible with tensorflow-serving-api."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from tensorflow.core.framework import tensor_pb2 as tf_tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2 as tf_meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2 as tf_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2 as tf_status_pb2
from tensorflow_serving.apis import model_service_pb2 as tf_model_service_pb2
from tensorflow_serving.apis import predict_pb2 as tf_predict_pb2
from tensorflow_serving.apis import prediction_service_pb2 as tf_prediction_service_pb2

from app.tfserving.protos import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    meta_graph_pb2,
    model_service_pb2,
    predict_pb2,
    prediction_service_pb2,
    tensor_pb2,
)
from tests.api_service.conftest import API_DIR
from tests.support.paths import SCRIPTS_DIR

GENERATED = API_DIR / "app" / "tfserving" / "protos"


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    out = tmp_path / "protos"
    subprocess.run([SCRIPTS_DIR / "regen-protos", "--out", out], check=True, capture_output=True)
    committed = sorted(p.name for p in GENERATED.glob("*.py"))
    fresh = sorted(p.name for p in out.glob("*.py"))
    assert committed == fresh, "run scripts/regen-protos"
    _, mismatch, errors = filecmp.cmpfiles(GENERATED, out, fresh, shallow=False)
    assert not mismatch and not errors, f"stale generated code {mismatch}: run scripts/regen-protos"


# Each of our messages beside the official one with the same full name.
MESSAGE_PAIRS = [
    (predict_pb2.PredictRequest, tf_predict_pb2.PredictRequest),
    (predict_pb2.PredictResponse, tf_predict_pb2.PredictResponse),
    (get_model_metadata_pb2.GetModelMetadataRequest, tf_metadata_pb2.GetModelMetadataRequest),
    (get_model_metadata_pb2.GetModelMetadataResponse, tf_metadata_pb2.GetModelMetadataResponse),
    (get_model_metadata_pb2.SignatureDefMap, tf_metadata_pb2.SignatureDefMap),
    (get_model_status_pb2.GetModelStatusRequest, tf_status_pb2.GetModelStatusRequest),
    (get_model_status_pb2.GetModelStatusResponse, tf_status_pb2.GetModelStatusResponse),
    (meta_graph_pb2.SignatureDef, tf_meta_graph_pb2.SignatureDef),
    (tensor_pb2.TensorProto, tf_tensor_pb2.TensorProto),
]


def _walk(ours: Descriptor, theirs: Descriptor, seen: set[str]) -> None:
    """Every field we declare exists in the official message with the same number, type,
    label and (recursively) message/enum type; every enum value has the official number."""
    if ours.full_name in seen:
        return
    seen.add(ours.full_name)
    assert ours.full_name == theirs.full_name
    for field in ours.fields:
        official = theirs.fields_by_name.get(field.name)
        assert official is not None, f"{ours.full_name}.{field.name} is not official"
        where = f"{ours.full_name}.{field.name}"
        assert (field.number, field.type, field.is_repeated) == (
            official.number, official.type, official.is_repeated), where
        assert (field.containing_oneof is None) == (official.containing_oneof is None), where
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            _walk(field.message_type, official.message_type, seen)
        if field.type == FieldDescriptor.TYPE_ENUM:
            official_numbers = {v.name: v.number for v in official.enum_type.values}
            for value in field.enum_type.values:
                assert official_numbers.get(value.name) == value.number, f"{where}={value.name}"


@pytest.mark.parametrize(("ours", "theirs"), MESSAGE_PAIRS, ids=lambda c: c.DESCRIPTOR.name)
def test_messages_match_the_official_schema(ours: type, theirs: type) -> None:
    _walk(ours.DESCRIPTOR, theirs.DESCRIPTOR, set())


@pytest.mark.parametrize(("ours", "theirs", "methods"), [
    (prediction_service_pb2, tf_prediction_service_pb2, ("Predict", "GetModelMetadata")),
    (model_service_pb2, tf_model_service_pb2, ("GetModelStatus",)),
], ids=["PredictionService", "ModelService"])
def test_services_have_the_official_paths(ours: ModuleType, theirs: ModuleType,
                                          methods: tuple[str, ...]) -> None:
    (service,) = ours.DESCRIPTOR.services_by_name.values()
    official = theirs.DESCRIPTOR.services_by_name[service.name]
    assert service.full_name == official.full_name
    for name in methods:
        mine, reference = service.methods_by_name[name], official.methods_by_name[name]
        assert mine.input_type.full_name == reference.input_type.full_name
        assert mine.output_type.full_name == reference.output_type.full_name


def _roundtrip(message: Message, official_class: type[Message], our_class: type[Message]
               ) -> tuple[Message, Message]:
    """ours -> bytes -> official -> bytes -> ours; returns (official, ours again)."""
    official = official_class.FromString(message.SerializeToString())
    back = our_class.FromString(official.SerializeToString())
    return official, back


def test_predict_request_with_tensor_content() -> None:
    image = np.random.default_rng(0).random((1, 150, 150, 3), dtype=np.float32)
    request = predict_pb2.PredictRequest(output_filter=["dense_3"])
    request.model_spec.name = "cassava"
    request.model_spec.version.value = 7
    request.model_spec.signature_name = "serving_default"
    tensor = request.inputs["conv2d_4_input"]
    tensor.dtype = 1
    tensor.tensor_shape.dim.add().size = 1
    for size in (150, 150, 3):
        tensor.tensor_shape.dim.add().size = size
    tensor.tensor_content = image.tobytes()

    official, back = _roundtrip(request, tf_predict_pb2.PredictRequest, predict_pb2.PredictRequest)
    import tensorflow as tf

    assert official.model_spec.version.value == 7
    assert official.model_spec.signature_name == "serving_default"
    assert list(official.output_filter) == ["dense_3"]
    np.testing.assert_array_equal(tf.make_ndarray(official.inputs["conv2d_4_input"]), image)
    assert back == request


def test_predict_response_float_val_and_tensor_content_from_official() -> None:
    import tensorflow as tf

    reply = tf_predict_pb2.PredictResponse()
    reply.model_spec.name = "cassava"
    reply.model_spec.version.value = 3
    probabilities = np.array([[0.1, 0.2, 0.3, 0.15, 0.25]], dtype=np.float32)
    reply.outputs["packed"].CopyFrom(tf.make_tensor_proto(probabilities))
    as_floats = reply.outputs["floats"]
    as_floats.dtype = tf.float32.as_datatype_enum
    as_floats.tensor_shape.dim.add().size = 1
    as_floats.tensor_shape.dim.add().size = 5
    as_floats.float_val.extend(probabilities[0].tolist())

    ours = predict_pb2.PredictResponse.FromString(reply.SerializeToString())
    assert ours.model_spec.version.value == 3
    assert ours.outputs["packed"].tensor_content == probabilities.tobytes()
    assert list(ours.outputs["floats"].float_val) == probabilities[0].tolist()
    assert tf_predict_pb2.PredictResponse.FromString(ours.SerializeToString()) == reply


def _official_metadata() -> tf_metadata_pb2.GetModelMetadataResponse:
    signature = tf_meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    inp = signature.inputs["conv2d_4_input"]
    inp.name, inp.dtype = "conv2d_4_input:0", 1
    for size in (-1, 150, 150, 3):
        inp.tensor_shape.dim.add().size = size
    out = signature.outputs["dense_3"]
    out.name, out.dtype = "dense_3/Softmax:0", 1
    for size in (-1, 5):
        out.tensor_shape.dim.add().size = size
    signatures = tf_metadata_pb2.SignatureDefMap()
    signatures.signature_def["serving_default"].CopyFrom(signature)
    reply = tf_metadata_pb2.GetModelMetadataResponse()
    reply.model_spec.name = "saved_model"
    reply.model_spec.version.value = 1
    reply.metadata["signature_def"].Pack(signatures)
    return reply


def test_metadata_any_and_signature_def_map_both_ways() -> None:
    official = _official_metadata()
    ours = get_model_metadata_pb2.GetModelMetadataResponse.FromString(official.SerializeToString())
    packed = ours.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signatures = get_model_metadata_pb2.SignatureDefMap.FromString(packed.value)
    signature = signatures.signature_def["serving_default"]
    assert signature.inputs["conv2d_4_input"].name == "conv2d_4_input:0"
    shape = signature.inputs["conv2d_4_input"].tensor_shape
    assert [d.size for d in shape.dim] == [-1, 150, 150, 3]
    assert [d.size for d in signature.outputs["dense_3"].tensor_shape.dim] == [-1, 5]

    again = tf_metadata_pb2.GetModelMetadataResponse.FromString(ours.SerializeToString())
    unpacked = tf_metadata_pb2.SignatureDefMap()
    assert again.metadata["signature_def"].Unpack(unpacked)
    assert again == official


def test_metadata_request_both_ways() -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "cassava"
    official, back = _roundtrip(request, tf_metadata_pb2.GetModelMetadataRequest,
                                get_model_metadata_pb2.GetModelMetadataRequest)
    assert official.model_spec.name == "cassava"
    assert list(official.metadata_field) == ["signature_def"]
    assert back == request


def test_model_status_with_error_status_both_ways() -> None:
    reply = tf_status_pb2.GetModelStatusResponse()
    states = tf_status_pb2.ModelVersionStatus
    loading = reply.model_version_status.add(version=2, state=states.LOADING)
    loading.status.error_code = 14  # UNAVAILABLE
    loading.status.error_message = "still loading"
    reply.model_version_status.add(version=1, state=states.AVAILABLE)

    ours = get_model_status_pb2.GetModelStatusResponse.FromString(reply.SerializeToString())
    first, second = ours.model_version_status
    assert (first.version, first.state) == (2, get_model_status_pb2.ModelVersionStatus.LOADING)
    assert (first.status.error_code, first.status.error_message) == (14, "still loading")
    assert (second.version, second.state) == (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    assert tf_status_pb2.GetModelStatusResponse.FromString(ours.SerializeToString()) == reply

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "cassava"
    request.model_spec.version_label = "stable"
    official, back = _roundtrip(request, tf_status_pb2.GetModelStatusRequest,
                                get_model_status_pb2.GetModelStatusRequest)
    assert official.model_spec.WhichOneof("version_choice") == "version_label"
    assert back == request


def test_fields_we_dropped_survive_a_pass_through_our_classes() -> None:
    """A newer server's fields we do not declare are kept as unknown fields, not lost."""
    official = tf_tensor_pb2.TensorProto(dtype=1)
    official.variant_val.add().type_name = "kept"
    ours = tensor_pb2.TensorProto.FromString(official.SerializeToString())
    assert tf_tensor_pb2.TensorProto.FromString(ours.SerializeToString()) == official
