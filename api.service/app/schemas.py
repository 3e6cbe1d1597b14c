"""Response bodies of the successful endpoints (errors are app.core.problems.Problem)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ClassProbability(BaseModel):
    code: str = Field(examples=["CMD"])
    name: str = Field(examples=["Cassava Mosaic Disease (CMD)"])
    probability: float = Field(ge=0.0, le=1.0, examples=[0.93])


class ModelInfo(BaseModel):
    name: str = Field(examples=["cassava"])
    version: int = Field(examples=[1])


class PredictionResponse(BaseModel):
    """The model's answer for one photo."""

    prediction: str = Field(description="display name of the top class (the article's field)",
                            examples=["Cassava Mosaic Disease (CMD)"])
    code: str = Field(description="label code of the top class", examples=["CMD"])
    confidence: float = Field(ge=0.0, le=1.0, description="probability of the top class",
                              examples=[0.93])
    low_confidence: bool = Field(description="confidence below LOW_CONFIDENCE_THRESHOLD")
    probabilities: list[ClassProbability] = Field(
        description="every class, by probability, descending")
    model: ModelInfo = Field(description="the model version that answered")
    request_id: str = Field(description="also in the X-Request-ID header",
                            examples=["3f2a9c0d4e5b4a7f8e1d2c3b4a596877"])


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    model: str = Field(examples=["cassava"])
    available_versions: list[int] = Field(examples=[[1]])
