"""RFC 3161 time-stamps of the chain's head: the request for a link, the check of an answer as it
arrives, and the offline check of a stored token against the authorities' certificates a user trusts.

What is stamped is the link's hash (its 32 bytes): the token's message imprint is their SHA-256. A
link's hash covers the link before it, so a token on a link proves that every earlier link, and every
row sealed in them, existed by the token's time. The ASN.1 and the CMS signature are rfc3161-client's
(it does no network I/O); nothing here touches the network or the event loop's time.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from rfc3161_client import (HashAlgorithm, PKIStatus, TimestampRequestBuilder, TimeStampResponse, VerifierBuilder,
                            decode_timestamp_response)

MAX_ANSWER_BYTES = 64 * 1024  # a token with its certificates is a few KiB
_DIGESTS = {"2.16.840.1.101.3.4.2.1": hashlib.sha256, "2.16.840.1.101.3.4.2.2": hashlib.sha384,
            "2.16.840.1.101.3.4.2.3": hashlib.sha512}


class BadToken(Exception):
    """An answer or a stored token that is no valid time-stamp of what it should stamp."""


@dataclass(frozen=True)
class Request:
    der: bytes
    nonce: int | None
    message: bytes  # the link's hash, its bytes


def request(link: str) -> Request:
    """A time-stamp request over the link's hash, with a nonce, asking for the TSA's certificate in the
    token (so that it is checked offline with the TSA's root alone)."""
    message = bytes.fromhex(link)
    req = TimestampRequestBuilder().data(message).hash_algorithm(HashAlgorithm.SHA256).nonce(nonce=True) \
        .cert_request(cert_request=True).build()
    return Request(req.as_bytes(), req.nonce, message)


def load_roots(path: str | Path) -> list[x509.Certificate]:
    """The certificates in a PEM file (the TSAs' roots, or their own certificates). Raises ValueError."""
    try:
        certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ValueError(f"{path} holds no PEM certificate") from None
    return certs


def decode(der: bytes) -> TimeStampResponse:
    """The response, its fields read once here: the parser reads some of them only when asked, and a
    crafted token must fail as a BadToken, not later as something else."""
    try:
        resp = decode_timestamp_response(der)
        info = resp.tst_info
        (info.gen_time, info.nonce, info.message_imprint.hash_algorithm.dotted_string, info.message_imprint.message,
         resp.status, resp.status_string)
        return resp
    except Exception as exc:  # noqa: BLE001 - the parser says ValueError, its Rust side may say more
        raise BadToken(f"not a time-stamp response: {str(exc)[:200]}") from None


def imprint_of(resp: TimeStampResponse, message: bytes) -> bool:
    """Is the token's message imprint the digest of `message` (in the token's own hash algorithm)?"""
    imprint = resp.tst_info.message_imprint
    digest = _DIGESTS.get(imprint.hash_algorithm.dotted_string)
    if digest is None:
        raise BadToken(f"hash algorithm {imprint.hash_algorithm.dotted_string} is not one this agent checks")
    return digest(message).digest() == imprint.message


def gen_time(resp: TimeStampResponse) -> float:
    t = resp.tst_info.gen_time
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()


def signed_by(resp: TimeStampResponse, roots: list[x509.Certificate]) -> None:
    """The token's signature, its signer's certificate (critical EKU timeStamping) and that certificate's
    chain up to one of `roots`, at the token's time. Raises BadToken."""
    try:
        VerifierBuilder(roots=list(roots)).build().verify(resp, resp.tst_info.message_imprint.message)
    except Exception as exc:  # noqa: BLE001 - VerificationError, ValueError, and whatever a crafted token raises
        raise BadToken(f"not signed by a time-stamping authority you trust: {str(exc)[:300]}") from None


def check_answer(der: bytes, req: Request, roots: list[x509.Certificate] | None) -> float:
    """An answer to `req` as it arrives: granted, our nonce, our link's imprint, and (with roots) signed
    by a TSA the config trusts. Returns the TSA's time; raises BadToken."""
    resp = decode(der)
    if resp.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        raise BadToken(f"refused by the authority (PKI status {resp.status}: {' '.join(resp.status_string)[:200]})")
    if req.nonce is not None and resp.tst_info.nonce != req.nonce:
        raise BadToken("the answer's nonce is not the request's (an answer to another request)")
    if not imprint_of(resp, req.message):
        raise BadToken("the answer stamps another message than the chain's head")
    if roots:
        signed_by(resp, roots)
    return gen_time(resp)
