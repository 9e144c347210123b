"""reckon from Python: run experiments and sweeps, and load their results.

    import reckon, pandas
    r = reckon.run(system="etcd", topology="wan", fault="partial-partition", duration=10)
    r.summary["longest_gap"]            # seconds without a successful operation
    ops = pandas.DataFrame(r.ops)       # one row per operation
    r.plots["latency"]["png"]           # the plots the run wrote

    s = reckon.sweep("scripts/lossy-etcd.toml", out="results/lossy")
    pandas.DataFrame(s.results)         # one row per run: parameters and summary figures

    reckon.load("results/lossy")        # a Sweep again (or a Run, for a run's folder)

The keyword arguments of `run` are `reckon run`'s flags with `_` for `-` (`link_loss=1` is
`--link-loss 1`); `reckon.parameters()` lists them. It runs in this process and needs what the
command line needs: root, Open vSwitch and the system under test (`reckon doctor` says). Bad
input raises ValueError or TypeError before anything is built; a failure once started raises
ReckonError; Ctrl-C stops the run, tears its network down and raises KeyboardInterrupt.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from . import _native
from ._native import ReckonError

__all__ = [
    "run",
    "sweep",
    "merge",
    "load",
    "report",
    "parameters",
    "Run",
    "Sweep",
    "ReckonError",
]
__version__ = _native.__version__

# A sweep's runs and the impairment engine are processes of their own: they run this module's
# command line with this interpreter, importing this very installation (not a `reckon` folder
# that happens to be in the working directory, as `python -m reckon` could).
_SITE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_native.set_self_command(
    sys.executable,
    ["-c", f"import sys; sys.path.insert(0, {_SITE!r}); from reckon.__main__ import main; main()"],
)

_PARAMS = {
    name: (switch, positional, help)
    for name, switch, positional, help in _native.run_parameters()
}

PathLike = Union[str, os.PathLike]


def parameters() -> dict:
    """`reckon run`'s parameters (the keyword arguments of `run`) and what each means."""
    return {name: help for name, (_, _, help) in _PARAMS.items()}


def _prefix(prefix: Optional[str]) -> str:
    return prefix or os.environ.get("RECKON_PREFIX") or "rk"


def _unknown(name: str, known: Iterable[str], where: str) -> TypeError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return TypeError(
        f"{where} got an unexpected keyword argument {name!r}{hint}; "
        "reckon.parameters() lists them"
    )


def _argv(positional: list, params: dict) -> list:
    argv = [str(p) for p in positional]
    for name, value in params.items():
        if name not in _PARAMS or _PARAMS[name][1]:
            raise _unknown(
                name, [n for n, p in _PARAMS.items() if not p[1]], "reckon.run()"
            )
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if _PARAMS[name][0]:
            if not isinstance(value, bool):
                raise TypeError(f"reckon.run(): {name} is a switch: give True or False")
            if value:
                argv.append(flag)
        else:
            if isinstance(value, bool):
                raise TypeError(f"reckon.run(): {name} takes a value, not {value}")
            argv += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    return argv


def run(
    system: str = "etcd",
    topology: str = "wan",
    workload: str = "uniform",
    fault: str = "none",
    *,
    prefix: Optional[str] = None,
    progress: Optional[bool] = None,
    **params: Any,
) -> "Run":
    """Run one experiment, as `reckon run <system> <topology> <workload> <fault> [flags]`.

    `params` are `reckon run`'s flags with `_` for `-` (duration=10, link_loss=1,
    result_location="results/x", allow_no_quorum=True, ...; None leaves the default).
    `prefix` names everything the run creates (default `RECKON_PREFIX` or `rk`); `progress`
    shows a progress bar on stderr (default: when stderr is a terminal). Returns the Run.
    """
    argv = _argv([system, topology, workload, fault], params)
    if progress is None:
        progress = sys.stderr.isatty()
    folder, client_errors = _native.run(_prefix(prefix), argv, bool(progress))
    r = Run(folder)
    r.client_errors = list(client_errors)
    return r


def _print_progress(k: int, n: int, run_id: str, params: list, status: str) -> None:
    shown = " ".join(f"{k}={v}" for k, v in params[:4])
    print(f"[{k}/{n}] {run_id} {shown}: {status}", file=sys.stderr, flush=True)


