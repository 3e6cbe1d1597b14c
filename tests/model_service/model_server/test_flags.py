"""tensorflow_model_server's command line, as operators and Dockerfiles write it."""

from __future__ import annotations

import subprocess

import pytest

from model_server import flags
from tests.support.paths import SCRIPTS_DIR


def test_defaults_match_tensorflow_model_server():
    parsed = flags.parse([])
    assert parsed.port == 8500
    assert parsed.rest_api_port == 0
    assert parsed.model_name == "default"
    assert parsed.file_system_poll_wait_seconds == 1
    assert parsed.saved_model_tags == "serve"
    assert parsed.bind_address == "0.0.0.0"


def test_equals_and_separate_value_forms():
    parsed = flags.parse(["--port=9000", "--rest_api_port", "9001", "--model_name", "cassava",
                          "-model_base_path=/models/cassava"])
    assert (parsed.port, parsed.rest_api_port) == (9000, 9001)
    assert (parsed.model_name, parsed.model_base_path) == ("cassava", "/models/cassava")


def test_unimplemented_tf_serving_flags_are_accepted_and_reported():
    parsed = flags.parse(["--enable_batching", "--rest_api_num_threads=4",
                          "--batching_parameters_file", "/etc/batching.config", "--port=1"])
    assert parsed.ignored == ("enable_batching", "rest_api_num_threads", "batching_parameters_file")
    assert parsed.port == 1


def test_monitoring_config_file_is_implemented():
    parsed = flags.parse(["--monitoring_config_file", "/etc/monitoring.config"])
    assert parsed.monitoring_config_file == "/etc/monitoring.config"
    assert parsed.ignored == ()


def test_bool_flags():
    assert flags.parse(["--version"]).version is True
    assert flags.parse(["--version=false"]).version is False
    assert flags.parse(["--noversion"]).version is False


@pytest.mark.parametrize("argv", [["--port=http"], ["--no_such_flag=1"], ["--port"], ["cassava"]])
def test_bad_command_lines_are_refused(argv):
    with pytest.raises(flags.FlagError):
        flags.parse(argv)


def test_command_line_errors_exit_2_before_loading_tensorflow(tmp_path):
    result = subprocess.run([SCRIPTS_DIR / "model-server", "--port=many"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "invalid value for --port" in result.stderr
    result = subprocess.run([SCRIPTS_DIR / "model-server", "--version"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("TensorFlow ModelServer: ")
