"""The documentation site builds strictly, its generated pages cover the code, and every
specification anchor the code cites exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from ptychopinn.cli import build_parser
from ptychopinn.config import Settings

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "docs" / "design" / "spec.md"
CITATION = re.compile(r"docs/design/spec\.md#([a-z0-9-]+)")


def dotted_settings(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every leaf setting of ``model`` by dotted path (nested models are sections, not leaves)."""
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        path = prefix + name
        nested = [t for t in (field.annotation, *getattr(field.annotation, "__args__", ()))
                  if isinstance(t, type) and issubclass(t, BaseModel)]
        paths |= dotted_settings(nested[0], path + ".") if nested else {path}
    return paths


def command_names() -> set[str]:
    parser = build_parser()
    subparsers = [action for action in parser._actions if action.__class__.__name__ == "_SubParsersAction"]
    return {name for action in subparsers for name in action.choices}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(out)],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def page_text(site: Path, page: str) -> str:
    html = (site / page / "index.html").read_text(encoding="utf-8")
    return re.sub(r"<[^>]+>", "", html)


def test_settings_page_lists_every_setting(site):
    text = page_text(site, "reference/settings")
    missing = sorted(path for path in dotted_settings(Settings) if path not in text)
    assert not missing, f"settings missing from the generated page: {missing}"


def test_cli_page_names_every_command(site):
    text = page_text(site, "reference/cli")
    missing = sorted(name for name in command_names() if f"ptychopinn {name}" not in text)
    assert command_names() and not missing, f"commands missing from the generated page: {missing}"


def test_every_cited_spec_anchor_exists():
    anchors = set(re.findall(r"\{#([a-z0-9-]+)\}", SPEC.read_text(encoding="utf-8")))
    cited = {
        (path.relative_to(REPO).as_posix(), anchor)
        for path in (REPO / "src").rglob("*.py")
        for anchor in CITATION.findall(path.read_text(encoding="utf-8"))
    }
    assert cited, "no specification citations found in src/"
    dangling = sorted(f"{path}: #{anchor}" for path, anchor in cited if anchor not in anchors)
    assert not dangling, f"cited anchors missing from docs/design/spec.md: {dangling}"
