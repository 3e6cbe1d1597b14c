"""scripts/model-rollout's steps on TF Serving's ModelServerConfig (the official protos), and
the order its two files are written in."""

from __future__ import annotations

import json
from pathlib import Path

import model_rollout
import pytest
from model_rollout import Plan, RolloutError, initial_config, labels_of, parse_config, step


def policy(config) -> list[int]:
    return sorted(model_rollout.find_model(config, "cassava").model_version_policy.specific
                  .versions)


def test_shadow_canary_promote_rollback() -> None:
    config = parse_config(model_rollout.format_config(initial_config("cassava", "cassava", 1)))
    assert (policy(config), labels_of(config, "cassava")) == ([1], {"stable": 1})

    shadowed, plan = step("shadow", config, "cassava", 2, 100)
    assert (policy(shadowed), labels_of(shadowed, "cassava")) == ([1, 2],
                                                                  {"stable": 1, "canary": 2})
    assert plan == Plan(shadow_percent=100)

    canary, plan = step("canary", shadowed, "cassava", 2, 10)
    assert plan == Plan(canary_percent=10)

    promoted, plan = step("promote", canary, "cassava")
    assert (policy(promoted), labels_of(promoted, "cassava")) == (
        [1, 2], {"stable": 2, "previous": 1})
    assert plan == Plan()

    rolled_back, _ = step("rollback", promoted, "cassava")
    assert (policy(rolled_back), labels_of(rolled_back, "cassava")) == ([1], {"stable": 1})

    dropped, _ = step("rollback", canary, "cassava")  # before promote: the canary goes
    assert (policy(dropped), labels_of(dropped, "cassava")) == ([1], {"stable": 1})


def test_impossible_steps_are_refused() -> None:
    config = initial_config("cassava", "cassava", 1)
    with pytest.raises(RolloutError, match="no canary to promote"):
        step("promote", config, "cassava")
    with pytest.raises(RolloutError, match="nothing to roll back"):
        step("rollback", config, "cassava")
    with pytest.raises(RolloutError, match="already stable"):
        step("canary", config, "cassava", 1, 10)
    with pytest.raises(RolloutError, match="between 0 and 100"):
        step("canary", config, "cassava", 2, 101)
    with pytest.raises(RolloutError, match="no model 'other'"):
        step("shadow", config, "other", 2)


def test_the_file_losing_traffic_is_written_first(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    monkeypatch.setattr(model_rollout, "write_atomically",
                        lambda path, text: order.append(path.name))
    config = initial_config("cassava", "cassava", 1)
    model_rollout.apply(tmp_path, Plan(), config, Plan(canary_percent=10))
    assert order == ["models.config", "rollout.json"]  # the label exists before traffic
    order.clear()
    model_rollout.apply(tmp_path, Plan(canary_percent=10), config, Plan())
    assert order == ["rollout.json", "models.config"]  # traffic leaves before the label


def test_command_line_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = tmp_path / "cassava"
    for version in (1, 2):
        (base / str(version)).mkdir(parents=True)
        (base / str(version) / "saved_model.pb").write_bytes(b"")
    run = ["--repository", str(tmp_path), "--model", "cassava"]
    assert model_rollout.main([*run, "init"]) == 0  # the newest version on disk
    assert labels_of(parse_config((tmp_path / "models.config").read_text()),
                     "cassava") == {"stable": 2}
    assert model_rollout.main([*run, "init", "--version", "1"]) == 0
    assert model_rollout.main([*run, "init", "--base-path", "/models/cassava"]) == 2
    assert "--base-path applies when init creates" in capsys.readouterr().err
    # ARABIC-INDIC DIGIT THREE: str.isdigit() and int() take it, the model server does not.
    (base / "\u0663").mkdir()
    (base / "\u0663" / "saved_model.pb").write_bytes(b"")
    assert model_rollout.main([*run, "canary", "3", "--percent", "10"]) == 2
    assert "version(s) [3] not found" in capsys.readouterr().err
    assert model_rollout.main([*run, "canary", "2", "--percent", "10"]) == 0
    assert json.loads((tmp_path / "rollout.json").read_text()) == {
        "canary_percent": 10.0, "shadow_percent": 0.0}
    assert model_rollout.main([*run, "canary", "7", "--percent", "10"]) == 2
    assert "version(s) [7] not found" in capsys.readouterr().err
    assert model_rollout.main([*run, "status"]) == 0
    assert "labels {'canary': 2, 'stable': 1}" in capsys.readouterr().out


def test_status_summarises_the_apis_metrics() -> None:
    page = "\n".join([
        'cassava_api_version_predictions_total{label="stable",model_version="1",outcome="ok"} 90',
        'cassava_api_version_predictions_total{label="canary",model_version="2",outcome="ok"} 9',
        'cassava_api_version_predictions_total{label="canary",model_version="2",outcome="error"}'
        " 1",
        'cassava_api_shadow_comparisons_total{stable_version="1",canary_version="2",'
        'agreed="true"} 3',
        'cassava_api_shadow_comparisons_total{stable_version="1",canary_version="2",'
        'agreed="false"} 1',
        'cassava_api_shadow_max_abs_difference_sum{stable_version="1",canary_version="2"} 0.4',
    ]) + "\n"
    lines = model_rollout.summarise(page)
    assert any("canary" in line and "10 predictions ( 10.0 %), 1 errors" in line
               for line in lines), lines
    assert any("1 vs 2: 4 compared, top class agreed 75.0 %, mean max |dp| 0.100" in line
               for line in lines), lines
