"""Response checks as small named validators (cloudprober's Validator, gatus' conditions).

The status check comes first and decides alone (`http_status`); the body checks (`assertion`) run only on
an expected status and report every failure. The body is decoded once, and only when a check needs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ...schema import Regex
from .jsonbody import JsonPath, NotJson, decode_json

_UNREAD = object()


@dataclass(frozen=True)
class JsonAssertion:
    path: JsonPath
    equals: Any


class Answer:
    """A response as the checks see it: status, and the body decoded on first use."""

    __slots__ = ("status", "body", "_text", "_doc")

    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body
        self._text: str | None = None
        self._doc: Any = _UNREAD  # or the NotJson it raised: the body is decoded once either way

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.body.decode("utf-8", errors="replace")
        return self._text

    def json(self) -> Any:
        """The decoded body; raises NotJson."""
        if self._doc is _UNREAD:
            try:
                self._doc = decode_json(self.text)
            except NotJson as exc:
                self._doc = exc
        if isinstance(self._doc, NotJson):
            raise NotJson(str(self._doc))
        return self._doc


class Check(Protocol):
    kind: str  # the error_kind of a failure

    def failure(self, answer: Answer) -> str | None: ...


@dataclass(frozen=True)
class StatusIn:
    codes: tuple[int, ...]  # empty: any 2xx
    kind = "http_status"

    def failure(self, answer: Answer) -> str | None:
        ok = answer.status in self.codes if self.codes else 200 <= answer.status < 300
        return None if ok else f"HTTP {answer.status} not in {list(self.codes) or '2xx'}"


@dataclass(frozen=True)
class BodyMatches:
    pattern: Regex
    kind = "assertion"

    def failure(self, answer: Answer) -> str | None:
        return None if self.pattern.search(answer.text) else f"body does not match /{self.pattern.pattern}/"


@dataclass(frozen=True)
class BodyDoesNotMatch:
    pattern: Regex
    kind = "assertion"

    def failure(self, answer: Answer) -> str | None:
        return f"body matches /{self.pattern.pattern}/" if self.pattern.search(answer.text) else None


@dataclass(frozen=True)
class JsonEquals:
    assertion: JsonAssertion
    kind = "assertion"

    def failure(self, answer: Answer) -> str | None:
        a = self.assertion
        try:
            value = a.path.lookup(answer.json())
        except LookupError:
            return f"json {a.path} is absent"
        return None if value == a.equals else f"json {a.path} is {value!r}, expected {a.equals!r}"


def response_checks(expect_status: tuple[int, ...], body_regex: tuple[Regex, ...],
                    body_not_regex: tuple[Regex, ...], assertions: tuple[JsonAssertion, ...]) -> tuple:
    return ((StatusIn(expect_status),) + tuple(BodyMatches(p) for p in body_regex) +
            tuple(BodyDoesNotMatch(p) for p in body_not_regex) + tuple(JsonEquals(a) for a in assertions))


def run_checks(checks: tuple[Check, ...], answer: Answer) -> tuple[str, str, tuple[str, ...]]:
    """(error_kind, error text, failed assertions); ("", "", ()) when every check passes. A wrong status
    decides alone; a body that is not JSON fails the JSON checks once."""
    failures: list[str] = []
    for check in checks:
        try:
            problem = check.failure(answer)
        except NotJson as exc:
            failures.append(str(exc))
            break
        if problem is not None:
            if check.kind == "http_status":
                return check.kind, problem, ()
            failures.append(problem)
    return ("assertion", "; ".join(failures), tuple(failures)) if failures else ("", "", ())
