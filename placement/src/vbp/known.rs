//! The benchmark's per-instance reference results (`*_summary_known.csv`):
//! the published lower bound, the optimum where an exact solver proved one,
//! and the best result of the paper's heuristics, against which our own
//! heuristics' gaps are measured.

use std::collections::HashMap;
use std::path::Path;

use super::VbpError;

/// Reference values of one instance, in bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// Published lower bound.
    pub lb: u64,
    /// Proven optimum; `None` where the file has `-1` or nothing (unknown).
    pub opt: Option<u64>,
    /// Best number of bins of any heuristic in the paper; `None` when absent.
    pub best_overall: Option<u64>,
}

/// Reads a TAB-separated summary with a header naming at least
/// `instance_name`, `LB`, `OPT` and `best_overall` (in any order; other
/// columns, such as the per-algorithm bests, are ignored).
pub fn known(path: &Path) -> Result<HashMap<String, Known>, VbpError> {
    let p = path.display().to_string();
    let csv_err = |source| VbpError::Csv { path: p.clone(), source };
    let mut reader = csv::ReaderBuilder::new().delimiter(b'\t').flexible(true).from_path(path).map_err(csv_err)?;
    let header = reader.headers().map_err(csv_err)?.clone();
    let column = |name: &str| {
        header.iter().position(|h| h.trim() == name).ok_or_else(|| VbpError::CsvRow { path: p.clone(), line: 1, problem: format!("no {name} column in the header") })
    };
    let (c_name, c_lb, c_opt, c_best) = (column("instance_name")?, column("LB")?, column("OPT")?, column("best_overall")?);

    let mut out = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |pos| pos.line());
        let row_err = |problem: String| VbpError::CsvRow { path: p.clone(), line, problem };
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let field = |c: usize, what: &str| record.get(c).map(str::trim).ok_or_else(|| row_err(format!("no {what} column")));
        // -1 is how the benchmark writes "not known"; empty means the same.
        let optional = |c: usize, what: &str| -> Result<Option<u64>, VbpError> {
            match field(c, what)? {
                "" | "-1" => Ok(None),
                f => f.parse().map(Some).map_err(|_| row_err(format!("{what} {f:?} is not a bin count"))),
            }
        };
        let name = field(c_name, "instance_name")?;
        if name.is_empty() {
            return Err(row_err("empty instance_name".into()));
        }
        let lb_text = field(c_lb, "LB")?;
        let lb = lb_text.parse().map_err(|_| row_err(format!("LB {lb_text:?} is not a bin count")))?;
        let k = Known { lb, opt: optional(c_opt, "OPT")?, best_overall: optional(c_best, "best_overall")? };
        if k.opt.is_some_and(|o| o < lb) {
            return Err(row_err(format!("OPT {} is below LB {lb}", k.opt.unwrap_or(0))));
        }
        if out.insert(name.to_string(), k).is_some() {
            return Err(row_err(format!("instance {name} appears twice")));
        }
    }
    Ok(out)
}
