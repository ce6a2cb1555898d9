//! Vector bin packing: how far the crate's packing heuristics are from the
//! optimum, measured on the public benchmark of Vectorpack's
//! experiments_vector_paper ("Classification and evaluation of the
//! algorithms for vector bin packing", Computers & OR 2024).
//!
//! VM placement is vector bin packing (CPU, memory, ... per host), and a
//! heuristic's energy saving is bounded by how many hosts it leaves on. This
//! module is self-contained on purpose: it packs abstract integer vectors,
//! not `model` hosts, so that its numbers compare one-to-one with the
//! published lower bounds, optima and best heuristic results.
//!
//! - [`parse`], [`load_tarball`], [`load_dir`]: `.vbp` instances (line 1 the
//!   number of dimensions, line 2 the capacities, line 3 the number of item
//!   lines, then `size_1 .. size_d multiplicity` per line).
//! - [`known()`]: the benchmark's `*_summary_known.csv` (LB, OPT, best result).
//! - [`pack()`] with a [`Heuristic`]: first / best fit decreasing under three
//!   size measures, and Panigrahy et al.'s bin-centric DotProduct and L2;
//!   [`check`] verifies a packing, [`trivial_lower_bound`] bounds it.
//! - [`evaluate`]: gaps to OPT, to the lower bound and to the best published
//!   heuristic, per benchmark set and instance family.

use thiserror::Error;

mod eval;
mod known;
mod load;
mod pack;
#[cfg(test)]
mod tests;

pub use eval::{FamilyGap, InstanceResult, best_of, evaluate, evaluate_with, markdown_table, solve, summarise};
pub use known::{Known, known};
pub use load::{load_dir, load_tarball, parse, set_name};
pub use pack::{Heuristic, Measure, Packing, check, pack, trivial_lower_bound};

/// One vector bin packing instance: identical bins of `capacities`, and
/// item types, each a size vector with how many copies of it there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Benchmark set the instance comes from ("New", "Panigrahy",
    /// "Triplet"), empty when parsed on its own. Kept because instance names
    /// repeat across sets (both New and Panigrahy have `class1_20_3_0`).
    pub set: String,
    /// The file stem, e.g. `class2_120_3_1`; the key of the summary CSVs.
    pub name: String,
    /// Capacity of every bin, per dimension (at least one; all > 0).
    pub capacities: Vec<u64>,
    /// Item types: size per dimension (each <= the capacity) and
    /// multiplicity (> 0). Sizes are signed because the benchmark has
    /// negative ones: the Caprara triplets are three items whose sizes sum
    /// to exactly the capacity, and the third comes out at -1 or -2 when
    /// the first two exceed it. A bin is feasible when its summed load
    /// stays within capacity, negative items included.
    pub items: Vec<(Vec<i64>, u32)>,
}

impl Instance {
    /// Number of dimensions.
    pub fn dims(&self) -> usize {
        self.capacities.len()
    }

    /// Number of items counting multiplicities: the length of a [`Packing`]'s assignment.
    pub fn copies(&self) -> usize {
        self.items.iter().map(|(_, m)| *m as usize).sum()
    }

    /// The instance family: the name up to its first `_` (`class1`,
    /// `classC`, ...). The benchmark generates each family from one
    /// distribution, so gaps are meaningful per family rather than per file.
    pub fn family(&self) -> &str {
        self.name.split('_').next().unwrap_or(&self.name)
    }

    /// Item type of every copy, in assignment order: the copies of item
    /// type 0 first, then those of type 1, and so on.
    pub fn copy_types(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.copies());
        for (t, (_, m)) in self.items.iter().enumerate() {
            out.extend(std::iter::repeat_n(t, *m as usize));
        }
        out
    }
}

/// Everything that can go wrong reading, packing or evaluating instances.
/// Messages name the file (and line) so a bad benchmark file can be found.
#[derive(Debug, Error)]
pub enum VbpError {
    /// A `.vbp` text that does not follow the format.
    #[error("{name}, line {line}: {problem}")]
    Parse { name: String, line: usize, problem: String },
    /// A file or directory that could not be read.
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A file that is not UTF-8 text.
    #[error("{path}: not UTF-8 text")]
    NotText { path: String },
    /// Two instances of the same name in one set: the summary CSV could not
    /// tell them apart.
    #[error("{path}: instance {name} appears twice")]
    Duplicate { path: String, name: String },
    /// The summary CSV could not be read as CSV.
    #[error("{path}: {source}")]
    Csv {
        path: String,
        #[source]
        source: csv::Error,
    },
    /// A summary CSV row or header with a missing column or a bad number.
    #[error("{path}, line {line}: {problem}")]
    CsvRow { path: String, line: u64, problem: String },
    /// A packing that is not a valid solution of its instance.
    #[error("{name}: infeasible packing: {problem}")]
    Infeasible { name: String, problem: String },
    /// [`evaluate`] was given instances of several sets, whose names the
    /// one summary table cannot tell apart.
    #[error("instances from several benchmark sets ({0} and {1}): evaluate one set at a time")]
    MixedSets(String, String),
}
