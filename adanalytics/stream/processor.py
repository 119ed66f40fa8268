"""The stateful processor of the job: :func:`adanalytics.stream.kernel.step` per group.

Imports pyspark at module level (the job imports this module only when it builds a
query). The processor is pickled with the query plan and shipped to every Python worker,
dimensions included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
from pyspark.sql.streaming import StatefulProcessor
from pyspark.sql.types import BinaryType, StructField, StructType

from adanalytics.stream.kernel import DEAD_KEY, Dimensions, GroupState, dead_rows, step

#: The value state of a group: its users and suggestions tables as Arrow IPC.
STATE_SCHEMA = StructType([StructField("users", BinaryType()),
                           StructField("suggestions", BinaryType())])


class RecommendProcessor(StatefulProcessor):
    """Per group: read the state, run the rule on the new positions, write the state.

    Parameters
    ----------
    dims:
        Establishments, ranked ads, time zone and rule parameters.
    ttl_ms:
        Time to live of a group's state (processing time; every update renews it). Users
        idle that long inside a live group are pruned by :func:`kernel.step` itself.
    """

    def __init__(self, dims: Dimensions, ttl_ms: int) -> None:
        self.dims = dims
        self.ttl_ms = int(ttl_ms)

    def init(self, handle: Any) -> None:
        self.state = handle.getValueState("recommender", STATE_SCHEMA, self.ttl_ms)

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: Any) -> Iterator[pd.DataFrame]:
        frames = list(rows)
        df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        if key[0] == DEAD_KEY:
            yield dead_rows(df)
            return
        value = self.state.get()
        res = step(df, GroupState.from_value(value), self.dims,
                   now_ms=int(timerValues.getCurrentProcessingTimeInMs()), ttl_ms=self.ttl_ms)
        if res.state.empty:
            if value is not None:
                self.state.clear()
        else:
            self.state.update(res.state.to_value())
        yield res.output

    def close(self) -> None:
        """Nothing to release."""