def sweep(
    plan: Union[PathLike, dict],
    *,
    out: Optional[PathLike] = None,
    shard: Union[str, tuple, None] = None,
    prefix: Optional[str] = None,
    progress: Union[bool, Callable, None] = None,
) -> "Sweep":
    """Run a sweep plan, as `reckon sweep`: every point of its grid `repeats` times, each run a
    process of its own into `<out>/runs/<id>/`, and `<out>/results.csv`. Re-running into the
    same `out` skips finished runs.

    `plan` is a plan file (TOML) or a dict with its fields: {"repeats": 3, "fixed": {...},
    "grid": {"link_loss": [0, 1, 2]}}. `out` defaults to results/sweep-<plan file's name>
    (give it for a dict). `shard` is "i/n" or (i, n): run only the i-th of n slices.
    `progress`: None or True prints a line per run on stderr, False nothing, or a callable
    `progress(k, n, run_id, params, status)`. Returns the Sweep (its `statuses` say what
    happened to each run: "ok", "done before" or "failed: ...").
    """
    if isinstance(plan, dict):
        if out is None:
            raise TypeError(
                "reckon.sweep(): give out= (the sweep's folder) with a dict plan; "
                "running into the same folder again resumes"
            )
        text, is_json = json.dumps(plan), True
    else:
        path = Path(plan)
        text, is_json = str(path), False
        if out is None:
            out = Path("results") / f"sweep-{path.stem}"
    if isinstance(shard, tuple):
        shard = "/".join(str(x) for x in shard)
    if progress is None or progress is True:
        callback = _print_progress
    elif progress is False:
        callback = lambda *_: None  # noqa: E731
    else:
        callback = progress
    statuses = _native.sweep(
        text, is_json, os.fspath(out), shard, _prefix(prefix), callback
    )
    s = Sweep(out)
    s.statuses = dict(statuses)
    return s


def merge(dirs: Iterable[PathLike], out: PathLike) -> "Sweep":
    """Join the results.csv of several shards' folders into `out`, as `reckon sweep merge`."""
    _native.sweep_merge([os.fspath(d) for d in dirs], os.fspath(out))
    return Sweep(out)


def report(folder: PathLike) -> Path:
    """Write `<folder>/report.html` for a run or a sweep, as `reckon report`; its path."""
    return Path(_native.report(os.fspath(folder)))


def load(folder: PathLike) -> Union["Run", "Sweep"]:
    """The results in `folder`: a Sweep for a sweep's folder (results.csv), else a Run (a run
    killed before its summary still has its ops)."""
    d = Path(folder)
    if (d / "results.csv").exists() and not (d / "summary.json").exists():
        return Sweep(d)
    if (d / "summary.json").exists() or (d / "ops.csv").exists():
        return Run(d)
    raise ValueError(
        f"{d}: no results here (no summary.json, ops.csv or results.csv); give the folder "
        "of a `reckon run` or `reckon sweep`"
    )


def _json(path: Path) -> Optional[dict]:
    if not path.exists():
        return None
    with open(path) as f:
        return json.load(f)


