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

:mod:`~loopwatch.poisoning.compose` runs them on one table;
:mod:`loopwatch.loops.screening` adds them to the certain checks of every
retraining. :mod:`~loopwatch.poisoning.records` holds the quarantine record.
Nothing here touches a store. Importing this package is cheap: the screens
(numpy, scipy, scikit-learn) load when their modules are imported.
"""

from __future__ import annotations
