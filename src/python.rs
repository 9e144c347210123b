//! The Python module's native half, `reckon._native` (built by maturin with the `python`
//! feature; the Python half is `python/reckon/__init__.py`). It holds no logic of its own: the
//! command line (`python -m reckon`), `reckon run`'s argument parsing, runs, sweeps, reports
//! and the result files' readers are the library's, so Python and the CLI cannot disagree.
//!
//! Long calls (a run, a sweep) work on a thread of their own while the calling thread watches
//! for Ctrl-C: a KeyboardInterrupt asks the run to stop, waits for its teardown, and is raised
//! then, so nothing of the network is left behind.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};

use crate::{record, signals};

create_exception!(
    _native,
    ReckonError,
    PyRuntimeError,
    "A run, sweep or report failed once started (bad input raises ValueError before)."
);

/// The whole command line, `argv[0]` being the program's name (`python -m reckon`).
#[pyfunction]
fn cli(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| crate::cli::main(argv))
}

/// Say how this process runs reckon's command line (`python -m reckon`), for the impairment
/// engine and a sweep's runs.
#[pyfunction]
fn set_self_command(program: PathBuf, args: Vec<String>) {
    crate::SelfCommand::set(crate::SelfCommand { program, args });
}

/// `reckon run`'s parameters: (name, is a switch, is positional, help).
#[pyfunction]
fn run_parameters() -> Vec<(String, bool, bool, String)> {
    crate::cli::run_parameters()
        .into_iter()
        .map(|p| (p.name, p.switch, p.positional, p.help))
        .collect()
}

/// Run `work` on a thread of its own; `on_message` hears what it sends, on this thread. Ctrl-C
/// here asks the work to stop (as reckon's own handler would), waits for it, and is raised.
fn interruptible<T: Send, M: Send>(
    py: Python<'_>,
    work: impl FnOnce(mpsc::Sender<M>) -> T + Send,
    mut on_message: impl FnMut(Python<'_>, M) -> PyResult<()>,
) -> PyResult<T> {
    signals::clear();
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let worker = s.spawn(move || work(tx));
        let mut failure: Option<PyErr> = None;
        loop {
            for m in rx.try_iter() {
                if failure.is_none() {
                    failure = on_message(py, m).err();
                }
            }
            if failure.is_none() {
                failure = py.check_signals().err();
            }
            if failure.is_some() {
                signals::request_stop();
            }
            if worker.is_finished() {
                break;
            }
            py.detach(|| std::thread::sleep(Duration::from_millis(50)));
        }
        let result = worker.join();
        signals::clear();
        if let Some(e) = failure {
            return Err(e);
        }
        result.map_err(|p| {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            ReckonError::new_err(format!("reckon panicked: {what}"))
        })
    })
}

/// Run an experiment; returns (result folder, client errors).
#[pyfunction]
fn run(
    py: Python<'_>,
    prefix: &str,
    argv: Vec<String>,
    progress: bool,
) -> PyResult<(PathBuf, Vec<String>)> {
    crate::cli::init_logging(0);
    let mut spec = crate::cli::parse_run(prefix, &argv)
        .map_err(|e| PyValueError::new_err(format!("{e:#}")))?;
    spec.progress = progress;
    crate::net::require_root().map_err(|e| ReckonError::new_err(e.to_string()))?;
    let outcome = interruptible(
        py,
        |_: mpsc::Sender<()>| crate::run::run(&spec),
        |_, _| Ok(()),
    )?;
    // The run checks its input before it builds anything: that is bad input, not a failure.
    let outcome = outcome.map_err(|e| match e {
        crate::run::RunError::Bad(_) | crate::run::RunError::Results { .. } => {
            PyValueError::new_err(e.to_string())
        }
        _ => ReckonError::new_err(e.to_string()),
    })?;
    Ok((outcome.dir, outcome.client_errors))
}

/// Run a sweep: `plan` is a TOML file's path, or JSON with its fields when `is_json`; `shard`
/// is `i/n`. `progress(k, n, id, params, status)` hears of each run. Returns (id, status) per
/// run.
#[pyfunction]
#[pyo3(signature = (plan, is_json, out, shard, prefix, progress))]
fn sweep(
    py: Python<'_>,
    plan: &str,
    is_json: bool,
    out: PathBuf,
    shard: Option<&str>,
    prefix: &str,
    progress: Py<PyAny>,
) -> PyResult<Vec<(String, String)>> {
    crate::cli::init_logging(0);
    let plan = if is_json {
        crate::sweep::from_json(plan, "sweep plan")
    } else {
        crate::sweep::load(std::path::Path::new(plan))
    }
    .map_err(PyValueError::new_err)?;
    let shard = shard
        .map(crate::sweep::parse_shard)
        .transpose()
        .map_err(PyValueError::new_err)?;
    crate::net::validate_prefix(prefix).map_err(|e| PyValueError::new_err(e.to_string()))?;
    crate::net::require_root().map_err(|e| ReckonError::new_err(e.to_string()))?;
    let bin = crate::SelfCommand::current();
    let columns = plan.columns.clone();
    let done = interruptible(
        py,
        |tx| {
            crate::sweep::run(&plan, &out, shard, &bin, prefix, |k, n, p, status| {
                let params: Vec<(String, String)> = columns
                    .iter()
                    .map(|c| (c.clone(), p.params.get(c).cloned().unwrap_or_default()))
                    .collect();
                let _ = tx.send((k, n, p.id.clone(), params, status.to_string()));
            })
        },
        |py, (k, n, id, params, status)| progress.call1(py, (k, n, id, params, status)).map(|_| ()),
    )?
    .map_err(ReckonError::new_err)?;
    Ok(done.into_iter().map(|d| (d.point.id, d.status)).collect())
}

