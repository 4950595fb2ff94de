"""MkDocs hooks: the settings and CLI reference pages are generated from the code at build time.

A page holding ``<!-- settings-reference -->`` gets one table per section of
``ptychopinn.config.Settings`` (walked through ``model_fields``, so a new, renamed or removed
setting shows up without editing the page); a page holding ``<!-- cli-reference -->`` gets the
``--help`` of ``ptychopinn`` and of every sub-command of ``ptychopinn.cli.build_parser()``.
"""

from __future__ import annotations

import argparse
import json
import os
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel

SETTINGS_MARKER = "<!-- settings-reference -->"
CLI_MARKER = "<!-- cli-reference -->"
HELP_COLUMNS = "100"  # argparse wraps to the terminal width: fixed, so the page is the same everywhere


@dataclass(frozen=True)
class SettingRow:
    path: str
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class SettingsSection:
    path: str  # dotted path of the section ("" for the top level)
    doc: str
    rows: list[SettingRow]


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_markdown())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_markdown())
    return markdown


# ------------------------------------------------------------------------------------------------
# settings
# ------------------------------------------------------------------------------------------------


def settings_sections(model: type[BaseModel], path: str = "") -> list[SettingsSection]:
    """One section per pydantic model in the tree, depth first; a field whose type is itself a
    model opens a section of its own instead of a row."""
    rows: list[SettingRow] = []
    nested: list[SettingsSection] = []
    for name, field in model.model_fields.items():
        dotted = f"{path}.{name}" if path else name
        submodel = _submodel(field.annotation)
        if submodel is not None:
            nested.extend(settings_sections(submodel, dotted))
            continue
        rows.append(SettingRow(
            path=dotted,
            type=_type_name(field.annotation) + _constraints(field.metadata),
            default=_default_text(field),
            description=" ".join((field.description or "").split()),
        ))
    doc = " ".join((model.__dict__.get("__doc__") or "").split())
    return [SettingsSection(path, doc, rows), *nested]


def settings_paths(model: type[BaseModel]) -> list[str]:
    return [row.path for section in settings_sections(model) for row in section.rows]


def settings_markdown() -> str:
    from ptychopinn.config import Settings

    blocks = []
    for section in settings_sections(Settings):
        if not section.rows:
            continue
        title = f"`{section.path}`" if section.path else "Top level"
        lines = [f"## {title}", ""]
        if section.doc:
            lines += [section.doc, ""]
        lines += ["| setting | type | default | description |", "|---|---|---|---|"]
        lines += [
            f"| `{row.path}` | {_cell(row.type)} | `{_cell(row.default)}` | {_cell(row.description)} |"
            for row in section.rows
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _submodel(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *typing.get_args(annotation)] if _is_union(annotation) else [annotation]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if _is_union(annotation):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(value) for value in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(member.value for member in annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and len(args) == 2:
        keys = args[0]
        key_text = ", ".join(m.value for m in keys) if isinstance(keys, type) and issubclass(keys, Enum) \
            else _type_name(keys)
        return f"mapping ({key_text}) → {_type_name(args[1])}"
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(metadata: list[Any]) -> str:
    bounds = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    found = [f"{symbol} {getattr(item, key)}" for item in metadata
             for key, symbol in bounds.items() if getattr(item, key, None) is not None]
    return f" ({', '.join(found)})" if found else ""


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    return json.dumps(_plain(field.get_default(call_default_factory=True)), ensure_ascii=False)


def _plain(value: Any) -> Any:
    """The value as a config file spells it (enums by value, models as mappings)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every sub-command's parser, in the order of ``--help`` (argparse has no public accessor:
    the sub-parsers hang off the action that ``add_subparsers`` created)."""
    commands: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        choices = action.choices if isinstance(action, argparse._SubParsersAction) else None
        for name, subparser in (choices or {}).items():
            if subparser not in commands.values():  # aliases share their command's parser
                commands[name] = subparser
    return commands


@contextmanager
def fixed_help_width() -> Iterator[None]:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def cli_markdown() -> str:
    from ptychopinn.cli import build_parser

    parser = build_parser()
    with fixed_help_width():
        blocks = ["## `ptychopinn`", "", "```text", parser.format_help().rstrip(), "```"]
        for name, subparser in subcommand_parsers(parser).items():
            blocks += ["", f"## `ptychopinn {name}`", "", "```text", subparser.format_help().rstrip(), "```"]
    return "\n".join(blocks)
