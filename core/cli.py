"""Command-line flags generated from a settings model, so a flag, its environment
variable, its default and its help cannot disagree.

Every field of a pydantic-settings model becomes ``--field-name`` (the field's name
with dashes), its help the field's description followed by the real default and the
variable it overrides, ``choices`` for an enum or a Literal, a ``--flag/--no-flag``
pair for a boolean. A flag left out leaves its attribute out of the parsed namespace
(``argparse.SUPPRESS``), so :func:`settings_from_args` passes only the values the
user typed: the environment and the model's defaults fill in the rest, exactly as
without the command line.

Errors are one line (``error: argument --retrain-mode: invalid choice: ...``), exit
code 2, as every failure of a command of the stack (:mod:`core.commands`).
"""

from __future__ import annotations

import argparse
import enum
import sys
import types
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, NoReturn, TypeVar, Union, get_args, get_origin

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from core.commands import EXIT_USAGE

S = TypeVar("S", bound=BaseSettings)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the stack's one-line errors instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {' '.join(message.split())} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_variable(settings: type[BaseSettings], field: str) -> str:
    prefix = str(settings.model_config.get("env_prefix") or "")
    return (prefix + field).upper()


def add_settings_arguments(
    parser: argparse.ArgumentParser,
    settings: type[BaseSettings],
    *,
    only: Collection[str] | None = None,
    exclude: Collection[str] = (),
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Adds a flag per field of ``settings`` (or of the ``only`` ones) to ``parser``;
    ``aliases`` gives a field older, shorter flags too (``--registry`` for
    ``--registry-uri``). Returns the fields that got a flag.

    Secret fields never get one: a command line is visible to every user of the
    machine (``ps``), the environment is not."""
    added = []
    for name, info in settings.model_fields.items():
        if (only is not None and name not in only) or name in exclude:
            continue
        if _is_secret(info.annotation):
            continue
        options = [flag(name), *(aliases or {}).get(name, ())]
        parser.add_argument(
            *options,
            dest=name,
            default=argparse.SUPPRESS,
            help=_help(settings, name, info),
            **_kind(name, info.annotation),
        )
        added.append(name)
    return added


def settings_from_args(settings: type[S], args: argparse.Namespace, **fixed: Any) -> S:
    """The settings with the values given on the command line (and ``fixed``) over the
    environment and the defaults."""
    given = {name: getattr(args, name) for name in settings.model_fields if hasattr(args, name)}
    return settings(**{**given, **fixed})


def default_text(info: FieldInfo) -> str:
    """The default as a user would type it: ``unset`` for None."""
    default = info.get_default(call_default_factory=True)
    if default is None:
        return "unset"
    if isinstance(default, enum.Enum):
        return str(default.value)
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def _help(settings: type[BaseSettings], name: str, info: FieldInfo) -> str:
    description = (info.description or name.replace("_", " ")).rstrip()
    text = f"{description} (default: {default_text(info)}; env {env_variable(settings, name)})"
    return text.replace("%", "%%")  # argparse formats help with %


def _kind(name: str, annotation: Any) -> dict[str, Any]:
    """type/choices/action of a field's flag, from its annotation."""
    inner = _without_none(annotation)
    if inner is bool:
        return {"action": argparse.BooleanOptionalAction}
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        return {"choices": [member.value for member in inner], "metavar": _choices_metavar(inner)}
    if get_origin(inner) is Literal:
        return {"choices": list(get_args(inner)), "metavar": _choices_metavar(get_args(inner))}
    if inner in (int, float):
        return {"type": inner}
    if inner is str:
        return {}
    if inner is datetime:
        return {"type": _datetime, "metavar": "ISO8601"}
    raise TypeError(f"no command-line flag for setting {name} of type {annotation!r}")


def _choices_metavar(values: Any) -> str:
    return "{" + ",".join(str(getattr(v, "value", v)) for v in values) + "}"


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _is_secret(annotation: Any) -> bool:
    return _without_none(annotation) is SecretStr


def _datetime(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {value!r}") from error
