"""The Spark engine: every analysis as Spark SQL expressions, joins and window functions.

Module names mirror :mod:`adanalytics.engines.pandas` (the reference semantics): ``ctr``,
``visits``, ``attribution``, ``hourly``, ``profiles``, ``recommendations``, ``load``,
``validate``, ``timebuckets``, ``joins``; plus ``session`` (the process-wide
SparkSession), ``geo`` (haversine and grid cell keys as Column expressions) and
``collect`` (Spark result -> pandas with the reference dtypes).

Nothing here imports pyspark at package import time: ``import adanalytics`` stays light.
"""
