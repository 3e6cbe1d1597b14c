"""Pebble (Let's Encrypt's ACME test server, Debian's `pebble`) as the CA of the HTTPS tests.

Pebble validates for real: its HTTP-01 check connects to the name it is asked for, on
`http_port`. Its DNS is pebble-challtestsrv, which answers every A query with 127.0.0.1, so
any name (ui.cassava.test) leads to the Traefik under test, on loopback only. Every port is
free and chosen here (the package's own config names fixed ones). Each start is a new CA
(a new root): `root_pem()` fetches it from the management endpoint.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.certs import write_self_signed
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess


@dataclass
class Pebble:
    process: ManagedProcess
    dns: ManagedProcess
    port: int
    management_port: int
    api_ca: Path  # the certificate of Pebble's own HTTPS API (LEGO_CA_CERTIFICATES)

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def root_pem(self) -> str:
        """The root every certificate of this Pebble chains to: the only trust anchor."""
        context = ssl.create_default_context(cafile=str(self.api_ca))
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:
            return answer.read().decode()

    def orders(self) -> int:
        """How many certificate orders Pebble has received (its log names each)."""
        return self.process.log().count("Added order ")

    def stop(self) -> None:
        self.process.stop()
        self.dns.stop()


def pebble_api_certificate(work_dir: Path, name: str = "pebble") -> tuple[Path, Path]:
    """The certificate of Pebble's API (and its key), made once per work_dir: it can be
    handed to the ACME client (LEGO_CA_CERTIFICATES) before Pebble runs."""
    work_dir.mkdir(parents=True, exist_ok=True)
    stem = work_dir / f"{name}-api"
    if stem.with_suffix(".crt").is_file():
        return stem.with_suffix(".crt"), stem.with_suffix(".key")
    return write_self_signed(stem, "127.0.0.1")


def start_pebble(work_dir: Path, http_port: int, tls_port: int, port: int | None = None,
                 name: str = "pebble") -> Pebble:
    """Pebble on 127.0.0.1:port (a free one if None), validating HTTP-01 on http_port."""
    api_cert, api_key = pebble_api_certificate(work_dir, name)
    port = port or free_port()
    management_port, dns_port = free_port(), free_port()
    config = work_dir / f"{name}.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{port}",
        "managementListenAddress": f"127.0.0.1:{management_port}",
        "certificate": str(api_cert), "privateKey": str(api_key),
        "httpPort": http_port, "tlsPort": tls_port,
        "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
    dns = ManagedProcess(f"{name}-dns", [
        "pebble-challtestsrv", "-dns01", f"127.0.0.1:{dns_port}", "-http01", "",
        "-https01", "", "-tlsalpn01", "", "-management", f"127.0.0.1:{free_port()}",
        "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""], work_dir)
    process = ManagedProcess(name, [
        "pebble", "-config", str(config), "-dnsserver", f"127.0.0.1:{dns_port}"], work_dir,
        # No random sleeps before validating; no deliberately rejected nonces (the ACME client
        # retries those, but they only make the run slower).
        env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})
    pebble = Pebble(process, dns, port, management_port, api_cert)
    try:
        process.wait_until(lambda: bool(pebble.root_pem()), 30, "Pebble's management endpoint")
    except Exception:
        pebble.stop()
        raise
    return pebble
