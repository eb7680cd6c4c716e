"""Poisoning screens: which training rows to set aside before a model learns from them.

Retraining on production feedback closes a loop through the outside world:
whoever can send labels can shape the next model. Four screens, one small
module each, each a pure function that scores every row, flags rows only on
evidence that the table holds poison (a clean table loses rows at most a
stated share of the time), and gives each flagged row a reason:

- :mod:`~loopwatch.poisoning.label_flips` (reason ``label_flip``): labels at
  odds with their neighbours and with cross-validated predictions;
- :mod:`~loopwatch.poisoning.reference_distance` (``far_from_reference``):
  rows an isolation forest of the trusted reference isolates quickly;
- :mod:`~loopwatch.poisoning.sources` (``source:<id>``): a feedback source
  whose labels disagree with the model more than the other sources' do;
- :mod:`~loopwatch.poisoning.backdoor` (``backdoor:<pattern>``): a rare exact
  feature pattern, far purer in its label than similar patterns, that comes
  with one label.

The front door is :func:`screen_training_data` (:mod:`~loopwatch.poisoning.screening`):
the certain checks of every training table (labels, schema), then the screens,
which :mod:`~loopwatch.poisoning.compose` runs on one table; training and
retraining call it, and ``ScreenSettings`` tunes it.
:mod:`~loopwatch.poisoning.records` holds the quarantine record. Nothing here
touches a store. Importing this package is cheap: the front door and the screens
(numpy, pandas, scipy, scikit-learn) load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = ["ScreenSettings", "ScreeningResult", "screen_training_data"]

if TYPE_CHECKING:  # pragma: no cover
    from loopwatch.poisoning.screening import ScreeningResult, ScreenSettings, screen_training_data


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'loopwatch.poisoning' has no attribute {name!r}")
    return getattr(import_module("loopwatch.poisoning.screening"), name)
