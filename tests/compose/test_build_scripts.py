"""The build scripts: each service's docker-build.sh and scripts/docker-build-all build and tag
the images compose uses (here on the offline stand-in bases, passed through the environment)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.compose.project import SERVICES, run
from tests.support.paths import REPO_ROOT, SCRIPTS_DIR

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def image_env(offline_bases: dict[str, str]) -> Iterator[dict[str, str]]:
    """Environment naming the images uniquely; the images are removed afterwards."""
    env = {**os.environ, **offline_bases, "IMAGE_PREFIX": "cassava-build-test",
           "IMAGE_TAG": uuid.uuid4().hex[:8]}
    yield env
    tags = [f"{env['IMAGE_PREFIX']}/{s}:{env['IMAGE_TAG']}" for s in SERVICES]
    run(["docker", "rmi", *tags], check=False)


def image_exists(env: dict[str, str], service: str) -> bool:
    image = f"{env['IMAGE_PREFIX']}/{service}:{env['IMAGE_TAG']}"
    return run(["docker", "image", "inspect", image], check=False).returncode == 0


def test_service_build_script_tags_its_image(image_env: dict[str, str]) -> None:
    run([str(REPO_ROOT / "ui.service" / "docker-build.sh")], env=image_env, timeout=900,
        cwd="/")
    assert image_exists(image_env, "ui.service")
    assert not image_exists(image_env, "api.service")


def test_build_all_offline(image_env: dict[str, str]) -> None:
    env = {k: v for k, v in image_env.items() if not k.endswith("_IMAGE")}
    run([str(SCRIPTS_DIR / "docker-build-all"), "--offline"], env=env, timeout=1800)
    assert all(image_exists(image_env, service) for service in SERVICES)
