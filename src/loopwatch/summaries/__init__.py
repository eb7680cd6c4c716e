"""Window summaries: mergeable parts of a window of logged events.

Monitoring reads these instead of the log, so that its cost follows the number of
windows and features, not the number of events. Every part follows one contract
(:class:`loopwatch.summaries.part.SummaryPart`): it is built from a batch of rows,
merged with the same part of another batch or window, and serialised to JSON-safe
dicts. Exact parts (counts, bins, exactly summed moments) merge to the same value in
any order and grouping; sketch parts merge within their stated error bound.
"""
