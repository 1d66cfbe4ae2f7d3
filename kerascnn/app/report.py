"""The study report of a sweep: ``report/summary.csv`` and ``report/index.html`` on its parent.

```
python -m kerascnn.report --parent RUN_ID
python -m kerascnn.report --parent RUN_ID --group-by model.name,downsample.name --baseline mean
```

The numbers come from :mod:`kerascnn.app.study_summary` (95% t-intervals, paired t-tests by
seed against the baseline of each model, Holm's correction per model), the page from
:mod:`kerascnn.app.report_page`. Both files are logged to the parent run under ``report/``;
the command prints where the page lies and the link that opens the parent in the MLflow UI
(its Artifacts tab shows ``report/index.html``). ``experiment=downsampling_study`` writes the
report by itself when its sweep ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kerascnn.app.runs_query import RunsNotFoundError
from kerascnn.app.study_summary import DEFAULT_KEYS, collect_study, summarize

__all__ = ["Report", "main", "report_after_sweep", "write_report"]

PROG = "kerascnn.report"
FOLDER = "report"
MAX_P_PICTURES = 8  # the learned-p pictures embedded (one per run, groups in turn)


@dataclass
class Report:
    """What a report wrote: the summary, where the page lies, the link to the parent run."""

    summary: object
    page: str        # the page's location in the artifact store (a path for a local store)
    link: str


@contextlib.contextmanager
def _no_progress_bars():
    """MLflow draws a progress bar on stderr per download unless its setting says not to."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _p_pictures(study) -> dict[str, bytes]:
    """The learned-p pictures the runs logged (``plots/learned_p.png``), caption -> PNG."""
    from mlflow.exceptions import MlflowException

    pictures: dict[str, bytes] = {}
    runs = study.runs[study.runs["p"].map(bool)].sort_values(["group", "seed"])
    with tempfile.TemporaryDirectory() as folder, _no_progress_bars():
        for _, run in runs.iterrows():
            if len(pictures) >= MAX_P_PICTURES:
                break
            try:
                names = {a.path for a in study.client.list_artifacts(run["run_id"], "plots")}
                if "plots/learned_p.png" not in names:
                    continue
                path = study.client.download_artifacts(run["run_id"], "plots/learned_p.png",
                                                       folder)
            except (MlflowException, OSError):
                continue
            pictures[f"{run['group']}, seed {run['seed']} ({run['run']})"] = \
                Path(path).read_bytes()
    return pictures


def _artifact_location(client, parent: str, name: str) -> str:
    """A local path for a file store's artifact, else its URI."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    root = client.get_run(parent).info.artifact_uri.rstrip("/")
    parsed = urlparse(root)
    if parsed.scheme == "file":
        return str(Path(url2pathname(parsed.path)) / FOLDER / name)
    if not parsed.scheme:
        return str(Path(root) / FOLDER / name)
    return f"{root}/{FOLDER}/{name}"


def write_report(tracking_uri: str, parent: str, keys=None, baseline: str = "max",
                 include_stalled: bool = False, experiment: str | None = None) -> Report:
    """Summarise the FINISHED children of `parent`, log ``report/`` to it, return where.

    Raises:
        RunsNotFoundError: no such parent or finished child, or a key no child has.
    """
    from kerascnn.app.report_page import page
    from kerascnn.app.tracking.links import run_url

    study = collect_study(tracking_uri, parent, keys, experiment)
    summary = summarize(study, baseline, include_stalled)
    text = page(summary, study, _p_pictures(study))
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "summary.csv").write_text(summary.to_csv(index=False, na_rep=""))
        (Path(folder) / "index.html").write_text(text, encoding="utf-8")
        study.client.log_artifacts(parent, folder, artifact_path=FOLDER)
    return Report(summary, _artifact_location(study.client, parent, "index.html"),
                  run_url(tracking_uri, study.experiment_id, parent))


def _print(report: Report) -> None:
    from kerascnn.app.tables import render, terminal_width

    summary = report.summary
    columns = {"group": list(summary["group"]), "n": [str(n) for n in summary["n"]]}
    for name in ("mean", "ci_low", "ci_high", "p_holm"):
        columns[name] = ["-" if v != v else f"{v:.4f}" for v in summary[name]]
    if summary["stalled"].any():
        columns["stalled"] = [str(n) for n in summary["stalled"]]
    print(render(columns, terminal_width(), frozenset(columns)))
    print(f"Report: {report.page}\nOpen it: {report.link} (Artifacts: report/index.html)")


def _parser() -> argparse.ArgumentParser:
    from kerascnn.app.compare import store_options

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Summarise a sweep's runs with 95% intervals and paired tests against a "
                    "baseline; log report/summary.csv and report/index.html to its parent run.")
    parser.add_argument("--parent", metavar="RUN_ID", required=True,
                        help="the sweep's parent run (printed at the end of the sweep)")
    parser.add_argument(
        "--group-by", metavar="KEY[,KEY]",
        help=f"the parameters that make a group (default: {','.join(DEFAULT_KEYS)}, those the "
             "runs have); with model.name, each model is compared with its own baseline")
    parser.add_argument(
        "--baseline", default="max", metavar="VALUE",
        help="the group every other group of the same model is tested against, named by its "
             "values other than the model (default: %(default)s; e.g. pnorm/3)")
    store_options(parser, experiment_default=None,
                  experiment_help="check that the parent run belongs to this experiment")
    parser.add_argument("--include-stalled", action="store_true",
                        help="count stalled runs (tag kerascnn.health=stalled) in means and tests")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `kerascnn-report` command; returns 0, or exits with a one-line error message."""
    args = _parser().parse_args(argv)
    keys = None
    if args.group_by is not None:
        keys = [k.strip() for k in args.group_by.split(",") if k.strip()]
        if not keys:
            raise SystemExit(f"{PROG}: --group-by needs at least one parameter name")
    if not args.baseline.strip():
        raise SystemExit(f"{PROG}: --baseline must name a group, got {args.baseline!r}")
    from mlflow.exceptions import MlflowException

    try:
        report = write_report(args.tracking_uri, args.parent, keys, args.baseline.strip(),
                              args.include_stalled, args.experiment)
    except RunsNotFoundError as error:
        raise SystemExit(f"{PROG}: {error}") from None
    except MlflowException as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise SystemExit(f"{PROG}: {message} ({args.tracking_uri})") from None
    _print(report)
    return 0


def report_after_sweep(tracking_uri: str, parent: str) -> None:
    """The report (default groups and baseline) at the end of a sweep; a report that cannot
    be made is one line, and the sweep's own result stands."""
    try:
        _print(write_report(tracking_uri, parent))
    except Exception as error:  # the sweep has ended; say why there is no report
        print(f"No report: {error} (python -m {PROG} --parent {parent})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
