"""deploy/kubernetes: every overlay renders (kubectl kustomize), validates strictly against
Kubernetes' schemas with no warning (kubernetes-validate), passes checkov, meets Pod Security
"restricted", lets only the API reach the model server; and `podman kube play` runs the rendered
API and model-server Deployments with the locally built images, answering a prediction."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.compose.conftest import engine_problem
from tests.deploy.kube import (
    KUBERNETES_DIR,
    OVERLAYS,
    Podman,
    by_kind,
    documents,
    install_tools,
    podman_problem,
    render,
    tool,
)
from tests.deploy.oci_runtime import host_runtime
from tests.support.absent import skip_or_fail
from tests.support.edge_config import dynamic_default
from tests.support.paths import MODEL_REPOSITORY, SCRIPTS_DIR
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    install_tools()
    return {overlay: render(KUBERNETES_DIR / "overlays" / overlay) for overlay in OVERLAYS}


def test_every_overlay_renders_the_whole_stack(rendered: dict[str, str]) -> None:
    for overlay, text in rendered.items():
        docs = documents(text)
        assert set(by_kind(docs, "Deployment")) == {"api", "model", "ui"}, overlay
        assert set(by_kind(docs, "HorizontalPodAutoscaler")) == {"api", "model"}, overlay
        assert set(by_kind(docs, "PodDisruptionBudget")) == {"api", "model", "ui"}, overlay
        assert {doc["metadata"].get("namespace") for doc in docs} == \
            {"cassava-dev" if overlay == "dev" else "cassava"}
        assert by_kind(docs, "Service")["model"]["spec"]["clusterIP"] == "None"  # headless


def test_manifests_validate_strictly_without_warnings(rendered: dict[str, str],
                                                      tmp_path: Path) -> None:
    for overlay, text in rendered.items():
        path = tmp_path / f"{overlay}.yaml"
        path.write_text(text)
        result = subprocess.run([tool("kubernetes-validate"), "--strict", str(path)],
                                capture_output=True, text=True, timeout=120, check=False)
        output = result.stdout + result.stderr
        # A removed API version or an unknown kind is only a WARN with exit status 0.
        assert result.returncode == 0 and "WARN" not in output and "ERROR" not in output, output
        assert output.count("passed for resource") == len(documents(text))


def test_checkov_passes(rendered: dict[str, str], tmp_path: Path) -> None:
    for overlay, text in rendered.items():
        path = tmp_path / f"{overlay}.yaml"
        path.write_text(text)
        # --skip-download: no policy metadata from the vendor's servers (none reachable here).
        result = subprocess.run(
            [tool("checkov"), "-f", str(path), "--framework", "kubernetes", "--skip-download",
             "--output", "json"],
            capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
        report = json.loads(result.stdout)
        summary = report["summary"]
        assert result.returncode == 0 and summary["failed"] == 0, result.stdout[-4000:]
        assert summary["passed"] > 100
        # Every skip carries its reason.
        for check in report["results"]["skipped_checks"]:
            assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]


def test_pods_meet_the_restricted_pod_security_profile(rendered: dict[str, str]) -> None:
    for text in rendered.values():
        for name, deployment in by_kind(documents(text), "Deployment").items():
            pod = deployment["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert pod["automountServiceAccountToken"] is False, name
            for container in pod["containers"]:
                security = container["securityContext"]
                assert security["allowPrivilegeEscalation"] is False, name
                assert security["readOnlyRootFilesystem"] is True, name
                assert security["capabilities"] == {"drop": ["ALL"]}, name
                assert {"requests", "limits"} <= set(container["resources"]), name
                assert "readinessProbe" in container and "livenessProbe" in container, name


def test_only_the_api_reaches_the_model_server(rendered: dict[str, str]) -> None:
    policies = by_kind(documents(rendered["production"]), "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    model = {"app.kubernetes.io/name": "model"}
    to_model = [p["spec"] for p in policies.values()
                if p["spec"]["podSelector"].get("matchLabels") == model and "ingress" in p["spec"]]
    assert len(to_model) == 1
    (rule,) = to_model[0]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "api"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8500}]


def test_ingress_caps_the_body_like_the_api(rendered: dict[str, str]) -> None:
    docs = documents(rendered["production"])
    middlewares = by_kind(docs, "ConfigMap")["traefik-middlewares"]["data"]
    assert "maxRequestBodyBytes: 10485760" in middlewares["cassava-middlewares.yml"]
    ingresses = by_kind(docs, "Ingress")
    hosts = {rule["host"] for ingress in ingresses.values() for rule in ingress["spec"]["rules"]}
    assert hosts == {"ui.service.localhost", "api.service.localhost"}
    for name in ("api", "ui-api", "api-predict", "ui-api-predict"):
        annotation = ingresses[name]["metadata"]["annotations"][
            "traefik.ingress.kubernetes.io/router.middlewares"]
        assert "cassava-upload-cap@file" in annotation.split(",")
    # The limits themselves act in a real Traefik: tests/deploy/test_kubernetes_edge.py.
    for name in ("api-predict", "ui-api-predict"):
        annotation = ingresses[name]["metadata"]["annotations"][
            "traefik.ingress.kubernetes.io/router.middlewares"].split(",")
        # Counted before the body is buffered.
        assert annotation.index("cassava-upload-slots@file") < annotation.index(
            "cassava-upload-cap@file")
    env = {e["name"]: e.get("value") for e in
           by_kind(docs, "Deployment")["api"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MAX_UPLOAD_BYTES"] == "10485760"
    assert env["MODEL_SERVER_ADDRESS"] == "dns:///model:8500"


def test_client_limits_are_the_edge_defaults() -> None:
    # One policy: the ConfigMap repeats traefik/dynamic.yml's defaults (Kubernetes' file provider
    # gets no environment to template them from), so they must not drift apart.
    base = yaml.safe_load_all((KUBERNETES_DIR / "base" / "ingress.yaml").read_text())
    configmap = next(doc for doc in base if doc["kind"] == "ConfigMap")
    middlewares = yaml.safe_load(configmap["data"]["cassava-middlewares.yml"])["http"][
        "middlewares"]
    rate = middlewares["cassava-client-rate-limit"]["rateLimit"]
    inflight = middlewares["cassava-client-inflight"]["inFlightReq"]
    assert (str(rate["average"]), rate["period"], str(rate["burst"]), str(inflight["amount"])) \
        == tuple(dynamic_default(name) for name in ("RATE_LIMIT_AVERAGE", "RATE_LIMIT_PERIOD",
                                                     "RATE_LIMIT_BURST", "INFLIGHT_PER_CLIENT"))
    for limit in (rate, inflight):  # the TCP peer, as dynamic.yml: X-Forwarded-For cannot dodge it
        assert limit["sourceCriterion"] == {"ipStrategy": {"depth": 0}}


@pytest.mark.parametrize("name", ["labels.json", "model.json"])
def test_labels_and_card_are_the_model_repository_s(name: str) -> None:
    shipped = json.loads((KUBERNETES_DIR / "base" / name).read_text())
    assert shipped == json.loads((MODEL_REPOSITORY / "cassava" / name).read_text())


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    problem = podman_problem() or engine_problem()  # the images come from the Docker engine
    if problem:
        skip_or_fail(problem)
    runner = Podman(tmp_path / "podman", network=f"cassava-kube-{uuid.uuid4().hex[:8]}",
                    runtime=host_runtime())
    runner("network", "create", runner.network)
    try:
        yield runner
    finally:
        runner.close()




def dev_overlay_with_local_images(workdir: Path, tag: str, model_address: str) -> Path:
    """The dev overlay, with the images built here (podman names images loaded from `docker save`
    localhost/...) and the API pointed at the model pod (podman has no Service DNS)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # Kustomize takes only relative paths to other kustomizations.
        "resources": [os.path.relpath(KUBERNETES_DIR / "overlays" / "dev", workdir)],
        "images": [{"name": f"cassava/{name}", "newName": f"localhost/cassava/{name}",
                    "newTag": tag} for name in ("api.service", "model.service", "ui.service")],
        "patches": [{"target": {"kind": "Deployment", "name": "api"}, "patch": yaml.safe_dump([
            {"op": "replace", "path": "/spec/template/spec/containers/0/env/0/value",
             "value": model_address}])}],
    }))
    return workdir


