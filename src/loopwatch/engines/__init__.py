"""Engines that compute window summaries from a Parquet export of the log.

A summary job (:class:`~loopwatch.engines.job.SummaryJob`) is one pure ``build`` (a pandas
frame of events to summary parts by key) and one ``merge``. The in-process engine
(:func:`~loopwatch.engines.job.run_in_process`) builds once over the whole export; the Spark
engine (:mod:`loopwatch.engines.spark`) builds per partition on Spark's executors and merges
there, bringing only the merged summaries to the driver. Both call the same code, so their
exact parts are equal by construction.
"""
