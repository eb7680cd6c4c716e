"""The software fingerprint: what code produced a prediction.

Stored once per distinct value and referenced by id from each event, so that
monitoring can line drift up with a deploy of loopwatch, of a library, of the
model artifact, or of the client's own feature pipeline.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from importlib import metadata
from typing import Any

from loopwatch.records.jsonutil import dumps

KEY_LIBRARIES = ("numpy", "pandas", "scikit-learn", "scipy", "skops")


@dataclass(frozen=True, kw_only=True)
class Fingerprint:
    loopwatch: str
    python: str
    libraries: dict[str, str] = field(default_factory=dict)
    artifact_sha256: str = ""
    client_version: str | None = None

    @cached_property
    def id(self) -> str:
        """A stable short id of the content: equal fingerprints share one row.

        Cached: it is read for every logged request and row.
        """
        return hashlib.sha256(dumps(self.to_dict())).hexdigest()[:20]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["libraries"] = dict(sorted(self.libraries.items()))
        return data


@lru_cache(maxsize=1)
def _runtime() -> tuple[str, str, tuple[tuple[str, str], ...]]:
    libs = []
    for name in KEY_LIBRARIES:
        try:
            libs.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    try:
        own = metadata.version("loopwatch")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        own = "0+unknown"
    return own, platform.python_version(), tuple(libs)


@lru_cache(maxsize=256)
def software_fingerprint(artifact_sha256: str, client_version: str | None = None) -> Fingerprint:
    own, python, libs = _runtime()
    return Fingerprint(
        loopwatch=own,
        python=python,
        libraries=dict(libs),
        artifact_sha256=artifact_sha256,
        client_version=client_version,
    )
