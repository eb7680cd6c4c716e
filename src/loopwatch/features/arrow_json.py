"""Check Arrow columns against a feature schema and encode them as JSON text, in bulk.

Bulk ingestion stores each row's features as one JSON object, as predict does. Building
those objects a row at a time in Python costs more than the database's own work, so here
every step runs on whole columns: a categorical column is checked on its distinct values
only (Arrow's dictionary encoding) and each label is encoded once; a numeric column is
formatted by Arrow (the shortest text that reads back as the same number; integral
values through the faster integer path); and the pieces are joined into one object per
row by Arrow's element-wise join. Arrow's kernels release the GIL, so this overlaps with
the thread that commits the previous batch.

The checks are :func:`~loopwatch.features.columns.check_column`'s, applied to the
distinct values; when a column is refused it is checked again row by row, so that its
problems name the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import orjson

from loopwatch.features.columns import check_column
from loopwatch.features.schema import Feature

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

#: Integral floats below this magnitude are formatted as integers (exactly representable).
_EXACT_INTEGERS = 2.0**53


@dataclass(frozen=True)
class EncodedColumn:
    #: ``"name":value`` for every row (``"name":null`` where missing), as an Arrow string array.
    pieces: pa.Array
    #: True where the value was null.
    missing: np.ndarray


def numpy_of(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The column as numpy values (nulls filled) and its null mask."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    mask = column.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(column.type) and mask.any():
        column = pc.fill_null(column, False)
    return column.to_numpy(zero_copy_only=False), mask


def number_texts(values: np.ndarray, missing: np.ndarray) -> pa.Array:
    """Each float as JSON number text (``null`` where missing): shortest round-trip form."""
    import pyarrow as pa
    import pyarrow.compute as pc

    present = values[~missing] if missing.any() else values
    filled = np.where(missing, 0.0, values) if missing.any() else values
    if present.size and np.all(np.abs(present) < _EXACT_INTEGERS) and np.array_equal(np.floor(present), present):
        texts = pc.cast(pa.array(filled.astype(np.int64)), pa.string())
    else:
        texts = pc.cast(pa.array(filled, type=pa.float64()), pa.string())
    if missing.any():
        texts = pc.if_else(pa.array(missing), pa.scalar("null"), texts)
    return texts


def encode_feature(feature: Feature, column: pa.Array, *, offset: int,
                   problems: list[dict[str, Any]]) -> EncodedColumn | None:
    """Check ``column`` for ``feature`` and encode its values; ``None`` when refused,
    after appending its problems (rows numbered from ``offset``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    key = orjson.dumps(feature.name).decode() + ":"
    if feature.kind == "numeric":
        values, missing = numpy_of(column)
        checked = check_column(feature, values, missing, offset=offset, problems=problems)
        if checked is None:
            return None
        texts = number_texts(checked.values, checked.missing)
        return EncodedColumn(pc.binary_join_element_wise(pa.scalar(key), texts, pa.scalar("")), checked.missing)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = column.dictionary_encode() if not pa.types.is_dictionary(column.type) else column
    distinct, distinct_missing = numpy_of(encoded.dictionary)
    labels = check_column(feature, distinct, distinct_missing, offset=0, problems=[])
    if labels is None:
        # name the rows: check the column again, value by value
        values, missing = numpy_of(column)
        check_column(feature, values, missing, offset=offset, problems=problems)
        return None
    texts = [key + orjson.dumps(label).decode() for label in labels.values.tolist()]
    pieces = pc.take(pa.array(texts, type=pa.string()), encoded.indices)
    missing = encoded.indices.is_null().to_numpy(zero_copy_only=False)
    if missing.any():
        pieces = pc.fill_null(pieces, pa.scalar(key + "null"))
    return EncodedColumn(pieces, missing)


def join_objects(columns: Sequence[EncodedColumn]) -> pa.Array:
    """One JSON object per row from the columns' ``"name":value`` pieces."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not columns:
        raise ValueError("join_objects needs at least one column")
    joined = pc.binary_join_element_wise(*[c.pieces for c in columns], pa.scalar(","))
    return pc.binary_join_element_wise(pa.scalar("{"), joined, pa.scalar("}"), pa.scalar(""))


def list_texts(columns: Sequence[np.ndarray]) -> pa.Array:
    """Rows of floats (one array per position) as JSON arrays ``[a,b,...]``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = [number_texts(np.asarray(c, dtype=np.float64), np.zeros(len(c), dtype=bool)) for c in columns]
    joined = pc.binary_join_element_wise(*parts, pa.scalar(","))
    return pc.binary_join_element_wise(pa.scalar("["), joined, pa.scalar("]"), pa.scalar(""))

