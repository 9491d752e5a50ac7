"""The path to a failing target: traced when it fails (trace.py), kept in the journal (capture.py)."""
from .capture import PATH, PathCapture
from .trace import trace

__all__ = ["PATH", "PathCapture", "trace"]
