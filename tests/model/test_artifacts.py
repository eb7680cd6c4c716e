"""Artifacts: skops only, hashes checked at every load, untrusted types refused."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

from loopwatch.errors import IntegrityError
from loopwatch.models import ESTIMATORS, dump_model, load_model, sha256_hex, train_model
from loopwatch.models.training import prepare_features


@pytest.mark.parametrize("estimator", ESTIMATORS["classification"])
def test_round_trip_gives_identical_predictions(churn_training: pd.DataFrame, estimator: str) -> None:
    trained = train_model(churn_training, "churned", estimator=estimator)
    data = dump_model(trained.pipeline)
    assert not data.startswith(b"\x80")  # not a pickle stream
    loaded = load_model(data, expected_sha256=sha256_hex(data))
    x = prepare_features(churn_training.head(50), trained.schema)
    assert (loaded.predict_proba(x) == trained.pipeline.predict_proba(x)).all()


def test_one_changed_byte_is_refused(churn_training: pd.DataFrame) -> None:
    data = bytearray(dump_model(train_model(churn_training, "churned").pipeline))
    expected = sha256_hex(bytes(data))
    data[len(data) // 2] ^= 0x01
    with pytest.raises(IntegrityError, match="hash mismatch"):
        load_model(bytes(data), expected_sha256=expected)


class _Payload:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("this must never run",))


def test_a_pickle_never_loads_even_with_a_matching_hash(capsys: pytest.CaptureFixture[str]) -> None:
    data = pickle.dumps(_Payload())
    with pytest.raises(IntegrityError):
        load_model(data, expected_sha256=sha256_hex(data))
    assert "must never run" not in capsys.readouterr().out


def test_a_skops_file_with_an_untrusted_type_is_refused() -> None:
    import collections

    import skops.io as sio

    data = sio.dumps({"a": collections.Counter("abc")})
    with pytest.raises(IntegrityError, match="does not trust"):
        load_model(data, expected_sha256=sha256_hex(data))
