"""One labels contract: a labels file the publishing tools accept (training.repository, used by
scripts/convert-model, get-model and train-demo-model) is exactly one the API starts with, and a
file either refuses, the other refuses too. The API side is its real startup (create_app's
lifespan), the model server faked (fast tier)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import app.main
from app.core.config import Settings
from app.labels import LabelsError
from tests.support.fake_model_server import FakeModelServer
from tests.support.paths import SEED_LABELS
from training.repository import PublishError, read_labels, write_labels

SEED = SEED_LABELS.read_text(encoding="utf-8")
FILES = {  # labels.json text -> whether both sides accept it
    "seed": (SEED, True),
    "extra fields": ('[{"code": "A", "name": "Alpha", "description": "d", "aka": "x"}]', True),
    "one class": ('[{"code": "A", "name": "Alpha"}]', True),
    "blank name": ('[{"code": "A", "name": "   "}]', False),
    "blank code": ('[{"code": " ", "name": "Alpha"}]', False),
    "empty name": ('[{"code": "A", "name": ""}]', False),
    "duplicate codes": ('[{"code": "A", "name": "x"}, {"code": "A", "name": "y"}]', False),
    "number code": ('[{"code": 1, "name": "Alpha"}]', False),
    "missing name": ('[{"code": "A"}]', False),
    "empty list": ("[]", False),
    "object": ('{"code": "A", "name": "Alpha"}', False),
    "strings": ('["A", "B"]', False),
    "not json": ("A,B", False),
}


def publishes(path: Path, model_dir: Path) -> bool:
    try:
        write_labels(model_dir, read_labels(path))
    except PublishError:
        return False
    return True


async def api_starts(path: Path, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setattr(app.main, "TFServingClient", FakeModelServer().connect)
    api = app.main.create_app(Settings(LABELS_PATH=path))
    try:
        async with api.router.lifespan_context(api):
            return True
    except LabelsError:
        return False


@pytest.mark.parametrize("name", list(FILES))
@pytest.mark.anyio
async def test_a_labels_file_publishes_exactly_when_the_api_starts_with_it(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, accepted = FILES[name]
    path = tmp_path / "labels.json"
    path.write_text(text, encoding="utf-8")
    assert publishes(path, tmp_path / "model") is accepted
    assert await api_starts(path, monkeypatch) is accepted
    if accepted:  # what was published is what the API reads, extra fields and all
        assert json.loads((tmp_path / "model" / "labels.json").read_text()) == json.loads(text)


@pytest.mark.parametrize("name", [name for name, (_, ok) in FILES.items() if not ok and
                                  name != "not json"])
def test_the_tools_never_write_a_list_the_api_refuses(name: str, tmp_path: Path) -> None:
    labels = json.loads(FILES[name][0])
    with pytest.raises(PublishError):
        write_labels(tmp_path, labels)
    assert not (tmp_path / "labels.json").exists()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
