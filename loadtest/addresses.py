"""Loopback source addresses for simulated clients: the edge's per-client limits key on the
client address, so each simulated client must come from its own (127.0.0.0/8 only).

Over HTTPS the load still goes to a loopback address (--url https://127.0.0.1:8443), while the
stack answers per name: each request's TLS handshake names its Host header (SNI) and the
server's certificate is verified for that name, as a phone reaching the real domain would."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from requests import PreparedRequest, Session
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

    def build_connection_pool_key_attributes(
            self, request: PreparedRequest, verify: bool | str,
            cert: str | tuple[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """HTTPS: SNI and certificate check for the request's Host header, not the address
        connected to (urllib3 keeps one pool per server_hostname, so each name has its own)."""
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert)
        header = request.headers.get("Host")
        if host_params["scheme"] == "https" and header:
            name = urlsplit(f"//{header!s}").hostname  # without a port
            pool_kwargs["server_hostname"] = name
            pool_kwargs["assert_hostname"] = name
        return host_params, pool_kwargs


def set_up_client(session: Session, address: str, ca_cert: str | None) -> None:
    """One simulated client's session: connections from `address`, HTTPS verified against
    `ca_cert` (None: the system's roots), never unverified. The environment is not consulted:
    REQUESTS_CA_BUNDLE would override `verify` (psf/requests#3829), and the target is loopback,
    so no proxy either."""
    adapter = SourceAddressAdapter(address)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    session.verify = ca_cert or True
