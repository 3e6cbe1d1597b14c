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


def route_table(template: str | None = None) -> str:
    """The routers of dynamic.yml as the Markdown table docs/run-local.md shows: host names as
    their variables, `LARGE` for the large-body condition, HSTS (HTTPS on a real domain only) and
    the HTTPS-only redirect router left out."""
    text = DYNAMIC_YML.read_text() if template is None else template
    section = text.split("\n  routers:\n", 1)[1].split("\n{{- if $https }}", 1)[0]
    section = re.split(r"\n  [a-z]+:\n", section, maxsplit=1)[0]
    rows = ["| Router | Priority | Rule | Middlewares (in order) | Service |",
            "|---|---|---|---|---|"]
    for name, body in re.findall(r"^    ([a-z-]+):\n((?:      .*\n|\s*\{\{.*\n|\s*\n)*)",
                                 section + "\n", re.MULTILINE):
        fields = dict(re.findall(r"^      (rule|priority|service): (.*)$", body, re.MULTILINE))
        (chain,) = re.findall(r"middlewares: \[(.*?)\]", " ".join(body.split()))
        rule = fields["rule"].strip('"').replace("\\\\", "\\")
        for template_value, shown in (("{{ $uiHost }}", "UI_HOST"), ("{{ $apiHost }}", "API_HOST"),
                                      ("{{ $large }}", "LARGE"), ("`", "")):
            rule = rule.replace(template_value, shown)
        chain = re.sub(r"\{\{ \$\w+HSTS \}\}", "", chain)
        cells = [f"`{name}`", fields.get("priority", ""), rule.replace("|", "\\|"),
                 ", ".join(part.strip() for part in chain.split(",")), fields["service"]]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
