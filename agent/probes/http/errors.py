"""Maps aiohttp's and the OS's error tree to one error_kind (httpx's habit: a typed tree, one mapping)."""
from __future__ import annotations

import errno
import ssl

import aiohttp


def classify(exc: BaseException) -> tuple[str, str]:
    """Maps the aiohttp/OS error tree to one error_kind."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns", text
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError)):
        return "tls", text
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too_many_redirects", text
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, aiohttp.RedirectClientError)):
        return "protocol", text
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_err = exc.os_error
        code = getattr(os_err, "errno", None)
        if code == errno.ECONNREFUSED:
            return "connect_refused", text
        if code in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.EADDRNOTAVAIL):
            return "agent_error", text
        if isinstance(os_err, (ssl.SSLError, ssl.CertificateError)):
            return "tls", text
        if isinstance(os_err, ConnectionResetError) or code == errno.ECONNRESET:
            return ("tls" if "ssl" in text.lower() else "reset"), text
        return "connect_error", text
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "reset", text
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "reset", text
    if isinstance(exc, aiohttp.ClientResponseError):
        return "protocol", text
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "reset", text
    if isinstance(exc, aiohttp.ClientOSError):
        if exc.errno in (errno.ECONNRESET, errno.EPIPE):
            return "reset", text
        return "connect_error", text
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "reset", text
    return "agent_error", text
