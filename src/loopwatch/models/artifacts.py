"""Model artifacts: skops, never pickle, with a SHA-256 checked at every load.

skops refuses to build any type it is not told to trust. loopwatch trusts what
skops trusts by default plus a short, explicit list of scikit-learn internals
that its own estimators need; anything else in a file is refused, so an
artifact that was tampered with to carry other code never runs.
"""

from __future__ import annotations

import hashlib
from typing import Any

from loopwatch.errors import IntegrityError

#: scikit-learn internals the offered estimators need beyond skops' defaults.
EXTRA_TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump_model(model: Any) -> bytes:
    import skops.io as sio

    return sio.dumps(model)


def load_model(data: bytes, *, expected_sha256: str) -> Any:
    """Load an artifact after checking its hash and the types it would build."""
    import skops.io as sio

    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise IntegrityError(
            "model artifact hash mismatch: it was changed after registration",
            detail={"expected_sha256": expected_sha256, "actual_sha256": actual},
        )
    try:
        untrusted = set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises several kinds on a corrupt file
        raise IntegrityError(f"model artifact is not a readable skops file: {exc}") from exc
    refused = sorted(untrusted - EXTRA_TRUSTED_TYPES)
    if refused:
        raise IntegrityError(
            "model artifact holds types loopwatch does not trust",
            detail={"untrusted_types": refused},
        )
    try:
        return sio.loads(data, trusted=sorted(untrusted))
    except Exception as exc:
        raise IntegrityError(f"model artifact could not be loaded: {exc}") from exc
