"""The simulated client: a phone or the page uploading photos, each from its own loopback address
(127.0.0.2, 127.0.0.3, ...) so per-client limits at the edge act per simulated client."""

from __future__ import annotations

import itertools
import random
from typing import ClassVar

from locust import HttpUser, constant, task
from requests.adapters import HTTPAdapter

from loadtest.payloads import Payload

REQUEST_TIMEOUT = 30.0  # seconds; a request still unanswered then is a failed request
_addresses = itertools.count()


def source_address(index: int) -> str:
    """127.0.0.2 ... 127.0.0.254, then again: 253 distinct clients."""
    return f"127.0.0.{2 + index % 253}"


class SourceAddressAdapter(HTTPAdapter):
    """requests' adapter whose connections bind to one local address before connecting."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class PhotoClient(HttpUser):
    """Posts a weighted random payload; an answer outside its expected statuses is a failure."""

    mix: ClassVar[list[Payload]] = []
    wait_time = constant(0)

    def on_start(self) -> None:
        self.address = source_address(next(_addresses))
        self.client.mount("http://", SourceAddressAdapter(self.address))
        self.rng = random.Random(self.address)
        self.weights = [p.weight for p in self.mix]

    @task
    def upload(self) -> None:
        payload = self.rng.choices(self.mix, self.weights)[0]
        with self.client.post(payload.path, data=payload.body, name=payload.name,
                              headers={"Host": payload.host,
                                       "Content-Type": payload.content_type},
                              timeout=REQUEST_TIMEOUT, catch_response=True) as response:
            if response.status_code in payload.expected:
                response.success()
            else:
                code = ""
                if response.headers.get("content-type", "").startswith("application/problem"):
                    try:
                        code = f" {response.json().get('code')}"
                    except ValueError:
                        code = " (unparsable problem)"
                response.failure(f"HTTP {response.status_code}{code}, expected "
                                 f"{sorted(payload.expected)}")
