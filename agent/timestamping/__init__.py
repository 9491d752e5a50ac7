"""Independent time: RFC 3161 time-stamps of the hash chain's head (tsp.py: requests and tokens;
stamper.py: sending them to the authorities; the tokens are stored and checked by store/timestamps.py)."""
from .stamper import Stamping, StampResult, TimeStamper

__all__ = ["StampResult", "Stamping", "TimeStamper"]
