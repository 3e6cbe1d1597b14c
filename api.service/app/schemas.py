"""Response bodies of the successful endpoints (errors are app.core.problems.Problem)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.core.problems import Problem


class ClassProbability(BaseModel):
    code: str = Field(examples=["CMD"])
    name: str = Field(examples=["Cassava Mosaic Disease (CMD)"])
    probability: float = Field(ge=0.0, le=1.0, examples=[0.93])


class ModelInfo(BaseModel):
    name: str = Field(examples=["cassava"])
    version: int = Field(examples=[1], description="the model version that answered")
    label: str | None = Field(
        None, examples=["stable"], description="the version label that was asked for (stable "
        "or canary) when the model server's config has labels; null otherwise")
    demo: bool | None = Field(
        None, description="the version's model card says it is a demonstration model: do not "
        "act on its answers; null when the version has no card")


class PredictionResponse(BaseModel):
    """The model's answer for one photo."""

    prediction: str = Field(description="display name of the top class (the article's field)",
                            examples=["Cassava Mosaic Disease (CMD)"])
    code: str = Field(description="label code of the top class", examples=["CMD"])
    confidence: float = Field(ge=0.0, le=1.0, description="probability of the top class",
                              examples=[0.93])
    low_confidence: bool = Field(description="confidence below LOW_CONFIDENCE_THRESHOLD")
    entropy: float = Field(
        ge=0.0, le=1.0, examples=[0.21],
        description="normalised Shannon entropy of `probabilities` (entropy / log(classes)): "
                    "0 = all probability on one class, 1 = every class equally likely. High "
                    "values hint that the photo may not show a cassava leaf the model knows; "
                    "apps choose their own cut-off")
    probabilities: list[ClassProbability] = Field(
        description="every class, by probability, descending")
    model: ModelInfo = Field(description="the model version that answered")
    request_id: str = Field(description="also in the X-Request-ID header",
                            examples=["3f2a9c0d4e5b4a7f8e1d2c3b4a596877"])


class BatchPrediction(BaseModel):
    """A photo of the batch that the model classified."""

    index: int = Field(ge=0, description="position of the file in the request, from 0")
    filename: str | None = Field(description="the part's filename, as sent", examples=["a.jpg"])
    prediction: PredictionResponse


class BatchProblem(BaseModel):
    """A photo of the batch that could not be used; the other photos are unaffected."""

    index: int = Field(ge=0, description="position of the file in the request, from 0")
    filename: str | None = Field(description="the part's filename, as sent",
                                 examples=["notes.txt"])
    problem: Problem = Field(description="what POST /v1/predict/image would answer for this "
                                         "file alone (413, 415 or 422; 503 decoder_busy when "
                                         "its decode memory was not free in time; 422 "
                                         "missing_field for a text part)")


class BatchPredictionResponse(BaseModel):
    """The model's answers for the photos of one request, in request order."""

    results: list[BatchPrediction | BatchProblem] = Field(
        description="one entry per file, in request order: a prediction or a problem")
    request_id: str = Field(description="also in the X-Request-ID header",
                            examples=["3f2a9c0d4e5b4a7f8e1d2c3b4a596877"])


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    model: str = Field(examples=["cassava"])
    available_versions: list[int] = Field(examples=[[1]])
