"""Scoring new customers, whose outcome is unknown yet, through the column roles that trained the model.

A raw file in the training format (the customers' own columns, optionally their events) is read by the table
source in scoring mode (``load_table(..., scoring=True)``), turned into the model's task view by the same
``build_view`` as in training, and cut to the model's input columns: the features are computed by the training
code, not re-implemented. The roles come from a training run folder (``.hydra/config.yaml``), a config YAML, or
what is stored with the model (an MLflow model's ``config.yaml``; a checkpoint's run folder). docs/byod.md
"Scoring new customers".
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepromo.data import io
from deepromo.data.errors import MissingInputError, UserInputError
from deepromo.data.tables import CanonicalData, DataValidationError

log = logging.getLogger("deepromo")
SCORABLE_VIEWS = ("customer", "response", "purchase")  # one row per customer; the graph view ranks offers
ORIGINAL_ID = "original_id"  # scoring_frame's column of the ids as the rows file holds them
RUN_CONFIGS = (Path(".hydra") / "config.yaml", Path("config.yaml"))  # in a run folder: Hydra's, the MLflow copy
STORED = None  # roles_from value meaning "the roles stored with the model"


@dataclass
class ScoringInputs:
    """What scoring a rows file needs, built through the training view.

    frame: ``[n]`` one row per customer of the file, in file order: ``customer_id`` (the id the views use:
        integer ids as they are, string ids coded 0..n-1), the model's input columns, ``incentive`` (response
        models, when the file has the treatment column: ``p`` is at that level) and ``as_of`` (sequence models:
        each row's prediction time, days). ids: ``[n]`` the ids as the file holds them, named by the id role
        (``customer_id`` without one: the row number). context: the other ``predict_frame`` arguments
        (sequence models: ``events``). prediction: ``meta["scoring"]`` of the source (time, rule, roles left out).
    """

    frame: pd.DataFrame
    ids: pd.Series
    context: dict
    data: CanonicalData
    view: str
    prediction: dict = field(default_factory=dict)

    def prediction_line(self) -> str:
        """The prediction time and the rule that set it, in one line (predict.py prints it)."""
        p = self.prediction
        if p.get("per_row_as_of"):
            as_of = self.frame["as_of"] if "as_of" in self.frame else self.data.meta["as_of"]["as_of"]
            when = f"days {float(np.min(as_of)):g} .. {float(np.max(as_of)):g}"
        else:
            when = f"day {p['prediction_time']:g}" + (f" ({p['prediction_date']})" if p.get("prediction_date") else "")
        left = f"; not read: {', '.join(p['left_out_roles'])}" if p.get("left_out_roles") else ""
        return f"prediction time {when}: {p['rule']}{left}"


def table_options() -> list[str]:
    """The options (roles) of the table source that a scoring run may set."""
    from deepromo.data.sources.table import load_table

    return [name for name in inspect.signature(load_table).parameters if name != "scoring"]


def scoring_inputs(model, data_options: Mapping[str, Any]) -> ScoringInputs:
    """The rows file named by ``data_options`` (the table source's options, e.g. a training run's
    ``data.options`` with ``path`` set to the new file) as the model's input frame, one row per customer."""
    from deepromo.data.sources import load_source
    from deepromo.data.views import AS_OF_COLUMN, build_view
    from deepromo.tasks import get_task

    view_name = get_task(model.task).view
    if view_name not in SCORABLE_VIEWS:
        raise UserInputError(f"model '{model.name}' reads the '{view_name}' view; scoring new customers through "
                             f"column roles covers models on the {', '.join(SCORABLE_VIEWS)} views")
    options = {k: v for k, v in dict(data_options).items() if k != "scoring"}
    unknown = sorted(set(options) - set(table_options()))
    if unknown:
        raise UserInputError(f"unknown table source option(s) {unknown}; its options are {table_options()}")
    data = load_source("table", scoring=True, **options)
    view = build_view(view_name, data)  # one row per customer at the prediction time: no rolling view options
    inputs = model.input_columns()
    roles, prediction = data.meta["roles"], data.meta["scoring"]
    if "campaign_incentive" in inputs and "treatment" in prediction["left_out_roles"]:
        raise DataValidationError(
            f"model '{model.name}' reads campaign_incentive, the incentive each customer was sent, from treatment "
            f"column '{options.get('treatment')}', which the rows file {data.meta['files']['path']} lacks: add it "
            f"(0 = sent nothing) or set the role treatment=null to score every customer as sent nothing")
    missing = [c for c in inputs if c not in view.frame.columns]
    if missing:
        raise DataValidationError(
            f"model '{model.name}' reads column(s) {missing} that the '{view_name}' view of these roles does not "
            f"hold; score with the roles that trained the model (numeric / categorical: "
            f"{roles['numeric']} / {roles['categorical']})")
    columns = ["customer_id", *inputs]
    treatment = model.spec.treatment.name if getattr(model.spec, "treatment", None) is not None else None
    if view_name == "response" and roles["treatment"] is not None and treatment in view.frame.columns:
        columns.append(treatment)
    frame = view.frame[list(dict.fromkeys(columns))].reset_index(drop=True)
    context = {}
    if view.sequences is not None:  # per row in the frame, so that chunks of it keep their own times
        frame[AS_OF_COLUMN] = np.broadcast_to(np.asarray(view.sequences.as_of, np.float64), (len(frame),))
        context = {"events": view.sequences.distinct_events()}
    return ScoringInputs(frame, _file_ids(data, frame["customer_id"], roles["id"]), context, data, view_name,
                         prediction)


def _file_ids(data: CanonicalData, customer_ids: pd.Series, id_role: str | None) -> pd.Series:
    """``[n]`` the ids as the rows file holds them (string ids decoded), named by the id role."""
    codes = data.meta.get("original_ids")
    if codes is None:
        values = customer_ids.to_numpy()
    else:
        values = codes.set_index("customer_id")["original_id"].reindex(customer_ids.to_numpy()).to_numpy()
    return pd.Series(values, name=id_role or "customer_id")


def scoring_frame(model, data_options: Mapping[str, Any]) -> pd.DataFrame:
    """``[n]`` one row per customer of the rows file: ``customer_id`` (the views' id), ``original_id`` (the
    file's id), then the model's input columns (and ``incentive`` / ``as_of`` where the model reads them).

    ``model.predict_frame(scoring_frame(model, options))`` scores flat models; sequence models also need the
    events: ``inputs = scoring_inputs(...)``, ``model.predict_frame(inputs.frame, **inputs.context)``.
    """
    inputs = scoring_inputs(model, data_options)
    frame = inputs.frame.copy()
    if ORIGINAL_ID in frame.columns:
        raise DataValidationError(f"a feature column is named '{ORIGINAL_ID}', the column scoring_frame adds; "
                                  "rename it in the file")
    frame.insert(1, ORIGINAL_ID, inputs.ids.to_numpy())
    return frame


# ----------------------------------------------------------------------------------------------
# Where the roles come from
# ----------------------------------------------------------------------------------------------


def config_roles(path: str | os.PathLike) -> dict:
    """The table source's options in a config YAML: a train config (``.hydra/config.yaml``, an MLflow model's
    ``config.yaml``: its ``data.options``), a data config like ``configs/data/table.yaml`` (its ``options``), or
    a flat mapping of roles (``path``, ``id``, ``label`` ...). Interpolations are resolved."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"no roles config at '{path}'")
    try:
        cfg = OmegaConf.load(path)
    except (OmegaConfBaseException, ValueError) as exc:  # yaml errors are ValueErrors in OmegaConf
        raise UserInputError(f"roles config '{path}' is not readable YAML: {exc}") from None
    if not isinstance(cfg, DictConfig):
        raise UserInputError(f"roles config '{path}' must be a mapping (a train config or the table roles)")
    if "data" not in cfg:  # wrapped so that a data config's ${data.x} interpolations resolve as in train.py
        cfg = OmegaConf.create({"data": cfg if ("options" in cfg or "source" in cfg)
                                else {"source": "table", "options": cfg}})
    source = cfg.data.get("source", "table")
    if source != "table":
        raise UserInputError(f"roles config '{path}' is of data={source}; scoring new customers through column roles "
                             "needs a model trained with data=table")
    if cfg.data.get("options") is None:
        raise UserInputError(f"roles config '{path}' has no data.options (the table source's roles)")
    try:
        options = OmegaConf.to_container(cfg.data.options, resolve=True)
    except OmegaConfBaseException as exc:
        raise UserInputError(f"roles config '{path}': data.options cannot be resolved ({exc})") from None
    return options


def run_config(folder: Path) -> Path | None:
    """The config file of a training run folder (``.hydra/config.yaml``, else ``config.yaml``), or None."""
    return next((folder / c for c in RUN_CONFIGS if (folder / c).is_file()), None)


def read_roles(roles_from: str | os.PathLike) -> tuple[dict, str]:
    """(the table options, the file they came from) of a training run folder or a config YAML."""
    path = Path(roles_from)
    if path.is_dir():
        config = run_config(path)
        if config is None:
            raise MissingInputError(f"run folder '{path}' holds neither .hydra/config.yaml nor config.yaml; pass the "
                                    "config YAML of the training run instead")
        path = config
    return config_roles(path), str(path)


def _mlflow_model_files(uri: str) -> tuple[Path, Path | None]:
    """(checkpoint, config.yaml or None) of an MLflow model, downloaded once and its code file checked."""
    from deepromo.serving.checkpoints import (CheckpointError, MissingCheckpointError, read_mlmodel,
                                              verify_pyfunc_code)
    from deepromo.serving.tracking import disable_telemetry, tracking_uri

    disable_telemetry()
    import mlflow

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except mlflow.exceptions.MlflowException as exc:
        first = str(getattr(exc, "message", exc)).strip().splitlines()[0]
        raise MissingCheckpointError(f"'{uri}' is not in the tracking store {tracking_uri()}: {first}") from None
    mlmodel = read_mlmodel(local, uri)
    verify_pyfunc_code(local, uri, mlmodel)
    artifacts = ((mlmodel.get("flavors") or {}).get("python_function") or {}).get("artifacts") or {}
    found = {name: local / (artifacts.get(name) or {}).get("path", "") for name in ("checkpoint", "config")}
    if not (artifacts.get("checkpoint") or {}).get("path") or not found["checkpoint"].is_file():
        raise CheckpointError(f"'{uri}' holds no deepromo checkpoint artifact; is it a deepromo model?")
    return found["checkpoint"], found["config"] if (artifacts.get("config") or {}).get("path") else None


def model_and_roles(model_source, roles_from: str | os.PathLike | None = STORED) -> tuple[Any, dict, str]:
    """(the loaded model, the table options, where they came from). roles_from: a run folder or config YAML;
    None: the roles stored with the model (an MLflow model's config.yaml artifact; for a checkpoint file the
    run folder around it: its own folder or, for ``checkpoints/*.ckpt``, the one above)."""
    import deepromo
    from deepromo.models.base import PromoModel
    from deepromo.serving.checkpoints import is_model_uri

    if roles_from is not STORED:
        model = model_source.eval() if isinstance(model_source, PromoModel) else deepromo.load_model(model_source)
        return (model, *read_roles(roles_from))
    if isinstance(model_source, PromoModel):
        raise UserInputError("a model object keeps no column roles; pass roles_from (a training run folder or its "
                             "config YAML)")
    if is_model_uri(model_source):
        checkpoint, config = _mlflow_model_files(model_source)
        model = deepromo.load_model(checkpoint)
        if config is None:
            raise UserInputError(f"MLflow model '{model_source}' was logged without its config.yaml; pass the roles "
                                 "(predict.py --roles-from RUN_FOLDER_OR_YAML)")
        return model, config_roles(config), f"{model_source} (config.yaml)"
    model = deepromo.load_model(model_source)
    folders = [Path(model_source).resolve().parent, Path(model_source).resolve().parent.parent]
    config = next((c for c in map(run_config, folders) if c is not None), None)
    if config is None:
        raise UserInputError(f"no training roles stored beside checkpoint '{model_source}' (looked for "
                             f"{' and '.join(str(c) for c in RUN_CONFIGS)} in {folders[0]} and {folders[1]}); "
                             "pass --roles-from RUN_FOLDER_OR_YAML")
    return model, config_roles(config), str(config)


def parse_role(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` in train.py's override syntax (``time=null``, ``numeric=[age,spend]``,
    ``events_columns={ts: day}``) as (name, value), parsed by Hydra's own override parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise UserInputError(f"--role expects NAME=VALUE (e.g. path=new_customers.csv), got {text!r}")
    try:
        parsed = OverridesParser.create().parse_override(f"{name.strip()}={value}")
    except HydraException as exc:
        raise UserInputError(f"--role {text!r}: {str(exc).splitlines()[0]}") from None
    return name.strip(), parsed.value()


def with_roles(options: Mapping[str, Any], overrides: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> dict:
    """``options`` with the ``overrides`` applied; an override that is no table option is an error."""
    overrides = dict(overrides)
    unknown = sorted(set(overrides) - set(table_options()))
    if unknown:
        raise UserInputError(f"unknown role(s) {unknown}; the table source's roles and options are {table_options()}")
    return {**options, **overrides}


def score_new_customers(
    model_source,
    output_path: str | os.PathLike,
    roles_from: str | os.PathLike | None = STORED,
    roles: Mapping[str, Any] | None = None,
    keep_columns: Sequence[str] = (),
    chunk_size: int = 100_000,
    progress: bool = True,
    encoding: str | None = None,
    **drift_options,
) -> dict:
    """Score the customers of a raw rows file through the training roles and write one row per customer.

    roles_from: a training run folder or config YAML; None: the roles stored with the model (see
    :func:`model_and_roles`). roles: overrides of those roles, e.g. ``{"path": "new.csv", "events_path":
    "new_events.csv"}``. keep_columns: columns of the scoring frame (features, ``incentive``, ``as_of``) copied
    after the id. encoding: text encoding of CSV/TSV files. drift_options: ``drift``, ``drift_threshold``,
    ``drift_ks_pvalue``, ``drift_share_shift``, ``drift_tracking_uri`` as for ``score_file``.

    Output (Parquet): the id column (named by the id role, the file's values), ``keep_columns``, then the model's
    ``frame_columns()``. Returns ``score_frame``'s summary (its ``seconds``: the scoring) plus ``roles_from``
    (where the roles came from), ``prediction_time`` (one line), ``scoring`` (the source's ``meta["scoring"]``)
    and ``prepare_seconds`` (loading the model, reading the files and building the view).
    """
    from deepromo.serving.batch_scoring import score_frame

    output_path = Path(output_path)
    started = time.perf_counter()
    with io.text_encoding(encoding):
        model, options, where = model_and_roles(model_source, roles_from)
        options = with_roles(options, roles or {})
        inputs = scoring_inputs(model, options)
    rows_files = inputs.data.meta["files"]["path"]
    if str(output_path.resolve()) in [str(Path(f).resolve()) for f in rows_files]:
        raise UserInputError(f"output '{output_path}' is the rows file; choose another output path")
    missing = [c for c in keep_columns if c not in inputs.frame.columns]
    if missing:
        raise UserInputError(f"keep column(s) {missing} are not in the scoring frame; it has "
                             f"{[c for c in inputs.frame.columns if c != 'customer_id']}")
    passed = pd.concat([inputs.ids.to_frame(), inputs.frame[list(keep_columns)]], axis=1)
    passed = passed.loc[:, ~passed.columns.duplicated()]
    line = inputs.prediction_line()
    log.info("roles from %s; %s", where, line)
    source = rows_files[0] if len(rows_files) == 1 else f"{rows_files[0]} (+{len(rows_files) - 1} more)"
    prepared = time.perf_counter()
    summary = score_frame(model, inputs.frame, output_path, pass_through=passed, context=inputs.context,
                          chunk_size=chunk_size, progress=progress, source=source, **drift_options)
    summary.update(roles_from=where, prediction_time=line, scoring=inputs.prediction,
                   prepare_seconds=prepared - started)
    return summary


__all__ = ["ScoringInputs", "model_and_roles", "parse_role", "read_roles", "score_new_customers", "scoring_frame",
           "scoring_inputs", "with_roles"]
