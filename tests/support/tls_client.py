"""TLS from the client side for the HTTPS tests: requests to 127.0.0.1 under a public name
(SNI and Host), certificates and ALPN as a client sees them, trusting only a given root."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509


def trusting(root: Path) -> ssl.SSLContext:
    """A client context whose only trust anchor is `root` (no system CAs)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(root))
    return context


@dataclass(frozen=True)
class Handshake:
    certificate: x509.Certificate  # the leaf the server sent
    alpn: str | None
    version: str | None


def handshake(port: int, name: str, context: ssl.SSLContext,
              alpn: tuple[str, ...] = ("h2", "http/1.1")) -> Handshake:
    """A TLS handshake with 127.0.0.1:port asking for `name` (SNI); raises ssl.SSLError when
    the context refuses the certificate."""
    context.set_alpn_protocols(list(alpn))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return Handshake(x509.load_der_x509_certificate(der), tls.selected_alpn_protocol(),
                         tls.version())


def unverified_certificate(port: int, name: str) -> x509.Certificate:
    """The certificate served for `name`, whoever issued it (to see which one is served)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return handshake(port, name, context).certificate


def dns_names(certificate: x509.Certificate) -> list[str]:
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return san.value.get_values_for_type(x509.DNSName)


def https_request(method: str, port: int, name: str, path: str, root: Path,
                  **kwargs: Any) -> httpx.Response:
    """One HTTPS request to 127.0.0.1:port as https://name:port/path, verified against `root`
    (certificate chain and host name, through the SNI name)."""
    with httpx.Client(verify=trusting(root), timeout=60) as client:
        return client.request(method, f"https://127.0.0.1:{port}{path}",
                               headers={"Host": f"{name}:{port}", **kwargs.pop("headers", {})},
                               extensions={"sni_hostname": name}, **kwargs)
