"""Redirects followed by hand, for the probe and the ticket feed. aiohttp would follow them itself, but on a
redirect to another origin it drops only the Authorization and Cookie headers: an API key in any other
header would reach whatever host the server names. Here the headers a caller marks private, and the
credentials of the URL, go to the first request's origin only; once a redirect has left it, they are
not sent again, even on a way back. Otherwise the redirects go as aiohttp takes them: the same count,
the same change of method, the same errors."""
from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Collection, Mapping

import aiohttp
from yarl import URL

REDIRECTS = frozenset((301, 302, 303, 307, 308))
ALWAYS_PRIVATE = frozenset(("authorization", "proxy-authorization", "cookie"))


class DowngradeRefused(aiohttp.RedirectClientError):
    """A redirect from https to plain http, for a caller that refuses them."""


@contextlib.asynccontextmanager
async def follow(session: aiohttp.ClientSession, method: str, url: URL, *, headers: Mapping[str, str],
                 private: Collection[str] = (), data: bytes | None = None, allow_redirects: bool = True,
                 max_redirects: int = 10, downgrade: bool = True, **kwargs: Any,
                 ) -> AsyncIterator[aiohttp.ClientResponse]:
    """The final response of `method url`. `private`: lower-case header names kept to the origin of `url`.
    `max_redirects` as aiohttp counts it: the redirect of that number is an error (0: no limit).
    `downgrade=False` refuses a redirect from https to http."""
    home, user, password = _origin(url), url.user, url.password
    away, redirects, history = False, 0, []
    while True:
        sent = headers if not away else {k: v for k, v in headers.items()
                                         if k.lower() not in private and k.lower() not in ALWAYS_PRIVATE}
        async with session.request(method, url, data=data, headers=sent, allow_redirects=False, **kwargs) as resp:
            location = None
            if allow_redirects and resp.status in REDIRECTS:
                redirects += 1
                history.append(resp)
                if max_redirects and redirects >= max_redirects:
                    raise aiohttp.TooManyRedirects(history[0].request_info, tuple(history))
                location = resp.headers.get("Location") or resp.headers.get("URI")
            if location is None:  # a redirect without a Location is the answer, as in aiohttp
                yield resp
                return
        nxt = _target(url, location)
        if url.scheme == "https" and nxt.scheme != "https" and not downgrade:
            raise DowngradeRefused(f"a redirect from https to {nxt.scheme}: not followed")
        if (resp.status == 303 and method != "HEAD") or (resp.status in (301, 302) and method == "POST"):
            method, data = "GET", None
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        away = away or _origin(nxt) != home
        if not away and user is not None and nxt.user is None:  # the URL's credentials, as aiohttp keeps them
            nxt = nxt.with_user(user).with_password(password)
        url = nxt


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    """An origin as RFC 6454 compares them: `http://host/` and `http://host:80/` are one (their URLs, and
    yarl's origin() of them, compare unequal)."""
    return url.scheme, url.host, url.port


def _target(url: URL, location: str) -> URL:
    """Where a Location leads from `url` (relative to it, or absolute), checked as aiohttp checks it."""
    try:
        nxt = url.join(URL(location))
        nxt.origin()
    except ValueError as exc:
        raise aiohttp.InvalidUrlRedirectClientError(location, "Server attempted redirecting to a location that "
                                                              "does not look like a URL") from exc
    if nxt.scheme not in ("http", "https"):
        raise aiohttp.NonHttpUrlRedirectClientError(location)
    return nxt
