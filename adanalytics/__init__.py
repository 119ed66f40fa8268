"""adanalytics: distributed ad analytics for location-based advertising.

>>> import adanalytics as aa
>>> ds = aa.open_dataset("data/sample", engine="dask")     # doctest: +SKIP
>>> aa.to_pandas(ds.ctr(by="month"))                        # doctest: +SKIP
"""

from __future__ import annotations

from adanalytics.dataset import ANALYSES, Dataset, open_dataset, to_pandas
from adanalytics.errors import (
    AdAnalyticsError,
    ClusterConnectionError,
    DataContractError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "ANALYSES",
    "AdAnalyticsError",
    "ClusterConnectionError",
    "DataContractError",
    "Dataset",
    "ValidationError",
    "__version__",
    "open_dataset",
    "to_pandas",
]
