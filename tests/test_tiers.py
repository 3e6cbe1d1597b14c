"""The two tiers (tests/support/tiers.py, tests/conftest.py): `scripts/test --fast` imports no
TensorFlow and collects no heavy test, and a heavy test that is not marked cannot slip into it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT
from tests.support.tiers import heavy_markers, imports_tensorflow, is_heavy

# Runs the fast lane's collection in a fresh interpreter and reports what it imported.
COLLECT_FAST_LANE = """
import sys
import pytest
status = pytest.main(["--fast", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"])
print("TENSORFLOW IMPORTED" if "tensorflow" in sys.modules else "NO TENSORFLOW")
sys.exit(status)
"""


def test_the_fast_lane_collects_no_heavy_test_and_imports_no_tensorflow() -> None:
    result = subprocess.run([sys.executable, "-c", COLLECT_FAST_LANE], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[-1] == "NO TENSORFLOW"
    collected = {line for line in lines if "::" in line}
    files = {test.split("::")[0] for test in collected}
    # The unit tier is there, in-process API tests included...
    assert "tests/api_service/routers/test_predictions.py::test_response_contract" in collected
    assert "tests/api_service/test_bad_input.py::test_bad_input_gets_its_documented_answer" \
           "[zero-bytes]" in collected
    assert {"tests/api_service/test_imaging.py", "tests/api_service/test_labels.py",
            "tests/model_service/model_server/test_config.py"} <= files
    # ...and nothing that starts servers, a stack, a browser or Docker, or loads TensorFlow.
    assert not any(name.startswith(("tests/stack/", "tests/ui_service/test_upload.py"))
                   for name in files)
    assert not {"tests/api_service/test_predict.py", "tests/api_service/test_model_outage.py",
                "tests/api_service/test_imaging_fidelity.py", "tests/compose/test_stack.py",
                "tests/model_service/model_server/test_seed_model_served.py",
                "tests/model_service/model_server/test_shutdown.py"} & files
    assert not any("test_random_mutations" in test for test in collected)


@pytest.fixture
def made_up_suite(pytester: pytest.Pytester,
                  monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A tiny suite under this repository's tier rules, with a stand-in `tensorflow` package
    (importing it costs nothing, and the guards look only at its name)."""
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # only pytest and these hooks
    pytester.makeconftest(
        "from tests.conftest import (  # noqa: F401 - the tier hooks and the logs_dir fixture\n"
        "    logs_dir, pytest_addoption, pytest_collection_modifyitems, pytest_configure)\n")
    pytester.makeini("[pytest]\nmarkers =\n" + "".join(
        f"    {marker}: heavy\n" for marker in ("slow", "servers", "stack", "browser", "docker",
                                              "tensorflow")))
    pytester.mkpydir("tensorflow")
    return pytester


def run_fast(suite: pytest.Pytester) -> pytest.RunResult:
    return suite.runpytest_subprocess("--fast", "-p", "no:cacheprovider", "-rA",
                                      f"--rootdir={suite.path}")


def test_the_fast_lane_refuses_servers_and_tensorflow_at_run_time(
        made_up_suite: pytest.Pytester) -> None:
    made_up_suite.makepyfile(
        test_a_server=textwrap.dedent("""
            from tests.support.processes import ManagedProcess

            def test_starts_a_server_without_logs_dir(tmp_path):
                ManagedProcess("sneaky", ["sleep", "30"], tmp_path)
        """),
        test_b_logs_dir="def test_uses_logs_dir(logs_dir):\n    pass\n",
        test_c_imports_tf="import tensorflow\n\ndef test_never_collected():\n    pass\n",
        test_d_lazy_tf="def test_imports_tf_lazily():\n    import tensorflow  # noqa: F401\n",
        test_e_after="def test_after():\n    pass\n",
    )
    result = run_fast(made_up_suite)
    output = result.stdout.str()
    assert result.ret != 0, output
    result.assert_outcomes(failed=1, passed=1, deselected=1)
    assert "--fast starts no child-process servers (sneaky)" in output
    assert "test_d_lazy_tf.py::test_imports_tf_lazily imported TensorFlow" in output
    assert "not imported (TensorFlow): test_c_imports_tf.py" in output
    assert "test_after" not in output  # the run stopped at the test that loaded TensorFlow


def test_the_fast_lane_stops_when_collecting_a_module_loads_tensorflow(
        made_up_suite: pytest.Pytester) -> None:
    made_up_suite.makepyfile(test_sly=textwrap.dedent("""
        import importlib

        importlib.import_module("tensor" + "flow")  # invisible to the source check

        def test_anything():
            pass
    """))
    result = run_fast(made_up_suite)
    assert result.ret != 0
    assert "collecting test_sly.py imported TensorFlow" in result.stderr.str() + result.stdout.str()


def test_the_same_suite_runs_whole_without_fast(made_up_suite: pytest.Pytester) -> None:
    made_up_suite.makepyfile(test_tf="import tensorflow\n\ndef test_loads_tf():\n    pass\n")
    made_up_suite.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_heavy_fixtures_give_their_markers() -> None:
    assert heavy_markers(["tmp_path", "monkeypatch", "app_client"]) == set()
    assert heavy_markers(["page", "context", "ui", "local_stack"]) == {"browser", "stack"}
    assert heavy_markers(["seed_api", "seed_model_server", "logs_dir"]) == {"servers"}
    assert heavy_markers(["reference_predict"]) == {"tensorflow"}
    assert heavy_markers(["stack", "offline_bases"]) == {"docker"}
    assert is_heavy(["parametrize", "slow"]) and not is_heavy(["parametrize", "anyio"])


@pytest.mark.parametrize(("source", "loads_tensorflow"), [
    ("import tensorflow as tf\n", True),
    ("from tensorflow.core.framework import types_pb2\n", True),
    ("from tensorflow_serving.apis import predict_pb2\n", True),  # imports tensorflow itself
    ("from tensorflow_serving.config import model_server_config_pb2\n", False),
    ("try:\n    import keras\nexcept ImportError:\n    pass\n", True),
    ("def later():\n    import tensorflow\n", False),  # only when called
    ("from model_server import servable\n", True),  # first-party modules are followed
    ("from model_server import config, flags\n", False),
    ("import tests.model_service.clients\n", True),
    ("from tests.support.reference import article_preprocess\n", False),
    ("import numpy\nfrom app.main import create_app\n", False),
])
def test_the_source_check_follows_imports(tmp_path: Path, source: str,
                                          loads_tensorflow: bool) -> None:
    module = tmp_path / "test_module.py"
    module.write_text(source)
    assert imports_tensorflow(module) is loads_tensorflow
