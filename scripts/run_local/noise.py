"""Start-up lines that look like failures but are normal here, hidden from run-local's terminal
(the services' own logs are unchanged): TensorFlow's notes about CUDA and oneDNN on a machine
without a GPU, and the API's answers to run-local's own readiness probes before it is ready."""

from __future__ import annotations

import re

# TensorFlow (C++ absl logging, printed before TF_CPP_MIN_LOG_LEVEL applies) on a CPU-only host.
TENSORFLOW_NOTICES = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers on your machine"
    r"|failed call to cuInit"
    r"|Unable to register cu(?:DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|rebuild TensorFlow with the appropriate compiler flags")
# The API's access log line for a /readyz probe answered 503 (app.core.metrics).
READYZ_NOT_YET = re.compile(r"\bGET /readyz 503\b")


def is_startup_noise(service: str, line: str, ready: bool) -> bool:
    """Whether run-local hides `line` of `service` (ready: the service passed its check)."""
    if TENSORFLOW_NOTICES.search(line):
        return True
    return service == "api" and not ready and bool(READYZ_NOT_YET.search(line))
