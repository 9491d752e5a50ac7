"""The ledger: per target, exact counts per minute and t-digests per hour and day (series.py), the
single source of truth for the SLA; digest.py merges and reads the sketches."""
from .digest import CENTROIDS, QUANTILES, cdf_points, merge_chunked, merged_quantiles, merged_summary
from .series import (BELOW0_I, DAY, DOWN_I, DTYPE, HOUR, INC_I, LAT_I, UP_I, Ledger, TargetSeries, minute_errors,
                     nfields)

__all__ = ["BELOW0_I", "CENTROIDS", "DAY", "DOWN_I", "DTYPE", "HOUR", "INC_I", "LAT_I", "QUANTILES", "UP_I", "Ledger",
           "TargetSeries", "cdf_points", "merge_chunked", "merged_quantiles", "merged_summary", "minute_errors",
           "nfields"]
