"""A stand-in for the API's TF Serving client (app.tfserving.client.TFServingClient), for the
in-process API tests of the fast lane: routes, errors and schemas without gRPC, TensorFlow or a
model server. It answers like the article's model would be asked (a 1x150x150x3 input, five
classes); the real client is tested against the real model server in tests/api_service/tfserving/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app.tfserving.client import ModelFailed, ModelOutput, ModelServerError
from app.tfserving.signature import Signature
from tests.support.paths import SEED_MODEL_NAME
from tests.support.reference import SEED_INPUT, SEED_OUTPUT


@dataclass
class FakeModelServer:
    """What the API asks the model server, answered from these fields. Set `failure` to make
    every call raise it (a ModelServerError subclass, as the real client raises); set
    `available` to [] for a model server that has no version loaded yet; set `rows_for` to
    answer each image with a row computed from its pixels instead of `probabilities`."""

    model_name: str = SEED_MODEL_NAME
    version: int = 1
    probabilities: tuple[float, ...] = (0.05, 0.1, 0.05, 0.7, 0.1)
    num_classes: int | None = 5
    # The signature: the seed model's unless a test serves another shape.
    input_name: str = SEED_INPUT
    output_name: str = SEED_OUTPUT
    height: int = 150
    width: int = 150
    batch: int = -1  # -1: any number of images per call; 1: exactly one
    rows_for: Callable[[np.ndarray], np.ndarray] | None = None
    available: list[int] = field(default_factory=lambda: [1])
    failure: ModelServerError | None = None
    # Version labels as the model server's config names them (label -> version); a label not
    # here fails like TF Serving's "Unrecognized servable version label". `by_version` answers a
    # version with its own probabilities; `failing_labels` makes Predict for a label fail.
    labels: dict[str, int] = field(default_factory=dict)
    by_version: dict[int, tuple[float, ...]] = field(default_factory=dict)
    failing_labels: dict[str, ModelServerError] = field(default_factory=dict)
    asked: list[str | None] = field(default_factory=list)  # the label of each predict()
    received: list[np.ndarray] = field(default_factory=list)  # the tensors given to predict()
    closed: bool = False

    def connect(self, address: str, model_name: str, **options: object) -> FakeModelServer:
        """Takes TFServingClient's place in the API's lifespan: same arguments, this object."""
        self.model_name = model_name
        return self

    def _fail_if_asked(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def available_versions(self) -> list[int]:
        self._fail_if_asked()
        return list(self.available)

    def _version_for(self, label: str | None) -> int:
        if label is None:
            return self.version
        if label not in self.labels:
            raise ModelFailed(f"INVALID_ARGUMENT: Unrecognized servable version label: {label}")
        return self.labels[label]

    async def signature(self, label: str | None = None) -> Signature:
        self._fail_if_asked()
        return Signature(model_name=self.model_name, version=self._version_for(label),
                         name="serving_default", input_name=self.input_name, height=self.height,
                         width=self.width, output_name=self.output_name,
                         num_classes=self.num_classes, batch=self.batch)

    async def predict(self, signature: Signature, image: np.ndarray, label: str | None = None
                      ) -> ModelOutput:
        self._fail_if_asked()
        self.asked.append(label)
        if label in self.failing_labels:
            raise self.failing_labels[label]
        version = self._version_for(label)
        self.received.append(image)
        if self.rows_for is not None:
            rows = self.rows_for(image)
        else:
            row = self.by_version.get(version, self.probabilities)
            rows = np.tile(np.array(row, np.float32), (image.shape[0], 1))
        return ModelOutput(rows=rows, model_name=self.model_name, version=version)

    async def close(self) -> None:
        self.closed = True
