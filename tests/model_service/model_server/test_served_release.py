"""One TF Serving release across the project: the compatible server says it follows the release
the production image is built on (model.service/Dockerfile's official `tensorflow/serving` tag),
and its protocol messages come from that release's tensorflow-serving-api."""

from __future__ import annotations

import re

import model_server
from tests.support.paths import REPO_ROOT


def pinned(requirements: str, package: str) -> str:
    (version,) = re.findall(rf"^{re.escape(package)}==(\S+)", requirements, re.MULTILINE)
    return version


def test_the_image_and_the_compatible_server_name_the_same_release() -> None:
    dockerfile = (REPO_ROOT / "model.service" / "Dockerfile").read_text()
    (image,) = re.findall(r"^ARG TF_SERVING_IMAGE=tensorflow/serving:(\S+)$", dockerfile,
                          re.MULTILINE)
    assert image == model_server.__version__
    for requirements in ("model.service/requirements.txt", "constraints.txt"):
        text = (REPO_ROOT / requirements).read_text()
        assert pinned(text, "tensorflow-serving-api") == image, requirements
    example = (REPO_ROOT / ".env.example").read_text()
    assert set(re.findall(r"tensorflow/serving:(\S+)", example)) == {image}
