"""Reference profiles of files, built once per file content and reused (``loopwatch drift``).

Building a reference profile (bins, bootstrap nulls, the encoder, the PCA basis and the
detectors) is most of a comparison's fixed cost, and a team compares many current files with
one reference. The profile is kept under ``HOME/cache/profiles``, named by the SHA-256 of the
reference file's bytes and of everything else it depends on (the columns compared, which are
categorical, the seed, the families that need fitting, the profile format and loopwatch's
version), so an edited file, other options or an upgrade build a new one. A cached profile is
read like a registered one (skops, trusted types only); one that cannot be read is rebuilt
and replaced. The newest ``MAX_CACHED`` profiles are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from loopwatch.drift.config import DriftConfig
from loopwatch.drift.profile import PROFILE_FORMAT, ReferenceProfile, build_profile, split_columns
from loopwatch.errors import LoopwatchError

#: Profiles kept in the cache; the least recently used beyond these are removed.
MAX_CACHED = 32
_SUFFIX = ".profile"


@dataclass(frozen=True)
class CachedProfile:
    """A reference profile and whether it was read from the cache (else built and stored)."""

    profile: ReferenceProfile
    reused: bool
    key: str


def profile_key(path: Path, *, columns: Sequence[str], categorical: Sequence[str], config: DriftConfig) -> str:
    """The cache key of ``path``'s profile: its bytes and every option the profile depends on."""
    from importlib import metadata

    digest = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
    options = {
        "columns": [str(c) for c in columns], "categorical": sorted(str(c) for c in categorical),
        "seed": config.seed, "joint": config.multivariate or config.outliers, "detectors": config.outliers,
        "format": PROFILE_FORMAT, "loopwatch": metadata.version("loopwatch"),
    }
    digest.update(json.dumps(options, sort_keys=True).encode())
    return digest.hexdigest()


def reference_profile(path: Path, frame: pd.DataFrame, *, categorical: Sequence[str], config: DriftConfig,
                      folder: Path) -> CachedProfile:
    """``frame``'s profile (``frame``: the columns of ``path`` to compare), from ``folder``
    when an equal one was built before, else built as :func:`~loopwatch.drift.compare.compare`
    builds it and stored there."""
    key = profile_key(path, columns=list(frame.columns), categorical=categorical, config=config)
    target = folder / f"{key}{_SUFFIX}"
    if target.exists():
        try:
            profile = ReferenceProfile.from_bytes(target.read_bytes())
        except (LoopwatchError, OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
            target.unlink(missing_ok=True)  # damaged or foreign: built again below
        else:
            os.utime(target)  # recently used
            return CachedProfile(profile=profile, reused=True, key=key)
    numeric, cats = split_columns(frame, categorical=categorical)
    profile = build_profile(frame, numeric=numeric, categorical=cats, seed=config.seed,
                            joint=config.multivariate or config.outliers, detectors=config.outliers)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        partial.write_bytes(profile.to_bytes())
        os.replace(partial, target)  # readers see the whole profile or none
        _prune(folder)
    except OSError:  # a read-only or full home: the comparison goes on without the cache
        pass
    return CachedProfile(profile=profile, reused=False, key=key)


def _prune(folder: Path) -> None:
    kept = sorted(folder.glob(f"*{_SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[MAX_CACHED:]:
        old.unlink(missing_ok=True)
