"""The compose stack rolls a model out for real (docs/model-rollout.md): docker-compose.yml with
docker-compose.rollout.yml, TF Serving's --model_config_file written by scripts/model-rollout in
the official text format, predictions through Traefik all along. Shadow answers only from stable,
canary answers some, promote and rollback switch every later answer, a config that does not parse
is refused (counted) while the last good one serves."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.compose.conftest import running_stack
from tests.compose.project import API_HOST, ComposeProject
from tests.support.paths import REPO_ROOT, SCRIPTS_DIR, SEED_MODEL_BASE_PATH, leaf_photos
from tests.support.prometheus import parse_samples, value
from tests.support.waiting import wait_until

ROLLOUT_OVERRIDE = REPO_ROOT / "docker-compose.rollout.yml"
FETCH = ("import sys, urllib.request as u; "
         "sys.stdout.write(u.urlopen(sys.argv[1], timeout=5).read().decode())")


def rollout(repository: Path, *args: str) -> None:
    subprocess.run([SCRIPTS_DIR / "model-rollout", "--repository", str(repository), *args],
                   check=True, capture_output=True, timeout=60)


def publish_seed_version(repository: Path, version: int) -> None:
    """The article's SavedModel as `version`, built beside the model and renamed into place,
    readable by the containers' users."""
    staging = repository / f".staging-{version}"
    shutil.copytree(SEED_MODEL_BASE_PATH / "1", staging)
    for path in [staging, *staging.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    staging.rename(repository / "cassava" / str(version))


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rollout")


@pytest.fixture(scope="module")
def rollout_stack(offline_bases: dict[str, str], repository: Path,
                  artifacts_dir: Path) -> Iterator[tuple[ComposeProject, Path]]:
    models: list[Path] = []

    def pin_the_demo(path: Path) -> None:
        rollout(path, "init")
        models.append(path)

    with running_stack(offline_bases, repository, artifacts_dir / "compose-rollout.log",
                       extra_settings={"MODEL_CONFIG_POLL_SECONDS": "1"},
                       overrides=(ROLLOUT_OVERRIDE,), prepare=pin_the_demo) as project:
        yield project, models[0]


def metrics(project: ComposeProject, url: str) -> str:
    """A page of metrics read inside the stack (the API's container reaches both services)."""
    result = project.exec("api.service", "python", "-c", FETCH, url)
    return result.stdout


def test_shadow_canary_promote_rollback_and_a_refused_config(
        rollout_stack: tuple[ComposeProject, Path]) -> None:
    project, models = rollout_stack
    photo = leaf_photos()[0].read_bytes()
    answers: list[tuple[str | None, int]] = []

    def predict(client: httpx.Client) -> tuple[str | None, int]:
        reply = client.post("/predict/image",
                            files={"image_to_predict": ("leaf.jpg", photo, "image/jpeg")})
        assert reply.status_code == 200, reply.text
        model = reply.json()["model"]
        answers.append((model["label"], model["version"]))
        return answers[-1]

    def shadow_compared() -> float:
        page = metrics(project, "http://127.0.0.1:8000/metrics")
        return value(parse_samples(page), "cassava_api_shadow_comparisons",
                     stable_version="1", canary_version="2")

    with project.client(API_HOST, timeout=60) as client:
        assert predict(client) == ("stable", 1)
        publish_seed_version(models, 2)
        rollout(models, "shadow", "2")
        wait_until(lambda: predict(client) and shadow_compared() >= 3, 120,
                   "shadow comparisons")
        assert set(answers) == {("stable", 1)}  # shadow: nothing from canary

        rollout(models, "canary", "2", "--percent", "50")
        wait_until(lambda: predict(client) == ("canary", 2), 120, "a canary answer")

        rollout(models, "promote")
        wait_until(lambda: predict(client) == ("stable", 2), 120, "stable = 2")
        assert {predict(client) for _ in range(5)} == {("stable", 2)}

        rollout(models, "rollback")
        wait_until(lambda: predict(client) == ("stable", 1), 120, "stable = 1 again")
        assert {predict(client) for _ in range(5)} == {("stable", 1)}

        good = (models / "models.config").read_text()
        (models / "models.config").write_text("model_config_list { config { name: ")

        def refusals() -> float:
            page = metrics(project, "http://model.service:8501/monitoring/prometheus/metrics")
            return value(parse_samples(page), "model_server_config_reload_failures")

        wait_until(lambda: refusals() >= 1, 60, "the refused config counted")
        assert {predict(client) for _ in range(3)} == {("stable", 1)}
        assert "Failed to reload the model config" in project.logs("model.service")
        assert json.loads((models / "rollout.json").read_text()) == {
            "canary_percent": 0.0, "shadow_percent": 0.0}
        (models / "models.config").write_text(good)
