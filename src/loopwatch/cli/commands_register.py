"""``loopwatch register``: a model fitted elsewhere, or a monitor-only model."""

from __future__ import annotations

from pathlib import Path

import click

from loopwatch.cli.common import handle_errors, out, settings_options
from loopwatch.config import Settings
from loopwatch.errors import InvalidInput
from loopwatch.records.jsonutil import dumps

_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


def _names(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


@click.command()
@click.argument("name")
@click.option("--artifact", type=_FILE, default=None,
              help="The fitted model, saved with skops (skops.io.dump). Absent for a monitor-only model.")
@click.option("--reference", type=_FILE, required=True,
              help="Reference table (CSV or Parquet): the features, and the target where known.")
@click.option("--target", default=None, help="Label column of the reference (and holdout); absent when none.")
@click.option("--holdout", type=_FILE, default=None,
              help="Rows the model was not fitted on: measures it and calibrates the label-free estimators "
                   "(else the reference does, which flatters a model fitted on it).")
@click.option("--trust", multiple=True,
              help="A type beyond scikit-learn's that the artifact may hold (repeat for each), e.g. "
                   "xgboost.sklearn.XGBClassifier. Only for a file you trust: loading it runs that type's code.")
@click.option("--task", type=click.Choice(["classification", "regression"]), default=None,
              help="Default: classification when the model has classes (or probabilities are given).")
@click.option("--categorical", default="", help="Comma-separated numeric columns to monitor as categories "
              "(the model then receives them as text labels).")
@click.option("--nullable", default="", help="Comma-separated features that may be null in requests.")
@click.option("--exclude", default="", help="Comma-separated columns that are not features (ids, times).")
@click.option("--prediction-column", default=None, help="Monitor-only: the external model's predictions.")
@click.option("--probability-columns", default="",
              help="Monitor-only: comma-separated class probability columns, in the order of --classes.")
@click.option("--probability-prefix", default=None,
              help="Monitor-only: every column named PREFIX<class> is that class's probability.")
@click.option("--classes", default="", help="Monitor-only: comma-separated class labels.")
@click.option("--alias", type=click.Choice(["production", "candidate"]), default=None,
              help="Alias for the new version (first version: production; later: candidate).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the new version as JSON.")
@settings_options
@handle_errors
def register(name: str, artifact: Path | None, reference: Path, target: str | None, holdout: Path | None,
             trust: tuple[str, ...], task: str | None, categorical: str, nullable: str, exclude: str,
             prediction_column: str | None, probability_columns: str, probability_prefix: str | None,
             classes: str, alias: str | None, seed: int, as_json: bool, settings: Settings) -> None:
    """Register NAME's next version from a model fitted elsewhere (--artifact), or as a monitor-only
    model (--prediction-column) whose predictions are made elsewhere and sent to loopwatch.

    The schema is inferred from the reference; drift, outliers, label-free performance and
    (with an artifact) evasion scores are built from it, by the model itself when there is one.
    """
    from loopwatch.registry.registration import register_artifact, register_monitor_only
    from loopwatch.features.tables import read_table
    from loopwatch.application.workspace import Workspace

    if (artifact is None) == (prediction_column is None):
        raise InvalidInput("give --artifact (a fitted model) or --prediction-column (a monitor-only model)")
    if artifact is None and (trust or holdout):
        raise InvalidInput("--trust and --holdout apply to a model given with --artifact")
    if artifact is not None and (probability_columns or probability_prefix or classes):
        raise InvalidInput("--probability-columns, --probability-prefix and --classes are for monitor-only models")
    shared = {"reference": read_table(reference), "target": target, "task": task,
              "categorical": _names(categorical), "nullable": _names(nullable), "exclude": _names(exclude),
              "alias": alias, "seed": seed}
    with Workspace(settings) as ws:
        if artifact is not None:
            version = register_artifact(
                ws.registry, name, artifact.read_bytes(), holdout=read_table(holdout) if holdout else None,
                trust=trust, via="cli", **shared)
        else:
            version = register_monitor_only(
                ws.registry, name, prediction_column=prediction_column or "",
                probability_columns=_names(probability_columns), probability_prefix=probability_prefix,
                classes=_names(classes), **shared)
    if as_json:
        click.echo(dumps(version.to_dict()).decode())
        return
    kind = "monitor-only" if version.params.get("monitor_only") else version.estimator
    out.print(f"{name} v{version.version} registered ({kind}, {version.task}, "
              f"{len(version.schema.features)} features); aliases: {', '.join(version.aliases) or '-'}",
              highlight=False)
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in version.metrics.items() if k != "n_holdout")
    if metrics:
        out.print(f"measured on the {version.params.get('outputs_from')}: {metrics}", highlight=False)
    if version.params.get("trusted_types"):
        out.print(f"trusts: {', '.join(version.params['trusted_types'])}", highlight=False)
    for part, reason in (version.params.get("not_applicable") or {}).items():
        out.print(f"{part}: not applicable ({reason})", highlight=False)
    if version.params.get("monitor_only"):
        out.print(f"send its predictions to /v1/models/{name}/events", highlight=False)
