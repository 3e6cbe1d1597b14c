"""What the served model expects and returns, read from GetModelMetadata. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from app.tfserving.protos import get_model_metadata_pb2, types_pb2

SIGNATURE_DEF_MAP_TYPE = "tensorflow.serving.SignatureDefMap"


class SignatureError(ValueError):
    """The model's signature does not fit an image classifier this API can feed."""


@dataclass(frozen=True)
class Signature:
    """An image-classification signature: one (1|-1, H, W, 3) float input, one (-1, N) output."""

    model_name: str
    version: int
    name: str
    input_name: str
    height: int
    width: int
    output_name: str
    num_classes: int | None  # None when the metadata leaves it unknown (-1)
    batch: int = -1  # images per Predict call the input takes: -1 = any number, or exactly 1


def signature_from_metadata(reply: get_model_metadata_pb2.GetModelMetadataResponse,
                            signature_name: str) -> Signature:
    """Pick `signature_name` out of a GetModelMetadata reply and check it fits."""
    packed = reply.metadata.get("signature_def")
    if packed is None or packed.type_url.rpartition("/")[2] != SIGNATURE_DEF_MAP_TYPE:
        raise SignatureError("the model server's metadata has no signature_def map")
    signatures = get_model_metadata_pb2.SignatureDefMap.FromString(packed.value).signature_def
    if signature_name not in signatures:
        raise SignatureError(f"the model has no signature {signature_name!r} "
                             f"(it has {sorted(signatures)})")
    signature = signatures[signature_name]
    if len(signature.inputs) != 1 or len(signature.outputs) != 1:
        raise SignatureError(f"signature {signature_name!r} must have one input and one output, "
                             f"has {sorted(signature.inputs)} -> {sorted(signature.outputs)}")
    (input_name, input_info), = signature.inputs.items()
    (output_name, output_info), = signature.outputs.items()

    in_shape = [dim.size for dim in input_info.tensor_shape.dim]
    if (input_info.dtype != types_pb2.DT_FLOAT or len(in_shape) != 4 or in_shape[0] not in (-1, 1)
            or in_shape[1] < 1 or in_shape[2] < 1 or in_shape[3] != 3):
        raise SignatureError(
            f"input {input_name!r} must be float [batch, height, width, 3]; it is "
            f"{types_pb2.DataType.Name(input_info.dtype)} {in_shape}")
    out_shape = [dim.size for dim in output_info.tensor_shape.dim]
    if output_info.tensor_shape.unknown_rank or len(out_shape) != 2:
        raise SignatureError(f"output {output_name!r} must be [batch, classes]; it is {out_shape}")
    return Signature(
        model_name=reply.model_spec.name, version=reply.model_spec.version.value,
        name=signature_name, input_name=input_name, height=in_shape[1], width=in_shape[2],
        output_name=output_name, num_classes=out_shape[1] if out_shape[1] > 0 else None,
        batch=in_shape[0])
