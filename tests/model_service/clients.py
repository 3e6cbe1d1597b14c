"""Client-side helpers for the model server's tests: TF Serving requests built with the official
tensorflow-serving-api classes, and safe publishing of model versions."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.support.paths import SEED_MODEL_NAME
from tests.support.reference import SEED_INPUT as INPUT
from tests.support.reference import SEED_OUTPUT as OUTPUT
from tests.support.reference import SEED_VERSION_DIR

# A valid input for the article's model when the values do not matter.
GREY_IMAGE = np.full((1, 150, 150, 3), 0.25, np.float32)
AVAILABLE, END = 30, 50


def predict_request(batch: np.ndarray | None = None, *, model: str = SEED_MODEL_NAME,
                    version: int | None = None, input_name: str = INPUT,
                    as_float_val: bool = False) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    if version is not None:
        request.model_spec.version.value = version
    if batch is not None:
        tensor = request.inputs[input_name]
        tensor.dtype = types_pb2.DT_FLOAT
        for size in batch.shape:
            tensor.tensor_shape.dim.add().size = size
        if as_float_val:
            tensor.float_val.extend(batch.ravel().tolist())
        else:
            tensor.tensor_content = np.ascontiguousarray(batch, dtype=np.float32).tobytes()
    return request


def output_of(reply, alias: str = OUTPUT) -> np.ndarray:
    """The reply tensor, whichever way the server packed it (tensor_content or float_val)."""
    return tf.make_ndarray(reply.outputs[alias])


def predict(stub: prediction_service_pb2_grpc.PredictionServiceStub, batch: np.ndarray,
            **kwargs) -> np.ndarray:
    return output_of(stub.Predict(predict_request(batch, **kwargs), timeout=30))


def metadata_request(model: str = SEED_MODEL_NAME,
                     ) -> get_model_metadata_pb2.GetModelMetadataRequest:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model
    request.metadata_field.append("signature_def")
    return request


def status_request(model: str = SEED_MODEL_NAME, version: int | None = None
                   ) -> get_model_status_pb2.GetModelStatusRequest:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    return request


def error_of(call, request) -> grpc.RpcError:
    """The RpcError a call must fail with."""
    try:
        call(request, timeout=30)
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"{call} succeeded but should have failed")


def publish_version(base_path: Path, version: int, source: Path = SEED_VERSION_DIR) -> Path:
    """Drop a version into a repository the safe way: build beside it, then rename into place."""
    base_path.mkdir(parents=True, exist_ok=True)
    staging = base_path.parent / f".staging-{base_path.name}-{version}"
    shutil.copytree(source, staging)
    target = base_path / str(version)
    staging.rename(target)
    return target
