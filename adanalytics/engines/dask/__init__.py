"""The Dask engine: the pandas reference kernels run per partition on a Dask cluster.

Module names mirror :mod:`adanalytics.engines.pandas` (``ctr``, ``visits``,
``attribution``, ``hourly``, ``profiles``, ``recommendations``, ``load``). Each analysis
maps the pandas *kernel* over the partitions of the big tables, broadcasts the small
tables (and the establishments' grid index) instead of shuffling, shuffles by ``user_id``
only where a rule needs all of a user's events together (attribution, recommendations),
and runs the pandas *finalize* function on the summed partial results.

Dask is imported only inside this package: ``import adanalytics`` stays light.
"""
