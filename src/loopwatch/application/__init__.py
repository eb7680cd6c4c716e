"""The application layer: what loopwatch does for a user, built from the domain packages and
the stores. Predicting and logging, training and retraining, ingesting predictions made
elsewhere, running the monitor and the loop engine, the labelling queue, quarantine, the
scheduler and alerts; :class:`~loopwatch.application.workspace.Workspace` puts them together.

The edges (``service``, ``cli``) call this layer; it never imports them.
"""
