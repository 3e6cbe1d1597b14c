"""monitoring/: Prometheus config and alert rules checked by promtool (Debian's prometheus
package, installed by scripts/bootstrap), the alert rules unit-tested, the dashboard's shape."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from tests.support.paths import REPO_ROOT

PROMETHEUS_DIR = REPO_ROOT / "monitoring" / "prometheus"
DASHBOARD = REPO_ROOT / "monitoring" / "grafana" / "dashboards" / "cassava-stack.json"
ROLLOUT_DASHBOARD = DASHBOARD.with_name("cassava-rollout.json")


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: scripts/bootstrap installs Debian's prometheus"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          check=False)


def test_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_they_should_and_only_then() -> None:
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\w+)", (PROMETHEUS_DIR / "alerts.yml").read_text(),
                            re.MULTILINE))
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS_DIR / "alerts.test.yml").read_text()))
    assert alerts - tested <= {"ModelLoadFailed"}, alerts - tested
    assert {"ApiHighErrorRatio", "ApiSlowPredictions", "ModelServerNotAvailable",
            "LowConfidenceShareHigh", "CanaryErrorRatioHigh", "ShadowDisagreementHigh",
            "ModelConfigRefused"} <= alerts


def test_a_broken_rule_is_caught(tmp_path: Path) -> None:
    """promtool really checks: a rule with a PromQL syntax error fails."""
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(\n")
    assert promtool("check", "rules", str(broken)).returncode != 0


def test_the_dashboard_covers_the_issue(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Request rate", "Error rate", "Latency per hop (p50 / p95 / p99)", "Diagnosis mix",
            "Low-confidence share"} <= titles
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    latency = next(p for p in dashboard["panels"] if p["title"].startswith("Latency per hop"))
    hops = " ".join(t["expr"] for t in latency["targets"])
    for metric in ("traefik_entrypoint_request_duration_seconds_bucket",
                   "cassava_api_request_duration_seconds_bucket",
                   ":tensorflow:serving:request_latency_bucket"):
        assert metric in hops
    assert all(p["datasource"]["uid"] == "prometheus" for p in dashboard["panels"])
    check_queries(exprs, tmp_path)


def test_the_rollout_dashboard_covers_every_version_metric(tmp_path: Path) -> None:
    dashboard = json.loads(ROLLOUT_DASHBOARD.read_text())
    assert dashboard["uid"] == "cassava-rollout"
    assert {panel["title"] for panel in dashboard["panels"]} == {
        "Predictions by version label", "Error ratio by version label",
        "Predict latency by version (p95)", "Mean confidence and low-confidence share by version",
        "Predicted classes by version", "Shadow agreement and |Δp|"}
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for metric in ("cassava_api_version_predictions_total",
                   "cassava_api_version_predict_duration_seconds_bucket",
                   "cassava_api_prediction_confidence_sum",
                   "cassava_api_prediction_confidence_count",
                   "cassava_api_low_confidence_predictions_total",
                   "cassava_api_shadow_comparisons_total",
                   "cassava_api_shadow_max_abs_difference_bucket"):
        assert any(metric in expr for expr in exprs), metric
    assert all(p["datasource"]["uid"] == "prometheus" for p in dashboard["panels"])
    check_queries(exprs, tmp_path)


def check_queries(exprs: list[str], tmp_path: Path) -> None:
    """Every query parses as PromQL (promtool's own parser, via a throwaway rule file)."""
    rules = tmp_path / "dashboard.yml"
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for index, expr in enumerate(exprs):
        query = json.dumps(expr.replace("$__rate_interval", "1m"))
        lines += [f"      - record: dashboard:query{index}", f"        expr: {query}"]
    rules.write_text("\n".join(lines) + "\n")
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
