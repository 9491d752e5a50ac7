"""The regular expressions a config runs over a vendor's answer (`body_regex`, `body_not_regex`, an
extract's `regex`, a tcp target's `expect`, a dns target's `expect_answers`): Python's syntax, run by RE2.

Python's `re` backtracks: `^(a|aa)+$` over forty `a` and a `!` held the event loop every probe shares
for 19 s, and a match cannot be stopped once started (in a thread it would run on, holding the GIL).
RE2 takes time linear in the text, whatever the pattern. What it cannot do in linear time is refused by
name; where it reads Python's syntax another way, the pattern is translated to mean what it means in
Python. docs/checks.md ("Regular expressions") lists both.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

import re2

# Python's \d, \w and \s are Unicode classes; RE2's are ASCII. Python's \s is str.isspace().
_SPACE = r"\t-\r\x1c-\x20\x85\p{Z}"
_OUTSIDE = {"d": r"\p{Nd}", "D": r"\P{Nd}", "w": r"[\p{L}\p{N}_]", "W": r"[^\p{L}\p{N}_]",
            "s": f"[{_SPACE}]", "S": f"[^{_SPACE}]", "Z": r"\z", "A": r"\A", "b": r"\b", "B": r"\B"}
# Searching the text without its final newline (for Python's `$`, below), \Z cannot match: a newline follows.
_OUTSIDE_SHORT = {**_OUTSIDE, "Z": r"[^\x00-\x{10ffff}]"}
_INSIDE = {"d": r"\p{Nd}", "D": r"\P{Nd}", "w": r"\p{L}\p{N}_", "s": _SPACE, "b": r"\x08"}
_SAME = set("afnrtv")  # escapes both read alike
_REPEAT = re.compile(r"\{(\d*)(,?)(\d*)\}")
_FLAGS = re.compile(r"\(\?([aiLmsux]*)(?:-([imsx]+))?([:)])")
_NO_LINEAR = "which the agent does not run: its regular expressions take time linear in the text they search"
_GROUPS = (("(?=", "a lookahead (?=...)"), ("(?!", "a lookahead (?!...)"), ("(?<=", "a lookbehind (?<=...)"),
           ("(?<!", "a lookbehind (?<!...)"), ("(?>", "an atomic group (?>...)"),
           ("(?(", "a conditional group (?(1)...)"), ("(?P=", "a backreference (?P=name)"))


class Refused(ValueError):
    """A pattern Python accepts that the agent will not run; the message names the construct."""


class Regex:
    """A user's pattern: `pattern` as written, `search()` finding what Python's `re` would find."""

    __slots__ = ("pattern", "groups", "_re2", "_short")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.groups = re.compile(pattern).groups  # Python's own syntax check first: its messages, its errors
        translated, dollar = _translate(pattern, _OUTSIDE)
        self._re2 = _compiled(translated)
        self._short = _compiled(_translate(pattern, _OUTSIDE_SHORT)[0]) if dollar else None

    def search(self, text: str) -> Any:
        """The first match (`group()` as re's), or None."""
        m = self._re2.search(text)
        if self._short is not None and text.endswith("\n"):
            # Python's `$` also matches before a final newline, RE2's only at the end: the text without that
            # newline holds the other matches. Python's is the leftmost, at one start the longer (as a
            # greedy repetition takes it), and over one span the one whose `$` stood before the newline.
            short = self._short.search(text[:-1])
            if short is not None and (m is None or (short.start(), -short.end()) <= (m.start(), -m.end())):
                m = short
        return m

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


def _compiled(translated: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(translated, options)
    except re2.error as exc:
        why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise Refused(f"cannot be run by the agent's regular expression engine: {why}") from None


def _translate(p: str, outside: dict[str, str]) -> tuple[str, bool]:
    """RE2's text for a valid Python pattern, with `outside` for the escapes outside a class; whether it
    has a `$`."""
    out: list[str] = []
    i, dollar, quantified = 0, False, False
    while i < len(p):
        c, was_quantified, quantified = p[i], quantified, False
        if c == "\\":
            piece, i = _escape(p, i, outside)
        elif c == "[":
            piece, i = _class(p, i)
        elif p.startswith("(?", i):
            piece, i = _group(p, i)
        elif c in "*+?" or c == "{" and _repeat(p, i):
            if was_quantified and c == "+":
                raise Refused(f"uses a possessive quantifier (such as a*+ or a{{2}}+), {_NO_LINEAR}")
            piece, i = (_repeat(p, i), _REPEAT.match(p, i).end()) if c == "{" else (c, i + 1)  # type: ignore
            quantified = not (was_quantified and c == "?")  # a lazy `?` ends the quantifier
        else:
            piece, i = ("\\" + c if c in "{}" else c), i + 1
            dollar = dollar or c == "$"
        out.append(piece)
    return "".join(out), dollar


def _repeat(p: str, i: int) -> str:
    """RE2's text of a repetition at p[i] ("" if the brace is a literal, as Python reads `{}` or `{x`)."""
    m = _REPEAT.match(p, i)
    if m is None or not m.group(1) and not m.group(2):
        return ""
    return "{" + (m.group(1) or "0") + m.group(2) + m.group(3) + "}"  # Python's {,n} is {0,n}


def _escape(p: str, i: int, table: dict[str, str]) -> tuple[str, int]:
    """The escape at p[i] (a backslash) as RE2 reads it, in a class or out of one; the index after it."""
    c = p[i + 1]
    if c in table:
        return table[c], i + 2
    if c in "WS":  # inside [...]: a negated class within a class has no RE2 form
        raise Refused(f"uses \\{c} inside [...], which the agent does not run: write (?:\\{c}|[...]) instead")
    if c in _SAME:
        return "\\" + c, i + 2
    if c.isdigit():
        octal = re.match(r"0[0-7]{0,2}|[0-7]{3}", p[i + 1:i + 4])
        if octal is None and table is not _INSIDE:
            raise Refused(f"uses a backreference (\\{c}), {_NO_LINEAR}")
        digits = octal.group() if octal else re.match(r"[0-7]+", p[i + 1:i + 4]).group()  # type: ignore
        return _char(chr(int(digits, 8))), i + 1 + len(digits)
    if c in "xuU":
        size = {"x": 2, "u": 4, "U": 8}[c]
        return _char(chr(int(p[i + 2:i + 2 + size], 16))), i + 2 + size
    if c == "N":  # \N{EM DASH}
        end = p.index("}", i)
        return _char(unicodedata.lookup(p[i + 3:end])), end + 1
    return (("\\" + c) if c.isascii() else _char(c)), i + 2


def _char(c: str) -> str:
    return f"\\x{{{ord(c):x}}}"


def _class(p: str, i: int) -> tuple[str, int]:
    """The class [...] at p[i]; Python reads a `[` inside a class as itself ([[:alpha:]] is no POSIX class)."""
    out, j = ["["], i + 1
    if p[j] == "^":
        out.append("^")
        j += 1
    if p[j] == "]":  # first: a literal
        out.append(r"\]")
        j += 1
    while p[j] != "]":
        if p[j] == "\\":
            piece, j = _escape(p, j, _INSIDE)
        else:
            piece, j = (r"\[" if p[j] == "[" else p[j]), j + 1
        out.append(piece)
    return "".join(out) + "]", j + 1


def _group(p: str, i: int) -> tuple[str, int]:
    """A group opening with `(?` at p[i]: named and non-capturing groups and flags pass, comments go."""
    for prefix, name in _GROUPS:
        if p.startswith(prefix, i):
            raise Refused(f"uses {name}, {_NO_LINEAR}")
    if p.startswith("(?#", i):
        return "", p.index(")", i) + 1
    if p.startswith("(?P<", i):
        end = p.index(">", i)
        return p[i:end + 1], end + 1
    m = _FLAGS.match(p, i)
    assert m is not None  # noqa: S101 - Python compiled it: no other (? opening exists
    if set(m.group(0)) & set("axL"):
        raise Refused(f"uses the flag {m.group(0)}: only i, m, s (and u) are supported, without (?x) verbose mode")
    on, off = m.group(1).replace("u", ""), m.group(2) or ""
    if not on and not off:
        return ("(?:" if m.group(3) == ":" else ""), m.end()
    return f"(?{on}{'-' + off if off else ''}{m.group(3)}", m.end()
