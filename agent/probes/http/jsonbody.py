"""A vendor's JSON: the one decoder of the bodies a probe reads as JSON (a token response, a `json:` check,
an `extract`). A body that cannot be read is the vendor's answer, never a failure of the agent."""
from __future__ import annotations

import json
from typing import Any


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
