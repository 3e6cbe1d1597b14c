"""model_config_list parsing and the version policies, with TF Serving's rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_server import config, repository


def test_model_config_list_with_every_policy():
    models = config.parse_model_config_list("""
        model_config_list {
          config { name: "a" base_path: "/m/a" model_platform: "tensorflow" }
          config { name: "b" base_path: "/m/b" model_version_policy { all {} } }
          config { name: "c" base_path: "/m/c"
                   model_version_policy { specific { versions: 3 versions: 5 } }
                   version_labels { key: "canary" value: 5 } }
          config { name: "d" base_path: "/m/d" model_version_policy { latest { num_versions: 2 } } }
        }""")
    assert [(m.name, m.base_path) for m in models] == [
        ("a", Path("/m/a")), ("b", Path("/m/b")), ("c", Path("/m/c")), ("d", Path("/m/d"))]
    on_disk = [1, 2, 3, 4, 5, 6]
    assert [m.policy.select(on_disk) for m in models] == [[6], [6, 5, 4, 3, 2, 1], [5, 3], [6, 5]]
    assert models[2].version_labels == {"canary": 5}


@pytest.mark.parametrize("text, message", [
    ("model_config_list { config { name: 'a' base_path: '/a' } config { name: 'a' base_path: "
     "'/b' } }", "multiple times"),
    ("model_config_list { config { base_path: '/a' } }", "no name"),
    ("model_config_list { config { name: 'a' } }", "no base_path"),
    ("model_config_list { config { name: 'a' base_path: '/a' model_platform: 'pytorch' } }",
     "not supported"),
    ("model_config_list { nonsense: 1 }", "Invalid protobuf file"),
])
def test_bad_configs_are_refused(text, message):
    with pytest.raises(config.ConfigError, match=message):
        config.parse_model_config_list(text)


def test_single_model_needs_a_base_path():
    with pytest.raises(config.ConfigError, match="are empty"):
        config.single_model("cassava", "")


def test_only_complete_numeric_directories_are_versions(tmp_path):
    for name in ("1", "2", "10", "latest", "3a", ".4"):
        (tmp_path / name).mkdir()
    for name in ("1", "10", "latest", "3a", ".4"):
        (tmp_path / name / "saved_model.pb").write_bytes(b"")
    (tmp_path / "labels.json").write_text("[]")
    (tmp_path / "7").write_text("a file, not a directory")
    # "2" has no saved_model.pb yet: still being written.
    assert repository.scan_versions(tmp_path) == {1: tmp_path / "1", 10: tmp_path / "10"}
    assert repository.scan_versions(tmp_path / "missing") is None