/// Join shards' results.csv into `out`; returns (path, runs).
#[pyfunction]
fn sweep_merge(dirs: Vec<PathBuf>, out: PathBuf) -> PyResult<(PathBuf, usize)> {
    crate::sweep::merge(&dirs, &out).map_err(PyValueError::new_err)
}

/// Write `<dir>/report.html` for a run or a sweep folder; returns its path.
#[pyfunction]
fn report(py: Python<'_>, dir: PathBuf) -> PyResult<PathBuf> {
    py.detach(|| crate::report::html::report(&dir))
        .map_err(PyValueError::new_err)
}

/// Makes one column's cells into Python values: None when empty, else of the column's type.
/// Text that repeats (clients, kinds, endpoints, errors) is one shared str object.
struct Cells<'py> {
    py: Python<'py>,
    ty: record::Column,
    seen: std::collections::HashMap<String, Bound<'py, PyAny>>,
}

impl<'py> Cells<'py> {
    /// Distinct texts shared per column, at most (keys can be many).
    const SHARED: usize = 4096;

    fn new(py: Python<'py>, ty: record::Column) -> Self {
        Cells {
            py,
            ty,
            seen: Default::default(),
        }
    }

    fn get(&mut self, s: &str) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        if s.is_empty() {
            return Ok(py.None().into_bound(py));
        }
        Ok(match self.ty {
            record::Column::Int => s
                .parse::<i64>()
                .unwrap_or_default()
                .into_pyobject(py)?
                .into_any(),
            record::Column::Float => s
                .parse::<f64>()
                .unwrap_or(f64::NAN)
                .into_pyobject(py)?
                .into_any(),
            record::Column::Bool => PyBool::new(py, s == "true").to_owned().into_any(),
            record::Column::Text => match self.seen.get(s) {
                Some(v) => v.clone(),
                None => {
                    let v = PyString::new(py, s).into_any();
                    if self.seen.len() < Self::SHARED {
                        self.seen.insert(s.to_string(), v.clone());
                    }
                    v
                }
            },
        })
    }
}

/// A CSV file of reckon's (ops.csv, faults.csv, timeseries.csv, results.csv) ready for
/// `pandas.DataFrame`: a list of dicts, one per row, or with `by_column` a dict of lists (far
/// less memory for millions of operations). Each column is typed as a whole (int, float, bool
/// or str; an empty cell is None); columns named in `text` stay str (names such as keys that
/// may look like numbers).
#[pyfunction]
#[pyo3(signature = (path, text = Vec::new(), by_column = false))]
fn read_csv<'py>(
    py: Python<'py>,
    path: PathBuf,
    text: Vec<String>,
    by_column: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let bad = |e: String| PyValueError::new_err(format!("{}: {e}", path.display()));
    let (headers, records) = py
        .detach(|| -> Result<_, String> {
            let mut r = csv::ReaderBuilder::new()
                .flexible(false)
                .from_path(&path)
                .map_err(|e| e.to_string())?;
            let headers: Vec<String> = r
                .headers()
                .map_err(|e| e.to_string())?
                .iter()
                .map(String::from)
                .collect();
            let mut records = Vec::new();
            for rec in r.records() {
                match rec {
                    Ok(rec) => records.push(rec),
                    // A run killed mid-write leaves a partial last line: keep what is whole.
                    Err(e) if matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) => break,
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok((headers, records))
        })
        .map_err(bad)?;
    let types: Vec<record::Column> = (0..headers.len())
        .map(|i| {
            if text.contains(&headers[i]) {
                record::Column::Text
            } else {
                record::column_type(records.iter().map(move |r| r.get(i).unwrap_or("")))
            }
        })
        .collect();
    let names: Vec<Bound<'py, PyString>> =
        headers.iter().map(|h| PyString::intern(py, h)).collect();
    let mut cells: Vec<Cells> = types.iter().map(|t| Cells::new(py, *t)).collect();
    if by_column {
        let columns = PyDict::new(py);
        for (i, (name, c)) in names.iter().zip(&mut cells).enumerate() {
            let values = PyList::empty(py);
            for rec in &records {
                values.append(c.get(rec.get(i).unwrap_or(""))?)?;
            }
            columns.set_item(name, values)?;
        }
        return Ok(columns.into_any());
    }
    let rows = PyList::empty(py);
    for rec in &records {
        let row = PyDict::new(py);
        for ((name, c), s) in names.iter().zip(&mut cells).zip(rec.iter()) {
            row.set_item(name, c.get(s)?)?;
        }
        rows.append(row)?;
    }
    Ok(rows.into_any())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ReckonError", m.py().get_type::<ReckonError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(cli, m)?)?;
    m.add_function(wrap_pyfunction!(set_self_command, m)?)?;
    m.add_function(wrap_pyfunction!(run_parameters, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(sweep_merge, m)?)?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(read_csv, m)?)?;
    Ok(())
}
