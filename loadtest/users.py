"""The simulated client: a phone or the page uploading photos, each from its own loopback address
(127.0.0.2, 127.0.0.3, ...) so per-client limits at the edge act per simulated client."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from typing import ClassVar

from locust import HttpUser, constant, task

from loadtest.addresses import set_up_client, source_address
from loadtest.payloads import Payload
from loadtest.verdicts import judge

REQUEST_TIMEOUT = 30.0  # seconds; a request still unanswered then is a failed request
_addresses = itertools.count()
shed: Counter[str] = Counter()  # payload name -> answers in verdicts.SHED, for the summary


class PhotoClient(HttpUser):
    """Posts a weighted random payload; an answer outside its expected statuses is a failure."""

    mix: ClassVar[list[Payload]] = []
    # HTTPS: the CA file that verifies the stack's certificates (None: the system's roots).
    ca_cert: ClassVar[str | None] = None
    wait_time = constant(0)

    def on_start(self) -> None:
        self.address = source_address(next(_addresses))
        set_up_client(self.client, self.address, self.ca_cert)
        self.rng = random.Random(self.address)
        self.weights = [p.weight for p in self.mix]

    @task
    def upload(self) -> None:
        payload = self.rng.choices(self.mix, self.weights)[0]
        with self.client.post(payload.path, data=payload.body, name=payload.name,
                              headers={"Host": payload.host,
                                       "Content-Type": payload.content_type},
                              timeout=REQUEST_TIMEOUT, catch_response=True) as response:
            code = None
            if response.status_code not in payload.expected and response.headers.get(
                    "content-type", "").startswith("application/problem"):
                try:
                    code = str(response.json().get("code"))
                except ValueError:
                    code = "(unparsable problem)"
            verdict = judge(response.status_code, code, payload.expected)
            if verdict == "failure":
                response.failure(f"HTTP {response.status_code}{f' {code}' if code else ''}, "
                                 f"expected {sorted(payload.expected)}")
            else:
                if verdict == "shed":
                    shed[payload.name] += 1
                response.success()
