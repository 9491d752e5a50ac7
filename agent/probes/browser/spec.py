"""The options of a `browser` target: the page to open, scripted actions, the selector that proves the
page works, which failures of the page's own requests count, and the evidence kept when it fails."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml

from ...schema import (MISSING, Field, Reader, Section, choice, converted, integer, list_of, one_of, read_table,
                       string)
from ..addresses import check_url

FAIL_ON = ("resource_error", "script_error")
# Where Debian, Ubuntu (snap), Fedora and Google put their Chromium or Chrome.
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium",
                  "/snap/bin/chromium", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable")


@dataclass(frozen=True)
class Action:
    """One scripted action: fill a field, click, press a key, wait for a selector or a URL, go to a URL."""

    kind: str  # fill | click | press | wait_for_selector | wait_for_url | goto
    selector: str = ""
    value: str = ""  # the text to fill, the key to press, the URL (pattern) to wait for or go to

    def describe(self) -> str:
        target = self.selector or self.value
        return f"{self.kind} {target}" if self.kind != "fill" else f"fill {self.selector}"


@dataclass(frozen=True)
class Artifacts:
    """Screenshots and HAR files kept for failed checks: at most `per_hour` failures a target, each file at
    most `max_bytes` (a larger HAR is dropped; the screenshot is kept)."""

    per_hour: int = 4
    max_bytes: int = 2 * 1024 * 1024


@dataclass(frozen=True)
class BrowserOptions:
    TYPE: ClassVar[str] = "browser"

    url: str
    expect_selector: str = "body"
    actions: tuple[Action, ...] = ()
    fail_on: tuple[str, ...] = FAIL_ON
    viewport: tuple[int, int] = (1280, 800)
    executable_path: str = ""
    artifacts: Artifacts = field(default_factory=Artifacts)

    @property
    def address(self) -> str:
        return self.url


def find_chromium() -> str | None:
    return next((p for p in CHROMIUM_PATHS if os.access(p, os.X_OK)), None) or shutil.which("chromium")


# -- config ----------------------------------------------------------------------------------------
def _url(r: Reader, node: yaml.Node, path: str) -> Any:
    url = r.string(node, path, env=True)
    if url is MISSING:
        return MISSING
    problem = check_url(url)
    return r.reject(node, path, problem) if problem else url


def _fill(r: Reader, node: yaml.Node, path: str) -> Any:
    m = r.mapping(node, path, {"selector", "value"})
    if isinstance(node, yaml.MappingNode) and not {"selector", "value"} <= m.keys():
        return r.reject(node, path, "needs `selector` and `value` (use ${ENV} for a password)")
    selector = r.string(m["selector"], f"{path}.selector") if "selector" in m else MISSING
    value = r.string(m["value"], f"{path}.value", allow_empty=True, env=True) if "value" in m else MISSING
    return MISSING if MISSING in (selector, value) else Action("fill", selector, value)


def _press(r: Reader, node: yaml.Node, path: str) -> Any:
    m = r.mapping(node, path, {"selector", "key"})
    if isinstance(node, yaml.MappingNode) and not {"selector", "key"} <= m.keys():
        return r.reject(node, path, "needs `selector` and `key` (such as Enter)")
    selector = r.string(m["selector"], f"{path}.selector") if "selector" in m else MISSING
    key = r.string(m["key"], f"{path}.key") if "key" in m else MISSING
    return MISSING if MISSING in (selector, key) else Action("press", selector, key)


def _action(kind: str) -> Any:
    return converted(string(), lambda v: Action(kind, v) if kind in ("click", "wait_for_selector") else
                     Action(kind, value=v))


_ACTIONS = one_of({"fill": _fill, "click": _action("click"), "press": _press,
                   "wait_for_selector": _action("wait_for_selector"), "wait_for_url": _action("wait_for_url"),
                   "goto": converted(_url, lambda v: Action("goto", value=v))})


def _viewport(r: Reader, node: yaml.Node, path: str) -> Any:
    m = r.mapping(node, path, {"width", "height"})
    w = r.integer(m["width"], f"{path}.width", 200, 8000) if "width" in m else 1280
    h = r.integer(m["height"], f"{path}.height", 200, 8000) if "height" in m else 800
    return MISSING if MISSING in (w, h) else (w, h)


def _executable(r: Reader, node: yaml.Node, path: str) -> Any:
    name = r.string(node, path)
    if name is MISSING or r.offline:
        return name
    p = str(r.path_of(name))
    if not os.access(p, os.X_OK):
        r.need(node, path, f"{p} is not an executable file")
    return p


ARTIFACT_FIELDS = (Field("per_hour", integer(0, 3600)), Field("max_bytes", integer(1024, 64 << 20)))


def _artifacts(r: Reader, node: yaml.Node, path: str) -> Any:
    s = read_table(r, node, path, ARTIFACT_FIELDS)
    return Artifacts(**s.values) if s.ok else MISSING


FIELDS = (
    Field("url", _url, required=True),
    Field("expect_selector", string()),
    Field("actions", list_of(lambda r, n, p: _unpack(_ACTIONS(r, n, p)))),
    Field("fail_on", list_of(choice(*FAIL_ON))),
    Field("viewport", _viewport),
    Field("executable_path", _executable),
    Field("artifacts", _artifacts),
)


def _unpack(value: Any) -> Any:
    return value if value is MISSING else value[1]


def build(r: Reader, s: Section, path: str) -> BrowserOptions | None:
    if not s.ok or "url" not in s.values:
        return None
    kw = dict(s.values)
    if "executable_path" not in kw and not r.offline:
        found = find_chromium()
        if found is None:
            r.need(s.node, f"{path}.executable_path", f"no Chromium found (looked at {', '.join(CHROMIUM_PATHS)}): "
                                                      "install the chromium package, or give its path here")
        kw["executable_path"] = found or ""  # read to report only: no browser is started
    return BrowserOptions(**kw)
