"""Renderings of the report document, one module per format; FORMATS is what `--format` offers. A period's
report (several months) has its own layout of each format in period.py."""
from __future__ import annotations

import json
from typing import Any, Callable

from . import csv, html, markdown, period, text


def _json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {
    "text": text.render, "json": _json, "markdown": markdown.render, "html": html.render, "csv": csv.render}


def render(doc: dict[str, Any], fmt: str) -> str:
    if "period" in doc and fmt in period.RENDERERS:
        return period.RENDERERS[fmt](doc)
    return FORMATS[fmt](doc)
