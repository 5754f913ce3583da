"""Dataclass configs as command lines: every field a flag, every attribute docstring its help.

``parse_dataclass(TrainConfig, argv)`` builds an ``argparse`` parser from the (nested) dataclass:
``--seed 3``, ``--rollout.group-size 8``, booleans as ``--flag`` / ``--no-flag``, ``Literal`` fields
as choices, ``dict`` fields as repeated ``key=value`` pairs whose values are read as JSON when they
parse (``--env.kwargs coords=norm1000 max_turns=4``). The help text of a field is the string literal
written under it in the class body (cleanrl / tyro style), so the config is documented once.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from functools import cache
from typing import Any, Literal, get_args, get_origin

from mapo_env.errors import ConfigError


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass: the string literal right after each annotated field."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _add_fields(parser: argparse.ArgumentParser, cls: type, prefix: str, group_title: str | None) -> None:
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    group = parser.add_argument_group(group_title) if group_title else parser
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        flag = "--" + prefix + f.name.replace("_", "-")
        dest = (prefix + f.name).replace(".", "__")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(tp):
            doc = (inspect.getdoc(tp) or "").split("\n")[0]
            _add_fields(parser, tp, prefix + f.name + ".", f"{prefix}{f.name}: {doc}")
            continue
        help_text = docs.get(f.name, "")
        shown = "None" if default is None else repr(default) if not isinstance(default, dict) else json.dumps(default)
        help_text = f"{help_text} (default: {shown})".replace("%", "%%")
        if tp is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif get_origin(tp) is Literal:
            choices = list(get_args(tp))
            group.add_argument(flag, dest=dest, choices=choices, type=type(choices[0]), default=None, help=help_text)
        elif get_origin(tp) is dict or tp is dict:
            group.add_argument(flag, dest=dest, nargs="*", metavar="KEY=VALUE", default=None, help=help_text)
        elif get_origin(tp) is tuple:
            inner = get_args(tp)
            metavar = tuple(inner[0].__name__.upper() for _ in inner)
            group.add_argument(
                flag, dest=dest, nargs=len(inner), type=inner[0], metavar=metavar, default=None, help=help_text
            )
        elif get_origin(tp) is list:
            group.add_argument(flag, dest=dest, nargs="*", type=get_args(tp)[0], default=None, help=help_text)
        else:
            converter = tp if tp in (int, float, str) else str
            if optional:
                base = converter
                converter = lambda s, base=base: None if s.lower() == "none" else base(s)  # noqa: E731
            group.add_argument(
                flag, dest=dest, type=converter, default=None, metavar=tp.__name__.upper(), help=help_text
            )


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr (exit code 2), not the whole usage.

    The usage of a parser with one flag per config field runs to dozens of lines; the error would be
    lost under it. ``--help`` still prints the full manual.
    """

    def error(self, message: str) -> typing.NoReturn:
        """Print ``<prog>: error: <message> (see <prog> --help)`` on one line and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(message: object) -> str:
    """``message`` as a single line: newlines and runs of whitespace become one space."""
    return " ".join(str(message).split())


def build_parser(cls: type, prog: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
    """An argparse parser with one flag per (nested) field of dataclass ``cls``."""
    parser = OneLineErrorParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _add_fields(parser, cls, "", None)
    return parser


def _build(cls: type, values: dict[str, Any], prefix: str, base: Any) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        current = getattr(base, f.name)
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, values, prefix + f.name + ".", current)
            continue
        given = values.get((prefix + f.name).replace(".", "__"))
        if given is None:
            kwargs[f.name] = current
        elif get_origin(tp) is dict or tp is dict:
            flag = "--" + prefix + f.name.replace("_", "-")
            pairs = {}
            for item in given:
                if "=" not in item:
                    raise ConfigError(f"{flag} expects KEY=VALUE pairs, got {item!r}")
                key, value = item.split("=", 1)
                if not key.isidentifier():
                    raise ConfigError(f"{flag}: {key!r} is not a keyword argument name (in {item!r})")
                pairs[key] = _parse_value(value)
            kwargs[f.name] = {**current, **pairs}
        elif get_origin(tp) is tuple:
            kwargs[f.name] = tuple(given)
        else:
            kwargs[f.name] = given
    return dataclasses.replace(base, **kwargs)


def parse_dataclass(
    cls: type, argv: list[str] | None, prog: str, description: str, epilog: str = "", base: Any = None
) -> Any:
    """Parse ``argv`` into an instance of ``cls``; unspecified fields keep ``base``'s (or the defaults)."""
    parser = build_parser(cls, prog, description, epilog)
    namespace = parser.parse_args(argv)
    return _build(cls, vars(namespace), "", base if base is not None else cls())
