"""Score a CSV/TSV or Parquet file of customers with a trained deepromo model (docs/scoring.md).

    python predict.py --model outputs/splc/<time>/model.ckpt --input customers.parquet --output scores.parquet
    python predict.py --model "models:/deepromo-splc-synthetic@champion" --input customers.csv.gz --output scores.parquet
    python predict.py --model outputs/txl/<time>/model.ckpt --input customers.parquet --events events.parquet \
        --as-of 120 --output scores.parquet          # sequence models also read the customers' events
    python predict.py --engine spark --model "models:/deepromo-splc-synthetic@champion" \
        --input customers.parquet --output scores/           # on Spark (deepromo[spark]): a Parquet folder
    python predict.py --model outputs/txl/<time>/model.ckpt --input customers.tsv --events clicks.csv.gz \
        --events-column ts=day --event-type order=purchase --output scores.parquet   # renamed like data.events_*
    python predict.py --model outputs/splc/<time>/model.ckpt --input customers.parquet --output scores.parquet \
        --drift --drift-threshold 0.2     # + scores.drift.csv: each feature's and the score's shift from training
    python predict.py --model outputs/dipn/<time>/model.ckpt --roles-from outputs/dipn/<time> \
        --input new_customers.csv --role events_path=new_events.csv --output scores.parquet
                                          # a raw file in the training format, no outcome: the run's column roles

Bad input (missing columns, unsupported file type, missing file) prints one ``error: ...`` line and
exits 2; set DEEPROMO_DEBUG=1 for the traceback.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def name_pair(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` as a pair of stripped names (an argparse type)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Score a customer file with a trained deepromo model.")
    parser.add_argument("--model", required=True, help="checkpoint path or models:/NAME@alias / models:/NAME/VERSION")
    parser.add_argument("--input", default=None,
                        help="file with the feature columns: .csv, .tsv (also compressed: .csv.gz, .tsv.bz2 ...), "
                             ".parquet or .pq, as the table source reads them; with --roles-from / --role: the raw "
                             "rows file in the training format (the role path)")
    parser.add_argument("--output", required=True, help="Parquet file to write (.parquet or .pq)")
    parser.add_argument("--chunk-size", type=int, default=100_000, help="rows per chunk (default 100000)")
    parser.add_argument(
        "--id-column", action="append", dest="id_columns", default=None, metavar="COL",
        help="column copied to the output first (repeatable; default customer_id if present)",
    )
    parser.add_argument(
        "--keep-column", action="append", dest="keep_columns", default=[], metavar="COL",
        help="further input column copied to the output (repeatable)",
    )
    parser.add_argument("--events", default=None, metavar="FILE",
                        help="sequence models (txl): CSV/Parquet file (or glob) of the customers' events "
                             "(customer_id, ts, event_type, amount, optionally category, promo_active)")
    parser.add_argument("--events-column", action="append", dest="events_columns", type=name_pair, default=[],
                        metavar="CANONICAL=COLUMN",
                        help="the events file's column for a canonical event column, as data.events_columns "
                             "(repeatable; e.g. ts=event_time)")
    parser.add_argument("--event-type", action="append", dest="event_types", type=name_pair, default=[],
                        metavar="FILE_TYPE=TYPE",
                        help="renames an event type of the events file, as data.event_type_map "
                             "(repeatable; e.g. order=purchase)")
    parser.add_argument("--as-of", type=float, default=None, metavar="DAYS",
                        help="sequence models: prediction time in days (default: just after each customer's newest event)")
    parser.add_argument("--encoding", default=None, metavar="NAME",
                        help="text encoding of CSV/TSV input and events files (default utf-8; e.g. latin-1)")
    parser.add_argument("--drift", nargs="?", const=True, default=False, metavar="TABLE",
                        help="compare the scored rows with the model's training data and write the drift table "
                             "(default <output stem>.drift.csv beside the output; or a .csv/.parquet path)")
    parser.add_argument("--drift-threshold", type=float, default=0.2, metavar="PSI",
                        help="flag features (and the score) whose PSI is at least this (default 0.2)")
    parser.add_argument("--drift-ks-pvalue", type=float, default=None, metavar="P",
                        help="also flag numeric features whose KS p-value is below P (default off)")
    parser.add_argument("--drift-share-shift", type=float, default=None, metavar="SHARE",
                        help="also flag categorical features whose largest category share moved by SHARE or more")
    parser.add_argument("--drift-tracking-uri", default=None, metavar="URI",
                        help="log the drift table to a new run of MLflow experiment deepromo-scoring in this store "
                             "(e.g. sqlite:///mlflow.db)")
    parser.add_argument("--roles-from", nargs="?", const=ROLES_OF_MODEL, default=None, metavar="RUN_OR_YAML",
                        help="score a raw file of customers (no outcome needed) through the column roles that "
                             "trained the model: a training run folder (its .hydra/config.yaml), a config YAML, or, "
                             "without a value, the roles stored with the model (MLflow config.yaml; the "
                             "checkpoint's run folder)")
    parser.add_argument("--role", action="append", dest="roles", default=[], metavar="NAME=VALUE",
                        help="overrides a role or option of those roles, in train.py's syntax (repeatable; e.g. "
                             "events_path=new_events.csv, history_end=2024-06-01, time=null); implies --roles-from")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--engine", choices=("local", "spark"), default="local",
                        help="local: chunked scoring in this process (default); spark: mlflow.pyfunc.spark_udf on a "
                             "Spark session (needs deepromo[spark] and Java; --model an MLflow model URI, --input "
                             "Parquet, --output a folder)")
    parser.add_argument("--spark-master", default="local[2]", metavar="URL",
                        help="Spark master for --engine spark (default local[2])")
    return parser.parse_args(argv)


def flags_given(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    """The flags of ``flags`` ({flag: attribute of args}) given on the command line: not left at None, off or empty
    (a value of 0, e.g. ``--as-of 0``, counts as given)."""
    return [flag for flag, name in flags.items()
            if (value := getattr(args, name)) is not None and value is not False and value != []]


def run_on_spark(args: argparse.Namespace) -> dict:
    """``--engine spark``: the model's MLflow pyfunc as a Spark UDF over Parquet input, Parquet folder output."""
    from deepromo.data.errors import UserInputError
    from deepromo.serving.spark_scoring import score_spark

    used = flags_given(args, {"--events": "events", "--as-of": "as_of", "--drift": "drift", "--encoding": "encoding",
                              "--events-column": "events_columns", "--event-type": "event_types"})
    if used:
        raise UserInputError(f"{', '.join(used)}: not available with --engine spark (customer-table models on Parquet "
                             "input only); score with the default engine")
    summary = score_spark(args.model, args.input, args.output, master=args.spark_master, id_columns=args.id_columns,
                          keep_columns=args.keep_columns)
    print(f"scored {summary['rows']:,} rows on Spark ({args.spark_master}), {summary['seconds']:.1f} s "
          f"({summary['rows_per_s']:,.0f} rows/s) -> {summary['output']}/")
    return summary


