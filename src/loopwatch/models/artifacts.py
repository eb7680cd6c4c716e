"""Model artifacts: skops, never pickle, with a SHA-256 checked at every load.

skops refuses to build any type it is not told to trust. loopwatch trusts what
skops trusts by default plus a short, explicit list of scikit-learn internals
that its own estimators need; anything else in a file is refused, so an
artifact that was tampered with to carry other code never runs. A version
registered from a model fitted elsewhere (XGBoost, LightGBM, the user's own
transformers) also trusts the types its owner named at registration, recorded
with the version; nothing else, and never a type first seen at load.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

from loopwatch.errors import IntegrityError

#: scikit-learn internals the offered estimators need beyond skops' defaults, and plain
#: standard-library containers (LightGBM's wrapper keeps its parameters in an OrderedDict).
EXTRA_TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "collections.OrderedDict",
    }
)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump_model(model: Any) -> bytes:
    import skops.io as sio

    data: bytes = sio.dumps(model)
    return data


def types_beyond_defaults(data: bytes) -> list[str]:
    """The types the artifact would build that neither skops nor loopwatch trusts by default:
    what its owner must name to have it loaded. Reads the file's listing, builds nothing."""
    import skops.io as sio

    try:
        untrusted = set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises several kinds on a corrupt file
        raise IntegrityError(f"model artifact is not a readable skops file: {exc}") from exc
    return sorted(untrusted - EXTRA_TRUSTED_TYPES)


def load_model(data: bytes, *, expected_sha256: str, trusted: Iterable[str] = ()) -> Any:
    """Load an artifact after checking its hash and the types it would build; ``trusted``
    are the types beyond the defaults its version was registered with."""
    import skops.io as sio

    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise IntegrityError(
            "model artifact hash mismatch: it was changed after registration",
            detail={"expected_sha256": expected_sha256, "actual_sha256": actual},
        )
    beyond = types_beyond_defaults(data)
    refused = sorted(set(beyond) - set(trusted))
    if refused:
        raise IntegrityError(
            "model artifact holds types loopwatch does not trust",
            detail={"untrusted_types": refused},
        )
    try:
        return sio.loads(data, trusted=sorted(set(sio.get_untrusted_types(data=data))))
    except Exception as exc:
        raise IntegrityError(f"model artifact could not be loaded: {exc}") from exc
