"""A vendor's JSON: the one decoder of the bodies a probe reads as JSON (a token response, a `json:` check,
an `extract`), and the paths that point into them. A body that cannot be read is the vendor's answer,
never a failure of the agent."""
from __future__ import annotations

import json
import re
from typing import Any

import jsonpath
import yaml

from ...schema import MISSING, Reader

# RFC 9535 as written, without the library's own additions (keys, unions, the current key...)
_JSONPATH = jsonpath.JSONPathEnvironment(strict=True)
_DOTTED = re.compile(r"[A-Za-z0-9_$-]+(\[\d+\])*(\.[A-Za-z0-9_$-]+(\[\d+\])*)*")  # data.items[0].status
EXAMPLE = "must be a JSONPath such as $.items[0].id (or a dotted path such as items[0].id)"


class NotJson(Exception):
    """The body is no JSON the agent can read; the message says why, as a check failure reads."""


def decode_json(body: str | bytes) -> Any:
    """The decoded document; raises NotJson. Bytes are read as JSON text (UTF-8, or UTF-16/32 by its BOM)."""
    try:
        return json.loads(body)
    except RecursionError:
        # json's decoder recurses once per level: `[` x 5,000 goes past the interpreter's limit (about a
        # thousand levels). Whatever reads the decoded document later (a lookup, repr, json.dumps) runs no
        # deeper in the stack than this did, so a document that decoded here cannot overflow it there.
        raise NotJson("body is JSON nested too deeply to read") from None
    except ValueError:  # JSONDecodeError; UnicodeDecodeError of bytes that are no text
        raise NotJson("body is not JSON") from None


class JsonPath:
    """A path to one value of a JSON document: JSONPath (RFC 9535) such as `$.items[0].id`, or the dotted
    form `items[0].id` the agent read first (the same path: `$['items'][0]['id']`). A path that could
    select several values (`[*]`, `..`, a slice, a filter) is refused: a check compares one value."""

    __slots__ = ("text", "_query")

    def __init__(self, text: str) -> None:
        self.text = text
        standard = text if text == "$" or text.startswith(("$.", "$[")) else _from_dotted(text)
        try:
            self._query = _JSONPATH.compile(standard)
        except jsonpath.JSONPathError as exc:
            raise ValueError(f"{EXAMPLE}: {str(exc).splitlines()[0]}, got {text!r}") from None
        if not self._query.singular_query():
            raise ValueError(f"can select several values ([*], .., a slice or a filter); a check compares one: "
                             f"name each step, such as $.items[0].id, got {text!r}")

    def lookup(self, doc: Any) -> Any:
        """The value at the path; raises LookupError when the document has none there."""
        if not isinstance(doc, (dict, list)):  # the library would read a str as JSON text
            if self._query.segments:
                raise LookupError(self.text)
            return doc
        found = self._query.findall(doc)
        if not found:
            raise LookupError(self.text)
        return found[0]

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"JsonPath({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonPath) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _from_dotted(text: str) -> str:
    if not _DOTTED.fullmatch(text):
        raise ValueError(f"{EXAMPLE}, got {text!r}")
    standard = "$"
    for part in text.split("."):
        name, bracket, indices = part.partition("[")
        standard += f"['{name}']{bracket}{indices}"
    return standard


def read_json_path(r: Reader, node: yaml.Node, path: str) -> Any:
    """A JsonPath from the config, or MISSING with the reason located."""
    text = r.string(node, path)
    if text is MISSING:
        return MISSING
    try:
        return JsonPath(text)
    except ValueError as exc:
        return r.reject(node, path, str(exc))
