"""The `browser` probe type: a real Chromium, driven by Playwright in a worker process, opens the page,
runs the scripted actions and waits for the selector that proves the page works. Phases ttfb,
dom_content_loaded, load, interaction; the largest contentful paint as a mark."""
from __future__ import annotations

from ..base import ProbeType, register
from .probe import PHASES, BrowserProbe
from .spec import FIELDS, Action, BrowserOptions, build

MIN_INTERVAL = 30.0  # a browser check costs a second or more of CPU: not more often than this


def applicable(o: BrowserOptions) -> tuple[str, ...]:
    return PHASES


BROWSER = register(ProbeType("browser", FIELDS, build, PHASES, applicable, BrowserProbe, min_interval=MIN_INTERVAL,
                             default_interval=60.0))

__all__ = ["BROWSER", "Action", "BrowserOptions", "BrowserProbe"]
