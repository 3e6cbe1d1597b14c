"""The API's start-up check of the model (app.main._check_model): a model server that is not
answering yet (the usual order under run-local and compose) is one calm "waiting for the model
server" line, not a warning; anything else is still a warning."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from app.main import _check_model
from app.tfserving.client import TFServingClient
from tests.support.ports import free_port


@dataclass
class Service:
    """The one call _check_model makes, on a real client or a failing stand-in."""

    client: TFServingClient | None = None
    error: Exception | None = None

    async def signature(self) -> object:
        if self.client is not None:
            return await self.client.signature()
        assert self.error is not None
        raise self.error


@pytest.mark.anyio
async def test_a_model_server_not_answering_yet_is_waited_for_calmly(
        caplog: pytest.LogCaptureFixture) -> None:
    # The real gRPC client against a port nothing listens on: connection refused.
    client = TFServingClient(f"127.0.0.1:{free_port()}", "cassava")
    try:
        with caplog.at_level(logging.INFO, logger="app"):
            await _check_model(Service(client=client))  # type: ignore[arg-type]
    finally:
        await client.close()
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("app")]
    assert [level for level, _ in messages] == [logging.INFO], messages
    assert "waiting for the model server" in messages[0][1]


@pytest.mark.anyio
async def test_other_failures_are_still_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="app"):
        await _check_model(Service(error=RuntimeError("odd")))  # type: ignore[arg-type]
    assert [r.levelno for r in caplog.records if r.name.startswith("app")] == [logging.WARNING]
