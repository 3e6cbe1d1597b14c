"""POST /predict/image: classify one uploaded leaf photo."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ImageUploadDep, PredictorDep, RequestIdDep
from app.errors import (
    BLANK_IMAGE,
    BODY_TOO_LARGE,
    DECODER_BUSY,
    EMPTY_IMAGE,
    IMAGE_TOO_COSTLY,
    IMAGE_TOO_LARGE,
    IMAGE_TOO_SMALL,
    MALFORMED_MULTIPART,
    MISSING_FIELD,
    MODEL_ERROR,
    MODEL_MISCONFIGURED,
    MODEL_TIMEOUT,
    MODEL_UNAVAILABLE,
    NOT_MULTIPART,
    TOO_MANY_FILES,
    TRUNCATED_IMAGE,
    UNDECODABLE_IMAGE,
    UNSUPPORTED_MEDIA_TYPE,
    openapi_responses,
)
from app.schemas import PredictionResponse
from app.upload import OPENAPI_REQUEST_BODY

router = APIRouter(tags=["predict"])

RESPONSES = openapi_responses(
    EMPTY_IMAGE, UNDECODABLE_IMAGE, TRUNCATED_IMAGE, BODY_TOO_LARGE, IMAGE_TOO_LARGE,
    IMAGE_TOO_COSTLY, UNSUPPORTED_MEDIA_TYPE, MISSING_FIELD, TOO_MANY_FILES, NOT_MULTIPART,
    MALFORMED_MULTIPART, IMAGE_TOO_SMALL, BLANK_IMAGE, MODEL_ERROR, MODEL_UNAVAILABLE,
    DECODER_BUSY, MODEL_MISCONFIGURED, MODEL_TIMEOUT)


async def predict_image(image: ImageUploadDep, predictor: PredictorDep,
                        request_id: RequestIdDep) -> PredictionResponse:
    """Classify the leaf photo in the multipart field `image_to_predict` (JPEG or PNG)."""
    return await predictor.predict(image, request_id)


_ROUTE = {"methods": ["POST"], "responses": RESPONSES, "summary": "Classify a cassava leaf photo",
          "openapi_extra": {"requestBody": OPENAPI_REQUEST_BODY}}
router.add_api_route("/v1/predict/image", predict_image, operation_id="predict_image_v1", **_ROUTE)
# The article's clients POST here: the unversioned path stays an alias of v1.
router.add_api_route("/predict/image", predict_image, operation_id="predict_image", **_ROUTE)
