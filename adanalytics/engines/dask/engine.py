"""The Dask engine: every analysis of SPEC §3 on a Dask cluster."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from adanalytics.engines.dask import attribution as _attr
from adanalytics.engines.dask import cluster as _cluster
from adanalytics.engines.dask import ctr as _ctr
from adanalytics.engines.dask import hourly as _hourly
from adanalytics.engines.dask import load as _load
from adanalytics.engines.dask import profiles as _prof
from adanalytics.engines.dask import recommendations as _rec
from adanalytics.engines.dask import visits as _visits
from adanalytics.engines.dask.plan import (
    DaskTables,
    co_locate,
    lay_out_by_user,
    no_string_conversion,
    persist_partitions,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client
    from distributed.security import Security

    from adanalytics.engines.base import RecommendParams, Tables
    from adanalytics.schema import ValidationReport

log = logging.getLogger("adanalytics")


class DaskEngine:
    """Runs the pandas kernels per partition on a Dask cluster.

    Parameters
    ----------
    address:
        Scheduler to connect to (``tcp://host:8786``, ``tls://...``); default
        ``$DASK_SCHEDULER_ADDRESS``. Without either, the process-wide embedded cluster
        (a scheduler plus ``n_workers`` worker processes) is started or reused.
    n_workers, threads_per_worker, memory_limit, dashboard:
        Shape of the embedded cluster (ignored when connecting to ``address``).
        ``memory_limit`` is per worker (bytes or ``"8GiB"``); by default 70 % of the
        machine's memory split between the workers, which spill to disk beyond 60 %
        of it rather than die.
    security:
        TLS for ``tls://`` schedulers: a :class:`distributed.security.Security`, or a
        dict of its arguments (``tls_ca_file``, ``tls_client_cert``, ``tls_client_key``,
        ...). By default the ``distributed.comm.tls`` settings of the Dask configuration.
    timeout:
        Seconds to wait for the scheduler before raising
        :class:`~adanalytics.errors.ClusterConnectionError`.
    blocksize:
        Target size of the partitions read from files (Dask's default when None).
    npartitions:
        Partitions of in-memory tables (``from_frames``) and of the by-user shuffles
        (default: as many as the locations table; for ``persist()``, partitions of
        about ``plan.PERSIST_PARTITION_ROWS`` locations, a multiple of the workers'
        threads).
    shuffle_method:
        ``"p2p"``, ``"tasks"`` or None (Dask's choice: p2p on a cluster).
    split_every:
        Fan-in of the tree reductions.
    """

    name = "dask"

    def __init__(
        self,
        address: str | None = None,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        memory_limit: int | str | None = None,
        dashboard: bool | str = True,
        security: Security | dict[str, Any] | bool | None = None,
        timeout: float = _cluster.CONNECT_TIMEOUT_S,
        blocksize: str | int | None = None,
        npartitions: int | None = None,
        shuffle_method: str | None = None,
        split_every: int | None = None,
    ) -> None:
        self.address = _cluster.scheduler_address(address)
        if self.address is not None:
            self.client: Client = _cluster.connect(self.address, security=security,
                                                   timeout=timeout)
            self._owns_client = True
        else:
            self.client = _cluster.embedded_client(
                n_workers=n_workers, threads_per_worker=threads_per_worker,
                memory_limit=memory_limit, dashboard=dashboard,
            )
            self._owns_client = False
        self.blocksize = blocksize
        self.npartitions = npartitions
        self.shuffle_method = shuffle_method
        self.split_every = split_every
        self.rejected: dict[str, Any] = {}

    def __repr__(self) -> str:
        where = self.address or "embedded"
        return f"<DaskEngine {where} dashboard={self.dashboard_link}>"

    @property
    def dashboard_link(self) -> str | None:
        """The Bokeh dashboard of the scheduler."""
        try:
            return self.client.dashboard_link
        except Exception:  # a scheduler without dashboard
            return None

    # --- loading ----------------------------------------------------------------------
    def load(self, path: str, *, tz: str, on_invalid: str, rejected_path: str | None,
             storage_options: dict[str, Any] | None) -> tuple[Tables, ValidationReport]:
        if not self._owns_client:  # embedded workers: same machine, same credentials
            _cluster.share_environment(self.client)
        with no_string_conversion():
            tables, report, self.rejected = _load.load(
                self.client, path, on_invalid=on_invalid, rejected_path=rejected_path,
                storage_options=storage_options, blocksize=self.blocksize,
            )
        tables.client = self.client
        return tables, report

    def from_frames(self, data: dict[str, Any], *, on_invalid: str,
                    rejected_path: str | None = None) -> tuple[Tables, ValidationReport]:
        """Tables from in-memory data (dicts of columns or pandas DataFrames)."""
        with no_string_conversion():
            tables, report, self.rejected = _load.from_frames(
                data, on_invalid=on_invalid, rejected_path=rejected_path,
                npartitions=self.npartitions,
            )
        tables.client = self.client
        return tables, report

    def persist(self, tables: Tables) -> Tables:
        """Persist the validated tables in the workers' memory (with a progress bar).

        Locations and interactions are laid out by user on the way (one shuffle, paid
        once): the per-user analyses then run partition by partition, without shuffle.
        """
        import sys

        from distributed import progress, wait
        from distributed.utils import is_kernel

        t = self._tables(tables)
        if t.user_parts is None:
            n = self.npartitions or persist_partitions(
                t.rows.get("locations"), sum(self.client.nthreads().values()),
                t.locations.npartitions)
            with no_string_conversion():
                t = lay_out_by_user(t, npartitions=n, method=self.shuffle_method)
        names = ("campaigns", "ads", "establishments", "interactions", "locations")
        frames = self.client.persist([getattr(t, n) for n in names])
        try:
            if is_kernel() or sys.stdout.isatty():  # a widget / a terminal bar
                progress(frames)
            else:  # a log file: no bar redrawn ten times a second
                wait(frames)
        except ImportError:  # a notebook without ipywidgets
            wait(frames)
        if t.user_parts is not None:  # partition i of both tables on the same worker
            frames[3] = co_locate(self.client, frames[4], frames[3])
        return DaskTables(**dict(zip(names, frames, strict=True)), small=t.small, cache=t.cache,
                          rows=t.rows, client=self.client, user_parts=t.user_parts)

    # --- analyses -----------------------------------------------------------------------
    def ctr(self, t: Tables, *, by: str, tz: str) -> dd.DataFrame:
        with no_string_conversion():
            return _ctr.ctr(self._tables(t), by=by, tz=tz, split_every=self.split_every)

    def visits(self, t: Tables, *, by: str, tz: str, radius_m: float) -> dd.DataFrame:
        with no_string_conversion():
            return _visits.visits(self._tables(t), by=by, tz=tz, radius_m=radius_m,
                                  split_every=self.split_every)

    def attribution(self, t: Tables, *, by: str, tz: str, window: pd.Timedelta,
                    radius_m: float) -> dd.DataFrame:
        with no_string_conversion():
            return _attr.attribution(self._tables(t), by=by, tz=tz, window=window,
                                     radius_m=radius_m, **self._shuffle_options())

    def category_hourly(self, t: Tables, *, by: str, tz: str) -> dd.DataFrame:
        with no_string_conversion():
            return _hourly.category_hourly(self._tables(t), by=by, tz=tz,
                                           split_every=self.split_every)

    def interaction_profile(self, t: Tables, *, tz: str) -> dd.DataFrame:
        with no_string_conversion():
            return _prof.interaction_profile(self._tables(t), tz=tz, **self._finish_options())

    def preferred_ad_category(self, t: Tables, *, tz: str) -> dd.DataFrame:
        with no_string_conversion():
            return _prof.preferred_ad_category(self._tables(t), tz=tz, **self._finish_options())

    def visit_profile(self, t: Tables, *, tz: str, radius_m: float) -> dd.DataFrame:
        with no_string_conversion():
            return _prof.visit_profile(self._tables(t), tz=tz, radius_m=radius_m,
                                       **self._finish_options())

    def preferred_establishment_category(self, t: Tables, *, tz: str,
                                         radius_m: float) -> dd.DataFrame:
        with no_string_conversion():
            return _prof.preferred_establishment_category(
                self._tables(t), tz=tz, radius_m=radius_m, **self._finish_options())

    def recommendations(self, t: Tables, *, tz: str, params: RecommendParams) -> dd.DataFrame:
        with no_string_conversion():
            return _rec.recommendations(self._tables(t), tz=tz, params=params,
                                        **self._shuffle_options())

    def to_pandas(self, frame: Any) -> pd.DataFrame:
        """Compute a result on this engine's cluster."""
        return self.client.compute(frame, sync=True)

    def close(self) -> None:
        """Close a connection to an external scheduler (the embedded cluster is shared
        by the whole process and stops at exit)."""
        if self._owns_client:
            self.client.close()

    # --- helpers ------------------------------------------------------------------------
    def _finish_options(self) -> dict[str, Any]:
        return {"shuffle_method": self.shuffle_method, "split_every": self.split_every}

    def _shuffle_options(self) -> dict[str, Any]:
        return {"npartitions": self.npartitions, "shuffle_method": self.shuffle_method,
                "split_every": self.split_every}

    def _tables(self, t: Tables) -> DaskTables:
        if isinstance(t, DaskTables):
            return t
        # Tables built elsewhere (e.g. by hand from Dask frames): collect the small ones.
        small = {n: self.client.compute(getattr(t, n), sync=True)
                 for n in ("campaigns", "ads", "establishments")}
        return DaskTables(t.campaigns, t.ads, t.establishments, t.interactions, t.locations,
                          small=small, client=self.client)