def only(docs: list[dict], *wanted: tuple[str, str]) -> str:
    return yaml.safe_dump_all([doc for doc in docs
                               if (doc["kind"], doc["metadata"]["name"]) in wanted])


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_podman_kube_play_runs_api_and_model_and_predicts(
        podman: Podman, tmp_path: Path, leaf_photo_paths: list[Path]) -> None:
    tag = os.environ.get("CASSAVA_TEST_IMAGE_TAG", "swarm-lab")
    images = [f"cassava/{name}:{tag}" for name in ("api.service", "model.service")]
    missing = [image for image in images if subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, check=False).returncode]
    if missing:  # normally built by the Swarm lab tests of this session; else build them now
        subprocess.run([str(SCRIPTS_DIR / "docker-build-all"), "--offline"], check=True,
                       timeout=1800, capture_output=True, env={**os.environ, "IMAGE_TAG": tag})
    podman.load_from_docker(*images)

    first = documents(render(dev_overlay_with_local_images(tmp_path / "k1", tag, "unset")))
    model_yaml = tmp_path / "model.yaml"
    model_yaml.write_text(only(first, ("Deployment", "model")))
    podman.play(model_yaml)
    model_ip = podman.ip("model-pod-0-model")
    docs = documents(render(dev_overlay_with_local_images(tmp_path / "k2", tag,
                                                         f"dns:///{model_ip}:8500")))
    api_yaml = tmp_path / "api.yaml"
    api_yaml.write_text(only(docs, ("Deployment", "api"),
                             ("ConfigMap", by_kind_name(docs, "ConfigMap", "labels"))))
    podman.play(api_yaml)
    api = f"http://{podman.ip('api-pod-0-api')}:8000"

    try:
        wait_until(lambda: httpx.get(f"{api}/readyz", timeout=3).status_code == 200, 240,
                   "a ready API pod", every=2, ignore=(httpx.HTTPError,))
    except TimeoutError:
        pytest.fail(f"API not ready:\n{podman.logs('api-pod-0-api')[-3000:]}\n"
                    f"{podman.logs('model-pod-0-model')[-3000:]}")
    reply = httpx.post(f"{api}/predict/image", timeout=60, files={
        "image_to_predict": ("leaf.jpg", leaf_photo_paths[0].read_bytes(), "image/jpeg")})
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"]["version"] == 1
    # The containers run as the manifests say: non-root, read-only root filesystem.
    user = podman("exec", "api-pod-0-api", "id", "-u").stdout.strip()
    assert user == "10001"
    assert podman("exec", "api-pod-0-api", "touch", "/probe", check=False).returncode != 0


