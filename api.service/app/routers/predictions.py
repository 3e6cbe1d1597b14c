"""POST /predict/image: classify one uploaded leaf photo; POST /v1/predict/images: several."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.datastructures import UploadFile

from app.core.problems import Problem, ProblemError, problem_body
from app.decode_budget import BudgetExhausted
from app.deps import (
    ImageUploadDep,
    ImageUploadsDep,
    PredictionServiceDep,
    RequestIdDep,
    SettingsDep,
)
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
    TOO_MANY_IMAGES,
    TRUNCATED_IMAGE,
    UNDECODABLE_IMAGE,
    UNEXPECTED_FILE,
    UNSUPPORTED_MEDIA_TYPE,
    decoder_busy,
    image_problem,
    openapi_responses,
    text_part_problem,
)
from app.imaging import ImageRejected
from app.schemas import BatchPrediction, BatchPredictionResponse, BatchProblem, PredictionResponse
from app.upload import BATCH_FIELD, OPENAPI_BATCH_REQUEST_BODY, OPENAPI_REQUEST_BODY

router = APIRouter(tags=["predict"])

RESPONSES = openapi_responses(
    EMPTY_IMAGE, UNDECODABLE_IMAGE, TRUNCATED_IMAGE, BODY_TOO_LARGE, IMAGE_TOO_LARGE,
    IMAGE_TOO_COSTLY, UNSUPPORTED_MEDIA_TYPE, MISSING_FIELD, TOO_MANY_FILES, NOT_MULTIPART,
    MALFORMED_MULTIPART, IMAGE_TOO_SMALL, BLANK_IMAGE, MODEL_ERROR, MODEL_UNAVAILABLE,
    DECODER_BUSY, MODEL_MISCONFIGURED, MODEL_TIMEOUT)


async def predict_image(image: ImageUploadDep, service: PredictionServiceDep,
                        request_id: RequestIdDep) -> PredictionResponse:
    """Classify the leaf photo in the multipart field `image_to_predict` (JPEG or PNG)."""
    return await service.predict(image, request_id)


_ROUTE: dict[str, Any] = {
    "methods": ["POST"], "responses": RESPONSES, "summary": "Classify a cassava leaf photo",
    "openapi_extra": {"requestBody": OPENAPI_REQUEST_BODY}}
router.add_api_route("/v1/predict/image", predict_image, operation_id="predict_image_v1", **_ROUTE)
# The article's clients POST here: the unversioned path stays an alias of v1.
router.add_api_route("/predict/image", predict_image, operation_id="predict_image", **_ROUTE)


BATCH_RESPONSES = openapi_responses(
    BODY_TOO_LARGE, TOO_MANY_IMAGES, MISSING_FIELD, UNEXPECTED_FILE, NOT_MULTIPART,
    MALFORMED_MULTIPART, MODEL_ERROR, MODEL_UNAVAILABLE, MODEL_MISCONFIGURED, MODEL_TIMEOUT)


@router.post("/v1/predict/images", responses=BATCH_RESPONSES, operation_id="predict_images_v1",
             summary="Classify several cassava leaf photos in one request",
             openapi_extra={"requestBody": OPENAPI_BATCH_REQUEST_BODY})
async def predict_images(parts: ImageUploadsDep, service: PredictionServiceDep,
                         settings: SettingsDep, request_id: RequestIdDep
                         ) -> BatchPredictionResponse:
    """Classify every photo in the multipart field `images`: one result per part, in order."""
    files = [part for part in parts if isinstance(part, UploadFile)]
    outcomes = iter(await service.predict_many([upload.file.read for upload in files],
                                               request_id))
    results: list[BatchPrediction | BatchProblem] = []
    for index, part in enumerate(parts):
        if isinstance(part, str):
            results.append(_part_problem(index, None, text_part_problem(BATCH_FIELD), request_id))
            continue
        outcome = next(outcomes)
        if isinstance(outcome, ImageRejected):
            results.append(_part_problem(index, part.filename, image_problem(outcome), request_id))
        elif isinstance(outcome, BudgetExhausted):
            results.append(_part_problem(index, part.filename,
                                         decoder_busy(settings.RETRY_AFTER_SECONDS), request_id))
        else:
            results.append(BatchPrediction(index=index, filename=part.filename,
                                           prediction=outcome))
    return BatchPredictionResponse(results=results, request_id=request_id)


def _part_problem(index: int, filename: str | None, error: ProblemError, request_id: str
                  ) -> BatchProblem:
    problem = Problem.model_validate(problem_body(error.status, error.code, error.detail,
                                                  title=error.title, request_id=request_id))
    return BatchProblem(index=index, filename=filename, problem=problem)