ROLES_OF_MODEL = "<stored with the model>"  # --roles-from without a value


def run(args: argparse.Namespace) -> dict:
    from deepromo.data.errors import UserInputError
    from deepromo.serving.batch_scoring import score_file

    if args.roles_from is not None or args.roles:
        if args.engine == "spark":
            raise UserInputError("--roles-from / --role: not available with --engine spark; score with the default "
                                 "engine")
        return run_with_roles(args)
    if args.input is None:
        raise UserInputError("--input is required (or --roles-from / --role to score a raw file through the "
                             "training roles)")
    if args.engine == "spark":
        return run_on_spark(args)
    summary = score_file(
        args.model, args.input, args.output, chunk_size=args.chunk_size, id_columns=args.id_columns,
        keep_columns=args.keep_columns, progress=not args.no_progress, events=args.events, as_of=args.as_of,
        events_columns=dict(args.events_columns) or None, event_type_map=dict(args.event_types) or None,
        encoding=args.encoding, drift=args.drift, drift_threshold=args.drift_threshold,
        drift_ks_pvalue=args.drift_ks_pvalue, drift_share_shift=args.drift_share_shift,
        drift_tracking_uri=args.drift_tracking_uri,
    )
    print(
        f"scored {summary['rows']:,} rows in {summary['chunks']} chunk(s), {summary['seconds']:.1f} s "
        f"({summary['rows_per_s']:,.0f} rows/s) -> {summary['output']}"
    )
    if "drift" in summary:
        print(f"{summary['drift']['summary']} -> {summary['drift']['path']}")
    return summary


def run_with_roles(args: argparse.Namespace) -> dict:
    """Score the raw rows file through the training roles (deepromo.serving.new_customers)."""
    from deepromo.data.errors import UserInputError
    from deepromo.serving.new_customers import parse_role, score_new_customers

    given = flags_given(args, {"--events": "events", "--events-column": "events_columns",
                               "--event-type": "event_types", "--as-of": "as_of", "--id-column": "id_columns"})
    if given:
        raise UserInputError(f"{', '.join(given)}: for files that already hold the model's columns; through the "
                             "training roles give the events as --role events_path=FILE (and events_columns, "
                             "event_type_map), the prediction time as --role history_end=DAY_OR_DATE and the id "
                             "column as --role id=COLUMN")
    roles = dict(parse_role(text) for text in args.roles)
    if args.input is not None:
        roles["path"] = args.input
    summary = score_new_customers(
        args.model, args.output, roles_from=None if args.roles_from in (None, ROLES_OF_MODEL) else args.roles_from,
        roles=roles, keep_columns=args.keep_columns, chunk_size=args.chunk_size, progress=not args.no_progress,
        encoding=args.encoding, drift=args.drift, drift_threshold=args.drift_threshold,
        drift_ks_pvalue=args.drift_ks_pvalue, drift_share_shift=args.drift_share_shift,
        drift_tracking_uri=args.drift_tracking_uri,
    )
    print(f"roles from {summary['roles_from']}; {summary['prediction_time']}")
    print(f"scored {summary['rows']:,} customers of {summary['input']} in {summary['chunks']} chunk(s) "
          f"({summary['prepare_seconds']:.1f} s to load the model, read the files and build the view, "
          f"{summary['seconds']:.1f} s to score) -> {summary['output']}")
    if "drift" in summary:
        print(f"{summary['drift']['summary']} -> {summary['drift']['path']}")
    return summary


def main(argv=None) -> None:
    from deepromo.jobs.cli import main_guard

    main_guard(run, parse_args(argv))


if __name__ == "__main__":
    main()
