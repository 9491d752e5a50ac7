"""Config errors leave the agent (a terminal, a log on reload) and quote the values they refuse: every one
passes through here first, so that neither an environment variable's value nor a URL's password shows."""
from __future__ import annotations

import json
import re
from typing import Iterable

from ..redact import MASK, Redactor
from ..schema import ENV_REF, ConfigError, ConfigIssue

# user:password@ before a host even without a scheme (`user:pw@host/`, which a URL check refuses and quotes);
# the Redactor only knows userinfo after "://"
_BARE_USERINFO = re.compile(r"[^\s/@:'\"<>\[\]]+:[^\s/@]*@(?=[\w\[])")  # then a host name or [IPv6]
MIN_SECRET = 3  # shorter values would mask ordinary words and numbers all over the message


def secrets_of(text: str, environ: dict[str, str], known: Iterable[str]) -> set[str]:
    """What the config knows to be secret, and the value of every ${NAME} the text names, read or not."""
    return set(known) | {environ[n] for n in set(ENV_REF.findall(text)) if environ.get(n)}


def redacted(exc: ConfigError, secrets: Iterable[str] = ()) -> ConfigError:
    """The same issues, sorted by line, without the secrets. A value is also masked as repr() and JSON
    quote it, escapes and all, since messages show refused values that way."""
    forms: set[str] = set()
    for s in secrets:
        if len(s) >= MIN_SECRET:
            forms.update((s, repr(s)[1:-1], json.dumps(s)[1:-1]))
    redact = Redactor(forms)

    def clean(text: str) -> str:
        return _BARE_USERINFO.sub(MASK + "@", redact(text))

    return ConfigError([ConfigIssue(i.file, i.line, clean(i.path), clean(i.message))
                        for i in sorted(exc.issues, key=lambda i: i.line)])