def by_kind_name(docs: list[dict], kind: str, prefix: str) -> str:
    """The generated name of a ConfigMap (Kustomize appends a content hash)."""
    (name,) = [d["metadata"]["name"] for d in docs
               if d["kind"] == kind and d["metadata"]["name"].startswith(prefix + "-")]
    return name


def test_production_ingresses_are_https_with_cert_manager(rendered: dict[str, str]) -> None:
    """Every production Ingress has a `tls:` section for its host (cert-manager's ClusterIssuer
    `letsencrypt` fills the Secret, docs/tls.md) and uses the controller's websecure entry point;
    dev stays plain HTTP."""
    for name, ingress in by_kind(documents(rendered["production"]), "Ingress").items():
        annotations = ingress["metadata"]["annotations"]
        (host,) = {rule["host"] for rule in ingress["spec"]["rules"]}
        assert ingress["spec"]["tls"] == [{"hosts": [host],
                                           "secretName": host.split(".")[0] + "-tls"}], name
        assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
        assert annotations["traefik.ingress.kubernetes.io/router.entrypoints"] == "websecure"
        assert annotations["traefik.ingress.kubernetes.io/router.tls"] == "true"
    for ingress in by_kind(documents(rendered["dev"]), "Ingress").values():
        assert "tls" not in ingress["spec"]
