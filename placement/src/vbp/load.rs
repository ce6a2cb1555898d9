//! Reading `.vbp` instances: one text, a directory tree of files, or the
//! benchmark's `.tar.gz` archives, read in place so the data never needs
//! unpacking (and so never lands in the repository by accident).

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::{Instance, VbpError};

/// Parses one `.vbp` text. `name` is used as the instance name and in error
/// messages. Blank lines are ignored (files end with one); anything else out
/// of shape is an error naming its line, because a silently mis-read
/// instance would give a wrong gap rather than a visible failure.
pub fn parse(name: &str, text: &str) -> Result<Instance, VbpError> {
    let err = |line: usize, problem: String| VbpError::Parse { name: name.to_string(), line, problem };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty());
    let mut next = |what: &str| lines.next().ok_or_else(|| err(text.lines().count().max(1), format!("file ends before the {what}")));
    let number = |line: usize, field: &str, what: &str| {
        field.parse::<u64>().map_err(|_| err(line, format!("{what} {field:?} is not a non-negative integer")))
    };
    let signed = |line: usize, field: &str| field.parse::<i64>().map_err(|_| err(line, format!("size {field:?} is not an integer")));

    let (l, dims_text) = next("number of dimensions")?;
    let fields: Vec<&str> = dims_text.split_whitespace().collect();
    if fields.len() != 1 {
        return Err(err(l, format!("expected the number of dimensions alone, found {} fields", fields.len())));
    }
    let dims = number(l, fields[0], "number of dimensions")? as usize;
    if dims == 0 {
        return Err(err(l, "zero dimensions".into()));
    }

    let (l, caps_text) = next("capacities")?;
    let fields: Vec<&str> = caps_text.split_whitespace().collect();
    if fields.len() != dims {
        return Err(err(l, format!("expected {dims} capacities, found {}", fields.len())));
    }
    let capacities = fields.iter().map(|f| number(l, f, "capacity")).collect::<Result<Vec<_>, _>>()?;
    if let Some(k) = capacities.iter().position(|&c| c == 0) {
        return Err(err(l, format!("capacity of dimension {} is 0", k + 1)));
    }
    // Loads are summed as i64: a capacity beyond that could not be compared.
    if let Some(c) = capacities.iter().find(|&&c| i64::try_from(c).is_err()) {
        return Err(err(l, format!("capacity {c} is too large")));
    }

    let (l, count_text) = next("item count")?;
    let fields: Vec<&str> = count_text.split_whitespace().collect();
    if fields.len() != 1 {
        return Err(err(l, format!("expected the item count alone, found {} fields", fields.len())));
    }
    let count = number(l, fields[0], "item count")? as usize;

    let mut items = Vec::with_capacity(count.min(1 << 16));
    for (l, item_text) in lines.by_ref() {
        if items.len() == count {
            return Err(err(l, format!("item count mismatch: line 3 says {count} items, found more")));
        }
        let fields: Vec<&str> = item_text.split_whitespace().collect();
        if fields.len() != dims + 1 {
            return Err(err(l, format!("expected {dims} sizes and a multiplicity ({} columns), found {}", dims + 1, fields.len())));
        }
        let size = fields[..dims].iter().map(|f| signed(l, f)).collect::<Result<Vec<_>, _>>()?;
        if let Some(k) = (0..dims).find(|&k| size[k] > capacities[k] as i64) {
            return Err(err(l, format!("item larger than the bin: size {} > capacity {} in dimension {}", size[k], capacities[k], k + 1)));
        }
        let m = number(l, fields[dims], "multiplicity")?;
        let m = u32::try_from(m).map_err(|_| err(l, format!("multiplicity {m} is too large")))?;
        if m == 0 {
            return Err(err(l, "multiplicity 0".into()));
        }
        items.push((size, m));
    }
    if items.len() != count {
        let last = text.lines().count().max(1);
        return Err(err(last, format!("item count mismatch: line 3 says {count} items, found {}", items.len())));
    }
    Ok(Instance { set: String::new(), name: name.to_string(), capacities, items })
}

/// The benchmark set of a file or folder name: the part before `_instances`
/// (`New_instances.tar.gz` and `New_instances_multidim` give `New`), else
/// the name without its extension.
pub fn set_name(file_name: &str) -> String {
    if let Some(i) = file_name.find("_instances") {
        return file_name[..i].to_string();
    }
    let stem = file_name.strip_suffix(".tar.gz").or_else(|| file_name.strip_suffix(".tgz"));
    stem.unwrap_or_else(|| file_name.split('.').next().unwrap_or(file_name)).to_string()
}

/// Parses with errors naming the file's path, the instance named by its stem.
fn parse_named(path: &str, name: &str, text: &str) -> Result<Instance, VbpError> {
    let mut i = parse(path, text)?;
    i.name = name.to_string();
    Ok(i)
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn is_vbp(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "vbp")
}

/// Sorts by name (archive and directory order are arbitrary, and results
/// should not depend on them) and refuses duplicate names.
fn finish(path: &Path, set: String, mut out: Vec<Instance>) -> Result<Vec<Instance>, VbpError> {
    out.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen = HashSet::new();
    for i in &mut out {
        if !seen.insert(i.name.clone()) {
            return Err(VbpError::Duplicate { path: path.display().to_string(), name: i.name.clone() });
        }
        i.set.clone_from(&set);
    }
    Ok(out)
}

/// Every `.vbp` file in a `.tar.gz` archive (other entries are skipped),
/// named by file stem, with the set named after the archive.
pub fn load_tarball(path: &Path) -> Result<Vec<Instance>, VbpError> {
    let io = |source| VbpError::Io { path: path.display().to_string(), source };
    let file = File::open(path).map_err(io)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let entry_path = entry.path().map_err(io)?.into_owned();
        if !entry.header().entry_type().is_file() || !is_vbp(&entry_path) {
            continue;
        }
        let inner = format!("{}!{}", path.display(), entry_path.display());
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|source| VbpError::Io { path: inner.clone(), source })?;
        let text = String::from_utf8(bytes).map_err(|_| VbpError::NotText { path: inner.clone() })?;
        out.push(parse_named(&inner, &stem(&entry_path), &text)?);
    }
    let set = set_name(&path.file_name().unwrap_or_default().to_string_lossy());
    finish(path, set, out)
}

/// Every `.vbp` file under a directory, recursively (the archives hold one
/// folder per family), with the set named after the directory.
pub fn load_dir(dir: &Path) -> Result<Vec<Instance>, VbpError> {
    fn walk(dir: &Path, out: &mut Vec<Instance>) -> Result<(), VbpError> {
        let io = |source| VbpError::Io { path: dir.display().to_string(), source };
        let mut entries = std::fs::read_dir(dir).map_err(io)?.map(|e| e.map(|e| e.path())).collect::<Result<Vec<_>, _>>().map_err(io)?;
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if is_vbp(&p) {
                let bytes = std::fs::read(&p).map_err(|source| VbpError::Io { path: p.display().to_string(), source })?;
                let text = String::from_utf8(bytes).map_err(|_| VbpError::NotText { path: p.display().to_string() })?;
                out.push(parse_named(&p.display().to_string(), &stem(&p), &text)?);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    let set = set_name(&dir.file_name().unwrap_or_default().to_string_lossy());
    finish(dir, set, out)
}
