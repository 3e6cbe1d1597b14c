"""run_local.cli: the command's few arguments."""

from __future__ import annotations

import pytest

from run_local.cli import arguments_as_env, main
from run_local.config import ConfigError


def test_arguments_stand_for_environment_variables() -> None:
    assert arguments_as_env(["--monitoring", "--tls-cert", "c.pem", "--tls-key=k.pem"]) == {
        "MONITORING": "1", "TLS_CERT_FILE": "c.pem", "TLS_KEY_FILE": "k.pem"}
    assert arguments_as_env([]) == {}


@pytest.mark.parametrize("arguments, message", [
    (["--tls-cert"], "--tls-cert needs a file"),
    (["--insecure"], "unknown argument '--insecure'"),
])
def test_bad_arguments(arguments: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        arguments_as_env(arguments)


def test_missing_acme_email_is_one_clear_line_at_start(monkeypatch, capsys) -> None:
    monkeypatch.setenv("ACME_CA_SERVER", "https://acme-staging-v02.api.letsencrypt.org/directory")
    monkeypatch.delenv("ACME_EMAIL", raising=False)
    assert main(["run-local"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "ACME_EMAIL is not" in error
