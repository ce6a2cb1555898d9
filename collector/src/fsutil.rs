//! Small readers for sysfs/procfs-style files, with errors that name the file.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads a whole small file as UTF-8 text.
pub fn read_string(sensor: &'static str, path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(sensor, path, e))?;
    String::from_utf8(bytes).map_err(|_| Error::parse(sensor, path, "not valid UTF-8"))
}

/// Reads a file holding one unsigned decimal integer (trailing newline allowed).
pub fn read_u64(sensor: &'static str, path: &Path) -> Result<u64> {
    let s = read_string(sensor, path)?;
    parse_u64(s.trim()).ok_or_else(|| Error::parse(sensor, path, format!("expected an unsigned integer, found {:?}", truncate(&s, 40))))
}

/// A small counter file kept open between reads: each read is one `pread`
/// at offset 0, which sysfs answers with a fresh value (a third of the cost
/// of open, read and close). On any failure the handle is dropped and the
/// next read opens the path again, so a zone that went away and came back
/// (a driver reload) is picked up.
#[derive(Debug)]
pub struct HeldCounter {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
}

impl HeldCounter {
    pub fn new(path: std::path::PathBuf) -> Self {
        HeldCounter { path, file: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file's unsigned decimal integer.
    pub fn read_u64(&mut self, sensor: &'static str) -> Result<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 32];
        let file = match self.file.take() {
            Some(f) => f,
            None => std::fs::File::open(&self.path).map_err(|e| Error::io(sensor, &self.path, e))?,
        };
        let n = file.read_at(&mut buf, 0).map_err(|e| Error::io(sensor, &self.path, e))?;
        let text = std::str::from_utf8(&buf[..n]).map_err(|_| Error::parse(sensor, &self.path, "not valid UTF-8"))?;
        let v = parse_u64(text.trim()).ok_or_else(|| Error::parse(sensor, &self.path, format!("expected an unsigned integer, found {:?}", truncate(text, 40))))?;
        // A full buffer means a longer file than any counter: not one of ours.
        if n == buf.len() {
            return Err(Error::parse(sensor, &self.path, "longer than any counter value"));
        }
        self.file = Some(file);
        Ok(v)
    }
}

/// Strict: digits only, no sign, fits in u64.
pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("energy_uj");
        std::fs::write(&p, "12345\n").unwrap();
        assert_eq!(read_u64("rapl-powercap", &p).unwrap(), 12345);
        std::fs::write(&p, "-5\n").unwrap();
        let e = read_u64("rapl-powercap", &p).unwrap_err().to_string();
        assert!(e.contains("rapl-powercap") && e.contains("energy_uj") && e.contains("-5"), "{e}");
        let missing = read_u64("rapl-powercap", &dir.path().join("nope")).unwrap_err();
        assert!(missing.is_not_found());
    }

    proptest! {
        #[test]
        fn parse_u64_never_panics(s in ".{0,30}") {
            if let Some(v) = parse_u64(&s) {
                let printed = v.to_string();
                prop_assert_eq!(printed.trim_start_matches('0'), s.trim_start_matches('0'));
            }
        }
    }
}
