"""scripts/model-rollout: change the served model version safely, by editing TF Serving's own
model config file (text-format ModelServerConfig, version labels) and the API's rollout plan.

    model-rollout status                      labels, versions, plan, and traffic from the metrics
    model-rollout init [--version V]          pin the served version as `stable` (before a new one)
    model-rollout shadow V [--percent P]      load V as `canary`; P % of stable's photos compared
    model-rollout canary V --percent P        P % of single predictions answered by V
    model-rollout promote                     `stable` -> the canary's version (old one kept)
    model-rollout rollback                    back to the previous `stable`, the other unloaded

Both files live in the model repository (--repository, default $MODEL_REPOSITORY,
$MODEL_BASE_PATH or model.service/models): `models.config` (read by the model server,
--model_config_file) and `rollout.json` (read by the API, ROLLOUT_FILE). Each is replaced
atomically (write, fsync, rename), in the order that keeps every request answerable: the label
first when a version gains traffic, the plan first when it loses it. docs/model-rollout.md has
the worked example.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.config import model_server_config_pb2

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILE = "models.config"
ROLLOUT_FILE = "rollout.json"
STABLE, CANARY, PREVIOUS = "stable", "canary", "previous"


class RolloutError(Exception):
    """A step that cannot be taken from the current state (exit status 2)."""


@dataclass(frozen=True)
class Plan:
    canary_percent: float = 0.0
    shadow_percent: float = 0.0

    def to_json(self) -> str:
        return json.dumps({"canary_percent": self.canary_percent,
                           "shadow_percent": self.shadow_percent}) + "\n"


# -- the model config: pure functions on ModelServerConfig ---------------------------------------
def parse_config(text: str) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(text, config)
    return config


def format_config(config: model_server_config_pb2.ModelServerConfig) -> str:
    return text_format.MessageToString(config)


def find_model(config, name: str):
    for model in config.model_config_list.config:
        if model.name == name:
            return model
    raise RolloutError(f"the model config has no model {name!r}; run `model-rollout init`")


def labels_of(config, name: str) -> dict[str, int]:
    return dict(find_model(config, name).version_labels)


def with_model(config, name: str, versions: set[int], labels: dict[str, int]):
    """A copy of `config` where model `name` serves exactly `versions` and has `labels`."""
    new = model_server_config_pb2.ModelServerConfig()
    new.CopyFrom(config)
    model = find_model(new, name)
    model.model_version_policy.Clear()
    model.model_version_policy.specific.versions.extend(sorted(versions))
    model.version_labels.clear()
    for label, version in sorted(labels.items()):
        model.version_labels[label] = version
    return new


def initial_config(name: str, base_path: str, version: int):
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = name, base_path, "tensorflow"
    return with_model(config, name, {version}, {STABLE: version})


def step(command: str, config, name: str, version: int | None = None,
         percent: float = 100.0) -> tuple[model_server_config_pb2.ModelServerConfig, Plan]:
    """The config and plan after `command`. Pure."""
    labels = labels_of(config, name)
    stable = labels.get(STABLE)
    if stable is None:
        raise RolloutError(f"model {name!r} has no `stable` label; run `model-rollout init`")
    if command in ("shadow", "canary"):
        assert version is not None
        if version == stable:
            raise RolloutError(f"version {version} is already stable")
        if not 0.0 <= percent <= 100.0:
            raise RolloutError("--percent must be between 0 and 100")
        new = with_model(config, name, {stable, version}, {STABLE: stable, CANARY: version})
        plan = Plan(canary_percent=percent) if command == "canary" else Plan(
            shadow_percent=percent)
        return new, plan
    if command == "promote":
        canary = labels.get(CANARY)
        if canary is None:
            raise RolloutError("no canary to promote: `model-rollout canary VERSION` first")
        # The old stable stays loaded (`previous`) so that a rollback is instant.
        return with_model(config, name, {canary, stable},
                          {STABLE: canary, PREVIOUS: stable}), Plan()
    if command == "rollback":
        if CANARY in labels:  # not promoted yet: drop the canary
            return with_model(config, name, {stable}, {STABLE: stable}), Plan()
        previous = labels.get(PREVIOUS)
        if previous is None:
            raise RolloutError("nothing to roll back to: no canary and no previous version")
        return with_model(config, name, {previous}, {STABLE: previous}), Plan()
    if command == "init":
        return with_model(config, name, {version or stable}, {STABLE: version or stable}), Plan()
    raise RolloutError(f"unknown command {command}")


# -- files -----------------------------------------------------------------------------------------
def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a part: write, fsync, rename, fsync dir."""
    fd, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(scratch, 0o644)  # the containers' non-root users read it
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def versions_on_disk(base: Path) -> list[int]:
    # ASCII digits only, as the model server's scanner (model_server/repository.py).
    return sorted(int(p.name) for p in base.iterdir() if p.name.isascii() and p.name.isdigit()
                  and ((p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file()))


def read_plan(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Plan()
    return Plan(float(data.get("canary_percent", 0)), float(data.get("shadow_percent", 0)))


def apply(repository: Path, old_plan: Plan, config, plan: Plan) -> None:
    """Write both files, the one that takes traffic away first."""
    config_text, plan_text = format_config(config), plan.to_json()
    gains = plan.canary_percent > old_plan.canary_percent or \
        plan.shadow_percent > old_plan.shadow_percent
    writes = [(CONFIG_FILE, config_text), (ROLLOUT_FILE, plan_text)]
    for name, text in writes if gains else reversed(writes):
        write_atomically(repository / name, text)


# -- status: the API's metrics ---------------------------------------------------------------------
def summarise(metrics_text: str) -> list[str]:
    """Per label and version: predictions ok/errors and mean latency; shadow agreement."""
    calls: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    shadow: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    skipped: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == "cassava_api_version_predictions_total":
                calls[(s.labels["label"], s.labels["model_version"])][s.labels["outcome"]] += \
                    s.value
            elif s.name in ("cassava_api_version_predict_duration_seconds_sum",
                            "cassava_api_version_predict_duration_seconds_count"):
                key = (s.labels["label"], s.labels["model_version"])
                calls[key][s.name.rsplit("_", 1)[1]] += s.value
            elif s.name == "cassava_api_shadow_comparisons_total":
                key = (s.labels["stable_version"], s.labels["canary_version"])
                shadow[key][s.labels["agreed"]] += s.value
            elif s.name == "cassava_api_shadow_max_abs_difference_sum":
                shadow[(s.labels["stable_version"], s.labels["canary_version"])]["dsum"] += \
                    s.value
            elif s.name == "cassava_api_shadow_skipped_total":
                skipped[s.labels["reason"]] = s.value
    lines = []
    total = sum(v.get("ok", 0) + v.get("error", 0) for v in calls.values())
    for (label, version), v in sorted(calls.items()):
        answered = v.get("ok", 0) + v.get("error", 0)
        share = 100 * answered / total if total else 0.0
        mean = 1000 * v["sum"] / v["count"] if v.get("count") else 0.0
        lines.append(f"  {label:<8} version {version:<8} {int(answered):>7} predictions "
                     f"({share:5.1f} %), {int(v.get('error', 0))} errors, mean {mean:.0f} ms")
    for (stable, canary), v in sorted(shadow.items()):
        compared = v.get("true", 0) + v.get("false", 0)
        agreed = 100 * v.get("true", 0) / compared if compared else 0.0
        mean_d = v.get("dsum", 0) / compared if compared else 0.0
        lines.append(f"  shadow   {stable} vs {canary}: {int(compared)} compared, top class "
                     f"agreed {agreed:.1f} %, mean max |dp| {mean_d:.3f}")
    if skipped:
        lines.append("  shadow skipped: " + ", ".join(
            f"{reason} {int(n)}" for reason, n in sorted(skipped.items())))
    return lines or ["  (no predictions since the API started)"]


def fetch_metrics(url: str | None, compose: bool) -> str | None:
    if compose:
        import subprocess
        reply = subprocess.run(
            ["docker", "compose", "exec", "-T", "api.service", "python", "-c",
             "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/metrics', "
             "timeout=5).read().decode())"], capture_output=True, text=True, check=False)
        return reply.stdout if reply.returncode == 0 else None
    if not url:
        return None
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.read().decode()
    except OSError as error:
        print(f"  metrics unavailable from {url}: {error}", file=sys.stderr)
        return None


# -- command line ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="model-rollout", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repository", type=Path,
        default=Path(os.environ.get("MODEL_REPOSITORY") or os.environ.get("MODEL_BASE_PATH")
                     or REPO / "model.service" / "models"),
        help="the model repository: holds <model>/<version>/, models.config, rollout.json "
             "(default: $MODEL_REPOSITORY (compose), $MODEL_BASE_PATH (run-local) or "
             "model.service/models)")
    parser.add_argument("--model", default=os.environ.get("MODEL_NAME", "cassava"))
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="labels, versions, plan and traffic")
    status.add_argument("--metrics-url", default=os.environ.get("ROLLOUT_METRICS_URL"),
                        help="the API's /metrics (run-local: http://127.0.0.1:API_PORT/metrics)")
    status.add_argument("--compose", action="store_true",
                        help="read the API's metrics inside the compose stack")
    init = commands.add_parser("init", help="pin a version as stable (default: the newest)")
    init.add_argument("--version", type=int)
    init.add_argument("--base-path", help="base_path in the config (default: the model's "
                      "directory name, relative to the repository: the model server runs there)")
    for name in ("shadow", "canary"):
        sub = commands.add_parser(name, help=f"{name} a version")
        sub.add_argument("version", type=int)
        sub.add_argument("--percent", type=float, default=100.0 if name == "shadow" else None,
                         required=name == "canary")
    commands.add_parser("promote", help="stable -> the canary's version")
    commands.add_parser("rollback", help="back to the previous stable version")
    args = parser.parse_args(argv)

    repository: Path = args.repository
    config_path, plan_path = repository / CONFIG_FILE, repository / ROLLOUT_FILE
    try:
        if args.command == "status":
            return show_status(args, config_path, plan_path)
        old_plan = read_plan(plan_path)
        base = repository / args.model
        on_disk = versions_on_disk(base) if base.is_dir() else []
        if args.command == "init" and not config_path.exists():
            version = args.version or (on_disk[-1] if on_disk else None)
            if version is None:
                raise RolloutError(f"no version under {base}")
            config, plan = initial_config(args.model, args.base_path or args.model,
                                          version), Plan()
        else:
            if not config_path.exists():
                raise RolloutError(f"{config_path} does not exist; run `model-rollout init`")
            if getattr(args, "base_path", None):
                raise RolloutError(f"--base-path applies when init creates {config_path}; it "
                                   "exists: edit its base_path instead")
            config = parse_config(config_path.read_text())
            config, plan = step(args.command, config, args.model, getattr(args, "version", None),
                                getattr(args, "percent", None) or 0.0)
        missing = set(find_model(config, args.model).model_version_policy.specific.versions) \
            - set(on_disk)
        if missing:
            raise RolloutError(f"version(s) {sorted(missing)} not found under {base}")
        apply(repository, old_plan, config, plan)
    except (RolloutError, text_format.ParseError) as error:
        print(f"model-rollout: {error}", file=sys.stderr)
        return 2
    labels = labels_of(config, args.model)
    print(f"model-rollout: {args.command}: labels {dict(sorted(labels.items()))}, canary "
          f"{plan.canary_percent:g} %, shadow {plan.shadow_percent:g} % "
          f"(the model server re-reads {config_path.name} within its poll interval)")
    return 0


def show_status(args: argparse.Namespace, config_path: Path, plan_path: Path) -> int:
    if not config_path.exists():
        print(f"{config_path}: none (no version labels; the newest version serves everything)")
    else:
        model = find_model(parse_config(config_path.read_text()), args.model)
        versions = sorted(model.model_version_policy.specific.versions)
        print(f"model {args.model}: versions {versions}, labels "
              f"{dict(sorted(model.version_labels.items()))}")
    plan = read_plan(plan_path)
    print(f"plan: canary {plan.canary_percent:g} %, shadow {plan.shadow_percent:g} %")
    metrics = fetch_metrics(args.metrics_url, args.compose)
    if metrics is not None:
        print("traffic since the API started:")
        print("\n".join(summarise(metrics)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
