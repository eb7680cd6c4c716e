"""A model's monitoring configuration as stored: the one loader every part reads it through."""

from __future__ import annotations

from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.stores.base import Store


def load_monitoring_config(store: Store, model: str) -> tuple[MonitoringConfig, int | None]:
    """The model's latest monitoring configuration and its version (the defaults and ``None``
    when it has none)."""
    found = store.get_monitor_config(model)
    if found is None:
        return MonitoringConfig(), None
    return MonitoringConfig.from_dict(found.config), found.version
