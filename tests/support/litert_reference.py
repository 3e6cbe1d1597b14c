"""The Python reference run of an on-device file (docs/mobile.md): a fresh interpreter with the
survey tool's offline model (ai-edge-litert, the API's preprocessing) and no TensorFlow, as an
app or a laptop in the field has it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO_ROOT

CLIENT_SOURCE = REPO_ROOT / "client" / "src"
_RUN = """
import json, sys
from pathlib import Path
from cassava_survey.offline import load_pack
model = load_pack(Path(sys.argv[1]))
answers = {Path(p).name: model.probabilities(Path(p).read_bytes()) for p in sys.argv[2:]}
assert "tensorflow" not in sys.modules, "TensorFlow was loaded"
print(json.dumps(answers))
"""


def client_env() -> dict[str, str]:
    """This checkout's survey tool first on the path (the venv's may be another checkout's)."""
    return {**os.environ, "PYTHONPATH": str(CLIENT_SOURCE)}


def device_probabilities(pack: Path, photos: list[Path]) -> dict[str, list[float]]:
    """Photo name -> the softmax row of the pack's model.tflite, computed without TensorFlow."""
    run = subprocess.run([sys.executable, "-c", _RUN, pack, *photos], capture_output=True,
                         text=True, timeout=120, env=client_env())
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)
