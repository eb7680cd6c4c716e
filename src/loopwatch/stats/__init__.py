"""Pure statistics on numpy arrays: no I/O, no pandas, no loopwatch edges.

Every function validates its inputs once at entry and is checked against scipy
or scikit-learn where they have it. The numeric statistics take *sorted*
reference values (or a :class:`~loopwatch.stats.sketch.NumericSummary`), so
a reference is sorted once, when its profile is built, and never again; the
same summaries merge across partitions, which is what lets the same code run
on Spark.
"""
