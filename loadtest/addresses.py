"""Loopback source addresses for simulated clients: the edge's per-client limits key on the
client address, so each simulated client must come from its own (127.0.0.0/8 only)."""

from __future__ import annotations

from requests.adapters import HTTPAdapter


def source_address(index: int) -> str:
    """127.0.0.2 ... 127.0.0.254, then again: 253 distinct clients."""
    return f"127.0.0.{2 + index % 253}"


class SourceAddressAdapter(HTTPAdapter):
    """requests' adapter whose connections bind to one local address before connecting."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)