class Run:
    """A run's result folder. Tables are lists of dicts (one per row, typed columns, None for
    an empty cell): `pandas.DataFrame(run.ops)`."""

    _TABLES = ("ops", "faults", "timeseries")
    # Columns that are names, whatever they look like (keys are "0", "1" with max_key 1).
    _TEXT = {"ops": ["client", "kind", "key", "error", "target"], "faults": ["action", "targets", "error"]}

    def __init__(self, folder: PathLike):
        self.dir = Path(folder)
        self.client_errors: list = []
        self._cache: dict = {}

    def table(self, name: str, columns: bool = False) -> Union[list, dict]:
        """The table `name` ("ops", "faults" or "timeseries") as a list of dicts, one per row,
        or with `columns=True` as a dict of lists (far less memory for millions of
        operations); `pandas.DataFrame` takes either. Empty if the run wrote none."""
        if name not in self._TABLES:
            raise ValueError(f"table {name!r}: give one of {', '.join(self._TABLES)}")
        key = (name, columns)
        if key not in self._cache:
            path = self.dir / f"{name}.csv"
            self._cache[key] = (
                _native.read_csv(os.fspath(path), self._TEXT.get(name, []), columns)
                if path.exists()
                else ({} if columns else [])
            )
        return self._cache[key]

    @property
    def summary(self) -> Optional[dict]:
        """summary.json: throughput, latency percentiles (ms) overall and per phase, errors by
        kind, the longest gap between successes (s), recovery after each fault event;
        `interrupted` if it was stopped early (its `duration` is then what it covers). None if
        the run was killed before it was written."""
        if "summary" not in self._cache:
            self._cache["summary"] = _json(self.dir / "summary.json")
        return self._cache["summary"]

    @property
    def config(self) -> dict:
        """config.json: every resolved parameter, the seed and the versions."""
        if "config" not in self._cache:
            self._cache["config"] = _json(self.dir / "config.json") or {}
        return self._cache["config"]

    @property
    def ops(self) -> list:
        """ops.csv, a row per operation: n, client, kind, key, intended, sent, done (seconds
        from the start), ok, error, target. Latency is done - intended."""
        return self.table("ops")

    @property
    def faults(self) -> list:
        """faults.csv, a row per fault event: event, action, targets, scheduled, applied, error."""
        return self.table("faults")

    @property
    def timeseries(self) -> list:
        """timeseries.csv, a row per 100 ms: ok, errors and latency."""
        return self.table("timeseries")

    @property
    def plots(self) -> dict:
        """The plots written: {"latency": {"png": Path, "svg": Path}, "throughput": ..., "cdf": ...}."""
        out = {}
        for name in ("latency", "throughput", "cdf"):
            files = {ext: self.dir / f"{name}.{ext}" for ext in ("png", "svg")}
            files = {ext: p for ext, p in files.items() if p.exists()}
            if files:
                out[name] = files
        return out

    @property
    def histograms(self) -> dict:
        """The HdrHistogram percentile files: {"latency-all": Path, ...}."""
        return {p.stem: p for p in sorted(self.dir.glob("latency-*.hgrm"))}

    @property
    def logs(self) -> dict:
        """Every node's output: {"h1": Path, ...}."""
        return {p.stem: p for p in sorted((self.dir / "logs").glob("*.log"))}

    def report(self) -> Path:
        """Write report.html (self-contained) and return its path."""
        return report(self.dir)

    def __repr__(self) -> str:
        s = self.summary
        c = self.config
        what = "/".join(
            str(x)
            for x in (
                c.get("system", "?"),
                (c.get("topology") or {}).get("name", "?"),
                (c.get("workload") or {}).get("name", "?"),
                (c.get("fault") or {}).get("name", "?"),
            )
        )
        if s is None:
            return f"<reckon.Run {what} in {self.dir}: no summary (killed?), {len(self.ops)} ops>"
        stopped = f", interrupted at {s['duration']:.1f} s" if s.get("interrupted") else ""
        return (
            f"<reckon.Run {what} in {self.dir}{stopped}: {s['ops']} ops, {s['ok']} ok, "
            f"{s['throughput']:.1f} ok/s, p99 {s['latency_ms']['p99']:.1f} ms, "
            f"longest gap {s['longest_gap']:.3f} s>"
        )


class Sweep:
    """A sweep's folder: `results` is results.csv (a row per run, parameters and summary
    figures: `pandas.DataFrame(sweep.results)`), `runs` each run's Run."""

    def __init__(self, folder: PathLike):
        self.dir = Path(folder)
        self.statuses: dict = {}
        self._results: Optional[list] = None

    @property
    def results(self) -> list:
        if self._results is None:
            path = self.dir / "results.csv"
            self._results = (
                _native.read_csv(os.fspath(path), ["id", "status"]) if path.exists() else []
            )
        return self._results

    @property
    def runs(self) -> dict:
        """{run id: Run} for every run folder that holds results."""
        runs = self.dir / "runs"
        if not runs.is_dir():
            return {}
        return {
            d.name: Run(d)
            for d in sorted(runs.iterdir())
            if (d / "summary.json").exists() or (d / "ops.csv").exists()
        }

    def report(self) -> Path:
        """Write the sweep's report.html (figures against the varying parameter, runs table)."""
        return report(self.dir)

    def __repr__(self) -> str:
        rows = self.results
        ok = sum(1 for r in rows if r.get("status") == "ok")
        return f"<reckon.Sweep in {self.dir}: {len(rows)} runs, {ok} ok>"
