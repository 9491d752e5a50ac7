"""t-digest helpers: merging many sketches without holding the GIL long, quantiles and CDF points.
Quantiles are shown beside the verdicts, never deciding them."""
from __future__ import annotations

import time
import zlib
from typing import Iterable, Sequence, Union

from fastdigest import TDigest, merge_all

QUANTILES = (0.5, 0.9, 0.98, 0.99, 0.999)
# Centroids a new sketch keeps (fastdigest's default is 1000). The quantiles are only shown, so the size is
# set by the error docs/contract.md states ("Latency", tests/test_quantile_bound.py measures it) rather than
# by the most the library can give: a held hour or day takes a few times less memory and store.
CENTROIDS = 200
# A digest no more samples are expected in (a closed hour, a finished day) is held as its compressed bytes:
# a third of the live object's memory, and TDigest.from_bytes(to_bytes(d)) merges exactly as d does.
Held = Union[TDigest, bytes]


def new() -> TDigest:
    return TDigest(CENTROIDS)


def merge(digests: list[TDigest]) -> TDigest:
    """At the size of the largest: a digest an earlier version stored with 1000 centroids merges exactly as
    that version merged it, so a report or bundle of its months computes again to the same quantiles (their
    offline check compares them)."""
    return merge_all(digests, max_centroids=max(d.max_centroids for d in digests))


def freeze(d: TDigest) -> bytes:
    return zlib.compress(d.to_bytes(), 1)


def thaw(d: Held) -> TDigest:
    return TDigest.from_bytes(zlib.decompress(d)) if isinstance(d, bytes) else d


def blob(d: Held) -> bytes:
    """The digest's to_bytes(), as the store keeps it."""
    return zlib.decompress(d) if isinstance(d, bytes) else d.to_bytes()


def merge_chunked(digests: list[TDigest], chunk: int = 8) -> TDigest:
    """merge_all in small steps, letting other threads (the probe loop) run between them: one merge
    call holds the GIL for its whole length (about 0.2 us per input centroid)."""
    ds = [d for d in digests if d.n_values > 0]
    if not ds:
        return new()
    while len(ds) > 1:
        nxt = []
        for i in range(0, len(ds), chunk):
            nxt.append(merge(ds[i:i + chunk]) if len(ds[i:i + chunk]) > 1 else ds[i])
            time.sleep(0)  # release the GIL
        ds = nxt
    return ds[0]


def merged_summary(digests: Iterable[TDigest]) -> tuple[dict[str, float | None], int, float]:
    """Quantiles, count and sum of the merged sketch."""
    ds = [d for d in digests if d.n_values > 0]
    if not ds:
        return {f"{q:g}": None for q in QUANTILES}, 0, 0.0
    m = merge_chunked(ds) if len(ds) > 1 else ds[0]
    return {f"{q:g}": float(m.quantile(q)) for q in QUANTILES}, int(m.n_values), float(m.sum())


def merged_quantiles(digests: Iterable[TDigest]) -> dict[str, float | None]:
    return merged_summary(digests)[0]


def cdf_points(digests: Iterable[TDigest], points: Sequence[float]) -> list[list[float]]:
    """[[x, share of the population <= x], ...] of the merged sketch; empty without data."""
    ds = [d for d in digests if d.n_values > 0]
    if not ds:
        return []
    m = merge(ds) if len(ds) > 1 else ds[0]
    return [[x, round(float(m.cdf(x)), 6)] for x in points]
