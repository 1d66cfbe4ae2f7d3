"""The comparison tables as people read them in a terminal, laid out by ``rich``.

Numbers are rounded (4 decimals for metrics, thousands separators for a model size), ``-``
stands for no value, and a grouped table shows ``mean ± std``. Columns whose value is the same
in every row (the model size, the epochs) move to a last line (``all runs: ...``). The table fits
the given width: rich folds the long headers and parameter values inside their columns, and
keeps the rank, the run and the numbers on one line.
"""

from __future__ import annotations

import io
import math
import re

import pandas as pd

from kerascnn.app.runs_query import CURVE_METRIC, FINAL_METRICS, NUM_PARAMS

__all__ = ["WIDTH", "format_table", "terminal_width"]

WIDTH = 100  # the columns a table fits when the terminal's width is unknown
# Short headers for the printed table (the DataFrame keeps MLflow's names).
HEADERS = {"test_accuracy": "test_acc", "test_error": "test_err", "val_accuracy": "val_acc",
           "best_val_accuracy": "best_val_acc", NUM_PARAMS: "params", "run_id": "run id"}
_NUMERIC = {*FINAL_METRICS, CURVE_METRIC, f"best_{CURVE_METRIC}", "epochs", NUM_PARAMS}
_NUMBER = re.compile(r"-?[\d,]+(\.\d+)?( ± \d+(\.\d+)?)?")


def terminal_width() -> int:
    """The terminal's columns (``$COLUMNS`` first), else :data:`WIDTH`."""
    import shutil

    return shutil.get_terminal_size((WIDTH, 24)).columns


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value, digits: int | None) -> str:
    if _missing(value):
        return "-"
    if digits == -1 and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{int(value):,}"  # a count of weights: 1,369,738
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if digits is None:  # a parameter: as logged, whole numbers without a point
        return f"{int(value)}" if float(value).is_integer() else f"{value:g}"
    return f"{value:.{digits}f}"


def _digits(name: str) -> int | None:
    """Decimals for a column: 4 for metrics, 0 for counts, -1 for thousands separators."""
    if name not in _NUMERIC:
        return None
    if name == "epochs":
        return 0
    return -1 if name == NUM_PARAMS else 4


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _columns(table: pd.DataFrame) -> tuple[dict[str, list[str]], list[str]]:
    """The shown columns (header -> cells) and the ``all runs`` line's parts."""
    grouped = "keys" in table.attrs
    shown: dict[str, list[str]] = {"#": [str(i) for i in table.index]}
    if grouped:
        for key in table.attrs["keys"]:
            shown[key] = [_cell(v, None) for v in table[key]]
        shown["n"] = [str(n) for n in table["n"]]
        if "stalled" in table and table["stalled"].any():
            shown["stalled"] = [str(n) for n in table["stalled"]]
        skip = {*table.attrs["keys"], "n", "stalled"}
        names = [c for c in table.columns if c not in skip and not c.endswith("_std")]
    else:
        # A sweep's children are named by their overrides, which the parameter columns show.
        if not all("=" in str(v) for v in table["run"]):
            shown["run"] = [_shorten(str(v), 28) for v in table["run"]]
        shown["run id"] = [str(v)[:8] for v in table["run_id"]]
        if "health" in table and table["health"].eq("stalled").any():
            shown["health"] = [_cell(v, None) for v in table["health"]]
        names = [c for c in table.columns if c not in ("run", "run_id", "health")]
    # The status and metrics first, then the parameters that differ, then the model size.
    order = ["status", *FINAL_METRICS, CURVE_METRIC, f"best_{CURVE_METRIC}", "epochs"]
    names = ([n for n in order if n in names]
             + [n for n in names if n not in order and n != NUM_PARAMS]
             + [n for n in names if n == NUM_PARAMS])
    if ("test_accuracy" in names and "test_error" in names
            and table.attrs.get("metric") != "test_error"):
        names.remove("test_error")  # 1 - test_accuracy
    common: list[str] = []
    for name in names:
        digits = _digits(name)
        if grouped:
            stds = table[f"{name}_std"] if f"{name}_std" in table else [math.nan] * len(table)
            cells = [_cell(m, digits) + ("" if pd.isna(sd) or digits == 0
                                          else f" ± {_cell(sd, digits)}")
                     for m, sd in zip(table[name], stds, strict=True)]
        else:
            cells = [_cell(None if pd.isna(v) else v, digits) for v in table[name]]
        header = HEADERS.get(name, name)
        if name in (NUM_PARAMS, "epochs") and len(set(cells)) == 1 and len(cells) > 1:
            common.append(f"{cells[0]} {header[:-1] if cells[0] == '1' else header}")
            continue
        shown[header] = cells
    return shown, common


def render(columns: dict[str, list[str]], width: int, fixed: frozenset = frozenset()) -> str:
    """Aligned columns (numbers right, text left) within `width`, by ``rich``.

    The `fixed` columns keep each cell on one line; the others fold when the table is too
    wide (a long dotted header over several lines).
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=None, show_edge=False, pad_edge=False, header_style=None,
                 padding=(0, 2, 0, 0))
    for name, cells in columns.items():
        numeric = all(c == "-" or _NUMBER.fullmatch(c) for c in cells)
        grid.add_column(Text(name), justify="right" if numeric else "left",
                        no_wrap=name in fixed, overflow="fold")
    for row in zip(*columns.values(), strict=True):
        grid.add_row(*(Text(cell) for cell in row))
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False, emoji=False,
            markup=False, soft_wrap=False).print(grid)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()).strip("\n")


def _blocks(columns: dict[str, list[str]], lead: list[str], fixed: frozenset,
            width: int) -> list[list[str]]:
    """The non-lead columns in groups that fit `width` beside the lead columns.

    A column needs its widest cell, and a folding header at least :data:`_FOLDED` columns.
    Most tables are one group; a table wider than the terminal even with folded headers
    continues below, the lead columns repeated.
    """
    def need(name: str) -> int:
        cells = max(len(c) for c in columns[name])
        header = len(name) if name in fixed else min(len(name), _FOLDED)
        return max(cells, header) + 2

    used_by_lead = sum(need(n) for n in lead)
    blocks: list[list[str]] = [[]]
    used = used_by_lead
    for name in (n for n in columns if n not in lead):
        if blocks[-1] and used + need(name) > width:
            blocks.append([])
            used = used_by_lead
        blocks[-1].append(name)
        used += need(name)
    return blocks


_FOLDED = 10  # the narrowest a folding header becomes


def format_table(table: pd.DataFrame, width: int = WIDTH) -> str:
    """The table as people read it: rounded, ``-`` for no value, at most `width` columns.

    Takes a `compare_runs` or a `group_runs` table. Stalled runs show in a ``health`` column
    (a grouped table counts them in ``stalled``) when there are any.
    """
    shown, common = _columns(table)
    fixed = {"#", "run", "run id", "n", "stalled", "health", "status",
             *(HEADERS.get(n, n) for n in _NUMERIC)}
    lead = [n for n in ("#", *table.attrs.get("keys", ()), "run", "run id") if n in shown]
    fixed = frozenset(fixed)
    text = "\n\n".join(
        render({n: shown[n] for n in (*lead, *block)}, width, fixed)
        for block in _blocks(shown, lead, fixed, width))
    if common:
        text += f"\n{'all groups' if 'keys' in table.attrs else 'all runs'}: {', '.join(common)}"
    return text
