"""The documentation stays true: settings, commands and endpoints are all documented."""

from __future__ import annotations

import re
from pathlib import Path

from cityverse.api import ngsi_ld, subscriptions, temporal
from cityverse.cli import _parser
from cityverse.settings import documented_settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
API = (ROOT / "docs" / "api.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [name for name in documented_settings() if f"`{name}`" not in README]
    assert not missing, f"settings missing from README.md: {missing}"


def test_every_cli_flag_is_in_the_readme() -> None:
    parser = _parser()
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():
            assert f"cityverse {name}" in README, f"command {name!r} not in README.md"
            for flag in sub._actions:
                for option in flag.option_strings:
                    if option.startswith("--") and option != "--help":
                        assert option in README, f"{name} {option} not in README.md"


def test_every_endpoint_is_in_the_api_doc() -> None:
    documented = set(
        re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/(?:ngsi-ld|cityverse)/v1/\S*)`", API)
    )
    for route in [*ngsi_ld.routes, *temporal.routes, *subscriptions.routes]:
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        path = path.replace("{entity_id:entity_id}", "{entityId}")
        path = path.replace("{entity_id}", "{entityId}").replace("{attr}", "{attrId}")
        path = path.replace("{context_id}", "{contextId}")
        path = path.replace("{instance_id}", "{instanceId}")
        path = path.replace("{subscription_id}", "{subscriptionId}")
        for method in route.methods or ():
            if method == "HEAD":
                continue
            assert (method, path) in documented, f"{method} {path} not in docs/api.md"


def test_readme_shows_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README
