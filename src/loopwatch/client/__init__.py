"""``loopwatch.client``: log the predictions of a model served anywhere into loopwatch.

Use it inside your own service (FastAPI, Flask, a batch job)::

    from loopwatch.client import Client

    client = Client(url="http://loopwatch:8000", api_key="lw_...")   # a key with the ingest scope
    request_id = client.log_prediction(model="churn", features=row, prediction=0.73)
    client.log_label(model="churn", request_id=request_id, label=1)   # later, when known

or wrap a predict function with ``@client.monitored(model="churn")``. Nothing here waits on
the network: records are batched and sent by a background thread, retried with the same
request ids, and flushed on exit. The module imports only the standard library.
"""

from __future__ import annotations

from loopwatch.client._client import Client, ClientStats

__all__ = ["Client", "ClientStats"]
