"""Command-line flags parsed the way Docker's ``mflag`` (upstream ``pkg/mflag``) does.

The rules, which scripts written against the Go binary depend on:

* ``-x``, ``--name``; a value as ``--name value``, ``--name=value``, ``-x value`` or ``-x=value``
  (a value given with ``=`` loses one pair of surrounding quotes);
* boolean flags never take the next argument but accept ``--flag=false``;
* unknown single-dash words are retried letter by letter, so ``-jq`` is ``-j -q``;
* parsing stops at the first non-flag argument (``-`` counts as one) and after ``--``;
* a string flag given twice keeps the last value; a list flag accumulates.

Nothing here prints: errors are raised and the caller decides where the text goes and which
exit code follows, since that differs before and after the command name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, NamedTuple

FlagKind = Literal["bool", "string", "list"]
FlagValue = bool | str | list[str]

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class FlagError(Exception):
    """A parse error; ``str()`` is mflag's message, e.g. ``flag provided but not defined: -x``."""


class HelpRequested(Exception):
    """``-h``/``--help`` was given where no such flag is defined."""


class Flag(NamedTuple):
    """One flag definition.

    ``names`` are spelled as in mflag: ``"-json"`` is ``--json``, ``"j"`` is ``-j``; a leading
    ``#`` hides a name from the usage table.  ``dest`` is the key the value is stored under.
    """

    names: tuple[str, ...]
    dest: str
    kind: FlagKind
    usage: str
    default: bool | str = ""

    def initial(self) -> FlagValue:
        if self.kind == "bool":
            return bool(self.default)
        if self.kind == "list":
            return []
        return str(self.default)


def bool_flag(names: tuple[str, ...], dest: str, usage: str, default: bool = False) -> Flag:
    return Flag(names, dest, "bool", usage, default)


def string_flag(names: tuple[str, ...], dest: str, usage: str, default: str = "") -> Flag:
    return Flag(names, dest, "string", usage, default)


def list_flag(names: tuple[str, ...], dest: str, usage: str) -> Flag:
    return Flag(names, dest, "list", usage)


def go_quote(text: str) -> str:
    """Quote *text* like Go's ``%q`` for the characters that occur on command lines."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) > 0xFF else f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def format_value(value: FlagValue) -> str:
    """Render a value as mflag's ``Value.String()`` does (lists as Go's ``%v``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(value) + "]"
    return value


def _trim_quotes(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


class FlagSet:
    """A set of flags writing into a shared ``values`` mapping.

    The global flags and the command's flags are two FlagSets over the same mapping, so a
    global option repeated after the command overrides the earlier one.
    """

    def __init__(self, name: str, flags: Sequence[Flag], values: dict[str, FlagValue]) -> None:
        self.name = name
        self.flags = tuple(flags)
        self.values = values
        self.args: list[str] = []
        self._formal: dict[str, Flag] = {}
        for flag in self.flags:
            values.setdefault(flag.dest, flag.initial())
            for raw in flag.names:
                key = raw.lstrip("#")
                if key in self._formal:
                    raise ValueError(f"{name} flag redefined: {key}")
                self._formal[key] = flag
        # Defaults shown by --help are the values at definition time, as in mflag.
        self._defaults = {flag.dest: _copy(values[flag.dest]) for flag in self.flags}

    def parse(self, arguments: Sequence[str]) -> list[str]:
        """Parse *arguments*; return (and keep in ``self.args``) the remaining positionals."""
        self.args = list(arguments)
        while True:
            seen, retry = self._parse_one()
            if seen:
                continue
            if not retry:
                break
            if len(retry) == 1:
                raise FlagError(f"flag provided but not defined: -{retry}")
            # An unknown word like "-jq": try each letter as its own flag.
            for letter in retry:
                self.args.insert(0, "-" + letter)
                try:
                    seen_letter, _ = self._parse_one()
                except (FlagError, HelpRequested):
                    seen_letter = False
                if not seen_letter:
                    raise FlagError(f"flag provided but not defined: -{retry}")
        return self.args

    def _parse_one(self) -> tuple[bool, str]:
        """Consume one flag.  Returns (seen, name to retry letter by letter)."""
        if not self.args:
            return False, ""
        word = self.args[0]
        if len(word) < 2 or word[0] != "-":
            return False, ""
        if word == "--":
            del self.args[0]
            return False, ""
        name = word[1:]
        if name[0] == "=":
            raise FlagError(f"bad flag syntax: {word}")
        del self.args[0]
        has_value = False
        value = ""
        if "=" in name:
            name, _, raw = name.partition("=")
            value = _trim_quotes(raw)
            has_value = True
        flag = self._formal.get(name)
        if flag is None:
            if name in ("-help", "help", "h"):
                raise HelpRequested
            if name.startswith("-"):
                raise FlagError(f"flag provided but not defined: -{name}")
            return False, name
        if flag.kind == "bool":
            if not has_value:
                self.values[flag.dest] = True
            elif value in _TRUE:
                self.values[flag.dest] = True
            elif value in _FALSE:
                self.values[flag.dest] = False
            else:
                raise FlagError(
                    f"invalid boolean value {go_quote(value)} for  -{name}: "
                    f"strconv.ParseBool: parsing {go_quote(value)}: invalid syntax"
                )
            return True, ""
        if not has_value and self.args:
            value = self.args.pop(0)
            has_value = True
        if not has_value:
            raise FlagError(f"flag needs an argument: -{name}")
        if flag.kind == "list":
            current = self.values[flag.dest]
            assert isinstance(current, list)
            current.append(value)
        else:
            self.values[flag.dest] = value
        return True, ""

    def defaults_text(self, overrides: dict[str, FlagValue] | None = None) -> str:
        """The option table mflag's ``PrintDefaults`` writes (a tabwriter with min width 20).

        *overrides* replaces the shown default of some flags (the CLI shows the effective store
        configuration when no store option was given).
        """
        home = os.environ.get("HOME", "")
        if home == "/":
            home = ""
        rows: list[tuple[str, str]] = []
        for flag in sorted(self.flags, key=_sort_key):
            names = [n for n in flag.names if not n.startswith("#")]
            if not names or not flag.usage:
                continue
            shown = self._defaults[flag.dest]
            if overrides and flag.dest in overrides:
                shown = overrides[flag.dest]
            text = format_value(shown)
            if home and text.startswith(home):
                text = "~" + text[len(home):]
            cell = "  -" + ", -".join(names)
            if text not in ("", "false", "0"):
                cell += "=" + text
            for i, line in enumerate(flag.usage.split("\n")):
                rows.append((cell if i == 0 else "", " " + line))
        if not rows:
            return ""
        width = max(20, max(len(cell) for cell, _ in rows) + 3)
        return "\n" + "".join(cell.ljust(width) + rest + "\n" for cell, rest in rows)


def _copy(value: FlagValue) -> FlagValue:
    return list(value) if isinstance(value, list) else value


def _sort_key(flag: Flag) -> tuple[str, str]:
    first = flag.names[0].lstrip("#")
    first = first[1:] if first.startswith("-") else first
    return first.lower(), first
