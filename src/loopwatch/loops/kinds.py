"""The fixed lists loopwatch reasons with: incident kinds, feedback loops, and which loop each kind takes.

A model in production feeds four loops back into its workflow. Every incident
loopwatch names is one of :data:`INCIDENT_KINDS`, and the loop engine maps it to
one of :data:`LOOPS` (the mapping may depend on the evidence: input drift that
hurts performance goes to model selection, input drift that does not goes to EDA).
"""

from __future__ import annotations

from typing import Final

INCIDENT_KINDS: Final = (
    "covariate_shift",
    "selection_bias",
    "concept_drift",
    "software_change",
    "latency_regression",
    "adversarial_probing",
    "adversarial_evasion",
    "label_poisoning",
)

#: Findings that call for a loop without being an incident of the model's inputs or outputs.
SIGNALS: Final = (
    "business_decoupled",     # the model performs as trained, the business metric does not follow
    "business_relation_changed",  # the relation of performance to the business metric changed
    "low_label_coverage",     # too few predictions labelled for realized metrics to be trusted
    "overfitting_gap",        # realized performance below the holdout's, beyond its interval
)

#: production -> business opportunity, -> data collection, -> EDA, -> model selection and development.
LOOPS: Final = ("business", "data_collection", "eda", "model_selection")

LOOP_TITLES: Final = {
    "business": "production to business opportunity",
    "data_collection": "production to data collection",
    "eda": "production to exploratory data analysis",
    "model_selection": "production to model selection and development",
}

#: The usual loop of each kind, before the evidence is weighed.
DEFAULT_LOOP: Final = {
    "covariate_shift": "eda",
    "selection_bias": "data_collection",
    "concept_drift": "model_selection",
    "software_change": "model_selection",
    "latency_regression": "model_selection",
    "adversarial_probing": "model_selection",
    "adversarial_evasion": "model_selection",
    "label_poisoning": "data_collection",
    "business_decoupled": "business",
    "business_relation_changed": "eda",
    "low_label_coverage": "data_collection",
    "overfitting_gap": "model_selection",
}
