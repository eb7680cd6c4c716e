"""``loopwatch feedback`` and ``loopwatch business``: load labels and business metrics from files.

Files are CSV (a header row; every value is text) or NDJSON/JSONL (one JSON
object per line; values keep their JSON types). In a CSV the model's schema
decides what a label is: a classifier's label is matched to its classes (so
``1`` is the class ``1`` of a model trained on integer classes), a
regressor's label is a number.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import click
import orjson
from rich.table import Table

from loopwatch.cli.common import err, handle_errors, out, settings_options
from loopwatch.config import Settings
from loopwatch.errors import InvalidInput, NotFound, UnreadableData, echo
from loopwatch.records import BusinessObservation, Label, LabelOutcome
from loopwatch.records.jsonutil import dumps
from loopwatch.application.workspace import Workspace

#: Records written per transaction.
CHUNK = 5000
CSV_SUFFIXES = (".csv", ".txt")
NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".json")


def read_records(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """The file's records with their line numbers, and whether they came from a CSV."""
    if not path.is_file():
        raise NotFound(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + NDJSON_SUFFIXES:
        raise InvalidInput(f"cannot tell the format of {echo(str(path))}: name it .csv, .ndjson or .jsonl")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise UnreadableData(f"could not read {path}: {exc}") from exc
    records = list(_csv_records(text) if suffix in CSV_SUFFIXES else _ndjson_records(text))
    if not records:
        raise UnreadableData(f"{path} holds no records")
    return records, suffix in CSV_SUFFIXES


def _csv_records(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        reader = csv.DictReader(text.splitlines())
        for record in reader:
            if None in record:
                raise UnreadableData(f"line {reader.line_num}: more values than columns")
            yield reader.line_num, {k.strip(): (v if v != "" else None) for k, v in record.items()}
    except csv.Error as exc:
        raise UnreadableData(f"not a readable CSV file: {exc}") from exc


def _ndjson_records(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise UnreadableData(f"line {number}: not JSON ({exc})") from exc
        if not isinstance(record, dict):
            raise UnreadableData(f"line {number}: each line must be a JSON object")
        yield number, record


def _require_columns(
    records: list[tuple[int, dict[str, Any]]], needed: set[str], what: str, *, from_csv: bool
) -> None:
    """A CSV's header must name every needed column (NDJSON lines are checked one by one)."""
    columns = set(records[0][1])
    if from_csv and not needed <= columns:
        missing = ", ".join(sorted(needed - columns))
        raise InvalidInput(f"the {what} file has no {missing} column")


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be an ISO-8601 time")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{what} {echo(value[:50])} is not an ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _row_index(value: Any) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise InvalidInput("row_index must be a whole number")


def text_label(text: str, task: str, classes: tuple[Any, ...]) -> Any:
    """A CSV label as the model knows its targets: one of its classes, or a number."""
    if task != "classification":
        try:
            return float(text)
        except ValueError:
            raise InvalidInput(f"label {echo(text[:50])} is not a number") from None
    for known in classes:
        if str(known) == text or (isinstance(known, bool) and str(known).lower() == text.lower()):
            return known
    if classes and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
    return text  # a class the model never saw: kept as text


def _labels(
    records: list[tuple[int, dict[str, Any]]], *, from_csv: bool, model: str, client: str | None,
    task: str, classes: tuple[Any, ...],
) -> list[Label]:
    labels = []
    received_at = datetime.now(timezone.utc)
    for line, record in records:
        try:
            label = record.get("label")
            if label is None:
                raise InvalidInput("label is missing")
            if from_csv:
                label = text_label(str(label), task, classes)
            labels.append(
                Label(
                    model_name=model,
                    label=label,
                    label_time=_time(record.get("label_time"), "label_time"),
                    request_id=record.get("request_id"),
                    row_index=_row_index(record.get("row_index")),
                    entity_id=record.get("entity_id"),
                    client_id=client,
                    received_at=received_at,
                )
            )
        except InvalidInput as exc:
            raise InvalidInput(f"line {line}: {exc.message}") from exc
    return labels


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "-m", required=True, help="The model the labels are for.")
@click.option("--client", "client", default=None, help="The feedback source, stored with each label.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@settings_options
@handle_errors
def feedback(file: Path, model: str, client: str | None, as_json: bool, settings: Settings) -> None:
    """Load labels for logged predictions from a CSV or NDJSON file.

    Columns: request_id and row_index, or entity_id; label; label_time (ISO-8601, UTC when
    no zone is given). A label already stored is a duplicate; another value for a
    labelled prediction is a correction; a label no prediction fits is reported, not stored.
    """
    records, from_csv = read_records(file)
    _require_columns(records, {"label", "label_time"}, "feedback", from_csv=from_csv)
    with Workspace(settings) as ws:
        versions = ws.store.list_versions(model)  # NotFound for an unknown model
        latest = versions[-1]
        labels = _labels(
            records, from_csv=from_csv, model=model, client=client, task=latest.task,
            classes=tuple(latest.schema.classes),
        )
        outcomes: list[LabelOutcome] = []
        for start in range(0, len(labels), CHUNK):
            outcomes.extend(ws.store.write_labels(labels[start : start + CHUNK]))
    # here, not at the top: loopwatch.feedback pulls in scipy, and every command would wait for it
    from loopwatch.feedback.bookkeeping import summarize_outcomes

    summary = summarize_outcomes(outcomes)
    if as_json:
        click.echo(dumps(summary).decode())
        return
    table = Table(title=f"labels for {model}", show_header=True)
    for column in ("stored", "duplicates", "corrected", "unmatched"):
        table.add_column(column, justify="right")
    table.add_row(*(str(summary[c]) for c in ("stored", "duplicates", "corrected", "unmatched")))
    out.print(table)
    unmatched = [o for o in summary["outcomes"] if o["status"] == "unmatched"]
    for item in unmatched[:10]:
        err.print(f"unmatched, line {records[item['index']][0]}: {item['reason']}", highlight=False)
    if len(unmatched) > 10:
        err.print(f"... and {len(unmatched) - 10} more unmatched labels")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--client", "client", default=None, help="Who the metrics come from, stored with each.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@settings_options
@handle_errors
def business(file: Path, client: str | None, as_json: bool, settings: Settings) -> None:
    """Load business metric observations from a CSV or NDJSON file.

    Columns: name, timestamp (ISO-8601, UTC when no zone is given), value, and optionally
    segment. The same observation again changes nothing; a new value replaces the old one.
    """
    records, from_csv = read_records(file)
    _require_columns(records, {"name", "timestamp", "value"}, "business metrics", from_csv=from_csv)
    observations = []
    received_at = datetime.now(timezone.utc)
    for line, record in records:
        try:
            raw = record.get("value")
            value = raw
            if from_csv and raw is not None:
                try:
                    value = float(raw)
                except ValueError:
                    raise InvalidInput(f"value {echo(raw[:50])} is not a number") from None
            observations.append(
                BusinessObservation(
                    # the record checks the file's name and value and refuses bad ones
                    name=record.get("name"),  # type: ignore[arg-type]
                    timestamp=_time(record.get("timestamp"), "timestamp"),
                    value=value,  # type: ignore[arg-type]
                    segment=record.get("segment"),
                    client_id=client,
                    received_at=received_at,
                )
            )
        except InvalidInput as exc:
            raise InvalidInput(f"line {line}: {exc.message}") from exc
    with Workspace(settings) as ws:
        written = sum(
            ws.store.write_business_metrics(observations[start : start + CHUNK])
            for start in range(0, len(observations), CHUNK)
        )
    if as_json:
        click.echo(dumps({"read": len(observations), "written": written}).decode())
        return
    out.print(
        f"{len(observations)} observations read, {written} written "
        f"({len(observations) - written} unchanged)"
    )
