"""traefik/dynamic.yml's settings as the tests read them."""

from __future__ import annotations

import re

from tests.support.paths import REPO_ROOT

DYNAMIC_YML = REPO_ROOT / "traefik" / "dynamic.yml"


def dynamic_default(name: str) -> str:
    """The default of a setting dynamic.yml reads from the environment (`env "NAME" | default`)."""
    found = re.search(rf'env "{name}" \| default "([^"]*)"', DYNAMIC_YML.read_text())
    assert found, f"dynamic.yml has no default for {name}"
    return found[1]
