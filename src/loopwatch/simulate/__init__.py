"""A seeded simulator of the loopwatch demo: churn of a streaming-service's subscribers.

Why it exists: monitoring can only be demonstrated, and graded, against a world
whose truth is known. This package builds that world with numpy and pandas only
(nothing else of loopwatch, no HTTP, no database), so it can be used by the demo
runner, the benchmarks and the tests alike.

The story. A subscription business has a churn model. Version 1 is trained on
:meth:`ChurnScenario.training_data` (a stable world); then a production period
(by default 70 days from 2026-01-05 00:00 UTC, 1000 predictions a day) is
replayed through the prediction API, day by day, in requests from a few clients
("web-app", "mobile-app", "crm-batch") that declare their pipeline versions.
Whether a customer churned becomes known 14 days (plus 0-2 days of jitter) after
the prediction, normally from the feedback source "crm-export". Daily revenue
per country is the business metric.

Customers have the numeric features ``tenure_months``, ``monthly_fee``,
``watch_hours`` (weekly hours), ``support_tickets`` and ``age`` (about 2%
missing) and the categorical ``plan``, ``device`` and ``country``; churn follows
a logistic model of them (about 21% base rate, true AUC ~0.78).

A versioned ground-truth :class:`Timeline` injects incidents, each of one kind
of :data:`INCIDENT_KINDS`:

- ``covariate_shift``: one feature's distribution moves (watch_hours up by a
  few tenths of a standard deviation) for a few days, then reverts;
- ``selection_bias``: a country absent from training (BR) makes up a share of
  traffic for a few days;
- ``concept_drift``: the relation of features to churn changes (price matters
  more, tenure less) with inputs unchanged; it persists, and only shows once
  labels arrive;
- ``software_change``: a client deploys a new pipeline version that sends one
  feature in another unit (mobile-app 3.0.0 sends watch time in minutes) until
  a fixed version ships;
- ``adversarial_probing``: a client of its own sends a burst of grid-like tiny
  perturbations around points near the decision boundary;
- ``label_poisoning``: a new feedback source sends labels for recent
  predictions, a share of them flipped;
- ``latency_regression``: a slower model version is deployed (the simulator
  only states which and when: see :meth:`ChurnScenario.latency_model_spec`).

Between incidents the world is exactly the training world, so the stable days
double as a false-alarm test; ``Timeline(incidents=())`` gives a fully stable
period.
"""

from loopwatch.simulate.concept import (
    STABLE_CONCEPT,
    ChurnConcept,
    drifted_concept,
    expected_auc,
    stable_churn_probability,
)
from loopwatch.simulate.population import rows_to_frame, sample_customers, to_rows
from loopwatch.simulate.records import CRM_SOURCE, Batch, BusinessMetric, Day, FeedbackRecord
from loopwatch.simulate.business import REVENUE_METRIC
from loopwatch.simulate.scenario import ChurnScenario
from loopwatch.simulate.schema import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, TARGET
from loopwatch.simulate.timeline import (
    DEFAULT_DAYS,
    DEFAULT_START,
    INCIDENT_KINDS,
    TIMELINE_VERSION,
    Incident,
    LatencyModelSpec,
    Timeline,
    default_timeline,
    stable_timeline,
)
from loopwatch.simulate.traffic import CLIENTS, ClientSpec

__all__ = [
    "CATEGORICAL_FEATURES",
    "CLIENTS",
    "CRM_SOURCE",
    "DEFAULT_DAYS",
    "DEFAULT_START",
    "FEATURES",
    "INCIDENT_KINDS",
    "NUMERIC_FEATURES",
    "REVENUE_METRIC",
    "STABLE_CONCEPT",
    "TARGET",
    "TIMELINE_VERSION",
    "Batch",
    "BusinessMetric",
    "ChurnConcept",
    "ChurnScenario",
    "ClientSpec",
    "Day",
    "FeedbackRecord",
    "Incident",
    "LatencyModelSpec",
    "Timeline",
    "default_timeline",
    "drifted_concept",
    "expected_auc",
    "rows_to_frame",
    "sample_customers",
    "stable_churn_probability",
    "stable_timeline",
    "to_rows",
]
