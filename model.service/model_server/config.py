"""Which models to serve: --model_name/--model_base_path, or a text-format model_config_list."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


class ConfigError(ValueError):
    """A model configuration TF Serving would refuse too."""


@dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ServableVersionPolicy: latest{num_versions}, all{}, or specific{versions}."""

    kind: str = "latest"  # "latest" | "all" | "specific"
    num_versions: int = 1
    versions: frozenset[int] = frozenset()

    def select(self, available: list[int]) -> list[int]:
        """The versions to serve out of those present on disk, newest first."""
        newest_first = sorted(set(available), reverse=True)
        if self.kind == "all":
            return newest_first
        if self.kind == "specific":
            return [v for v in newest_first if v in self.versions]
        return newest_first[: self.num_versions]

    def describe(self) -> str:
        if self.kind == "specific":
            return f"specific {sorted(self.versions)}"
        if self.kind == "latest":
            return f"latest {self.num_versions}"
        return "all"


@dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: Path
    policy: VersionPolicy = VersionPolicy()
    version_labels: dict[str, int] = field(default_factory=dict)


def policy_from_proto(proto) -> VersionPolicy:
    which = proto.WhichOneof("policy_choice")
    if which == "all":
        return VersionPolicy("all")
    if which == "specific":
        if not proto.specific.versions:
            raise ConfigError("model_version_policy specific {} lists no versions")
        return VersionPolicy("specific", versions=frozenset(proto.specific.versions))
    num = proto.latest.num_versions if which == "latest" else 0
    # TF Serving treats an unset or zero num_versions as 1.
    return VersionPolicy("latest", num_versions=num or 1)


def parse_model_config_list(text: str) -> list[ModelConfig]:
    """Parse a ModelServerConfig in protobuf text format (only model_config_list is supported).

    A relative base_path is relative to the working directory, as in TF Serving.
    """
    proto = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as error:
        raise ConfigError(f"Invalid protobuf file: {error}") from None
    if proto.WhichOneof("config") == "custom_model_config":
        raise ConfigError("custom_model_config is not supported; use model_config_list")
    models: list[ModelConfig] = []
    seen: set[str] = set()
    for item in proto.model_config_list.config:
        if not item.name:
            raise ConfigError("a model in model_config_list has no name")
        if item.name in seen:
            raise ConfigError(f"Illegal to list model {item.name} multiple times in config list")
        if not item.base_path:
            raise ConfigError(f"model {item.name} has no base_path")
        if item.model_platform not in ("", "tensorflow"):
            raise ConfigError(f"model {item.name}: model_platform {item.model_platform!r} is not "
                              "supported (only tensorflow)")
        seen.add(item.name)
        policy = policy_from_proto(item.model_version_policy)
        models.append(ModelConfig(item.name, Path(item.base_path), policy,
                                  dict(item.version_labels)))
    return models


def load_model_config_file(path: Path) -> list[ModelConfig]:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read --model_config_file {path}: {error.strerror}") from None
    return parse_model_config_list(text)


def single_model(name: str, base_path: str) -> list[ModelConfig]:
    """The --model_name/--model_base_path configuration."""
    if not base_path:
        raise ConfigError("Both server_options.model_base_path and "
                          "server_options.model_config_file are empty!")
    return [ModelConfig(name, Path(base_path))]
