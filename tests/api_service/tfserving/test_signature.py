"""Signature discovery from GetModelMetadata replies (built with the official classes)."""

from __future__ import annotations

import pytest
from tensorflow.core.protobuf import meta_graph_pb2 as tf_meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2 as tf_metadata_pb2

from app.tfserving.protos import get_model_metadata_pb2
from app.tfserving.signature import Signature, SignatureError, signature_from_metadata


def metadata(inputs: dict[str, tuple[int, list[int]]], outputs: dict[str, list[int]],
             *, name: str = "serving_default", version: int = 4
             ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """A reply as TF Serving sends it, parsed with our classes."""
    signature = tf_meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for key, (dtype, shape) in inputs.items():
        signature.inputs[key].dtype = dtype
        for size in shape:
            signature.inputs[key].tensor_shape.dim.add().size = size
    for key, shape in outputs.items():
        signature.outputs[key].dtype = 1
        for size in shape:
            signature.outputs[key].tensor_shape.dim.add().size = size
    signatures = tf_metadata_pb2.SignatureDefMap()
    signatures.signature_def[name].CopyFrom(signature)
    reply = tf_metadata_pb2.GetModelMetadataResponse()
    reply.model_spec.name = "cassava"
    reply.model_spec.version.value = version
    reply.metadata["signature_def"].Pack(signatures)
    return get_model_metadata_pb2.GetModelMetadataResponse.FromString(reply.SerializeToString())


def test_image_classifier_signature() -> None:
    reply = metadata({"conv2d_4_input": (1, [-1, 150, 120, 3])}, {"dense_3": [-1, 5]})
    assert signature_from_metadata(reply, "serving_default") == Signature(
        model_name="cassava", version=4, name="serving_default", input_name="conv2d_4_input",
        height=150, width=120, output_name="dense_3", num_classes=5)


def test_unknown_class_count_is_none() -> None:
    reply = metadata({"x": (1, [1, 64, 64, 3])}, {"y": [-1, -1]})
    assert signature_from_metadata(reply, "serving_default").num_classes is None


@pytest.mark.parametrize(("batch", "expected"), [(-1, -1), (1, 1)])
def test_batch_dimension_is_kept(batch: int, expected: int) -> None:
    """-1: the batch endpoint sends every photo in one call; 1: one call per photo."""
    reply = metadata({"x": (1, [batch, 64, 64, 3])}, {"y": [-1, 5]})
    assert signature_from_metadata(reply, "serving_default").batch == expected


@pytest.mark.parametrize(("inputs", "outputs", "wanted", "message"), [
    ({"x": (1, [-1, 150, 150, 3])}, {"y": [-1, 5]}, "other", "no signature 'other'"),
    ({"x": (7, [-1, 150, 150, 3])}, {"y": [-1, 5]}, "serving_default", "DT_STRING"),
    ({"x": (1, [-1, 150, 150, 1])}, {"y": [-1, 5]}, "serving_default", "float [batch"),
    ({"x": (1, [-1, -1, -1, 3])}, {"y": [-1, 5]}, "serving_default", "float [batch"),
    ({"x": (1, [-1, 150, 150, 3]), "z": (1, [1])}, {"y": [-1, 5]}, "serving_default", "one input"),
    ({"x": (1, [-1, 150, 150, 3])}, {"y": [5]}, "serving_default", "[batch, classes]"),
], ids=["missing", "string-input", "grey", "unknown-size", "two-inputs", "flat-output"])
def test_unusable_signatures_are_explained(inputs, outputs, wanted: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message.replace("[", r"\[")):
        signature_from_metadata(metadata(inputs, outputs), wanted)


def test_metadata_without_signature_map() -> None:
    with pytest.raises(SignatureError, match="no signature_def"):
        signature_from_metadata(get_model_metadata_pb2.GetModelMetadataResponse(),
                                "serving_default")
