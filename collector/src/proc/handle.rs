//! What [`super::ProcReader`] keeps about one process between ticks: its
//! files, held open on a real procfs, and which threads are vCPUs.
//!
//! Re-reading an open procfs file with `pread` costs a fraction of
//! open+read+close, and a file held open belongs to its process for good:
//! once that process exits, reads fail with ESRCH even if the PID is reused.
//! On other filesystems (fixture trees) deleted files stay readable, so
//! there files are opened by path on every read.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// A file read once per tick.
pub(super) enum Src {
    Held(File, PathBuf),
    Path(PathBuf),
}

impl Src {
    pub fn open(path: PathBuf, hold: bool) -> io::Result<Src> {
        if hold { File::open(&path).map(|f| Src::Held(f, path)) } else { Ok(Src::Path(path)) }
    }

    pub fn path(&self) -> &std::path::Path {
        match self {
            Src::Held(_, p) | Src::Path(p) => p,
        }
    }

    pub fn is_held(&self) -> bool {
        matches!(self, Src::Held(..))
    }

    pub fn unhold(&mut self) {
        if let Src::Held(_, p) = self {
            *self = Src::Path(std::mem::take(p));
        }
    }

    /// Reads the whole file from its start into `buf`; returns its length.
    /// `buf` is only grown, never shrunk, so steady-state reads do not allocate.
    pub fn read(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Src::Path(p) => {
                buf.clear();
                File::open(p)?.read_to_end(buf)
            }
            Src::Held(f, _) => {
                if buf.len() < 4096 {
                    buf.resize(4096, 0);
                }
                let mut n = 0;
                loop {
                    let got = f.read_at(&mut buf[n..], n as u64)?;
                    n += got;
                    // procfs returns a whole record per read, so a short
                    // read is the end; saves the read that would return 0.
                    if n < buf.len() {
                        return Ok(n);
                    }
                    let grown = buf.len() * 2;
                    buf.resize(grown, 0);
                }
            }
        }
    }
}

/// A vCPU thread's CPU time source.
pub(super) struct Vcpu {
    pub tid: u32,
    pub src: Src,
    /// `src` is `schedstat` (run time in ns) rather than `stat` (clock ticks).
    pub schedstat: bool,
}

pub(super) struct Handle {
    pub start_time_ticks: u64,
    pub stat: Src,
    /// `None` once the file proved unreadable (another user's process without root) or absent.
    pub io: Option<Src>,
    pub num_threads: u64,
    pub threads: Vec<u32>,
    pub vcpus: Vec<Vcpu>,
    pub non_vcpu: HashSet<u32>,
    pub reads: u32,
    /// Reused by every read of this process.
    pub buf: Vec<u8>,
}

impl Handle {
    pub fn new(stat: Src, io: Option<Src>) -> Self {
        Handle { start_time_ticks: 0, stat, io, num_threads: 0, threads: Vec::new(), vcpus: Vec::new(), non_vcpu: HashSet::new(), reads: 0, buf: Vec::new() }
    }

    /// File descriptors this handle keeps open.
    pub fn fds(&self) -> usize {
        usize::from(self.stat.is_held()) + self.io.as_ref().map_or(0, |s| usize::from(s.is_held())) + self.vcpus.iter().filter(|v| v.src.is_held()).count()
    }

    /// Closes the files, keeping the paths, when the descriptor budget is spent.
    pub fn unhold(&mut self) {
        self.stat.unhold();
        if let Some(io) = &mut self.io {
            io.unhold();
        }
        for v in &mut self.vcpus {
            v.src.unhold();
        }
    }

    /// Forgets the threads, as when a PID turns out to be a new process.
    pub fn reset_threads(&mut self) {
        self.threads.clear();
        self.vcpus.clear();
        self.non_vcpu.clear();
        self.num_threads = 0;
        self.reads = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_reads_see_rewrites_and_grow_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let big: String = (0..2000).map(|i| format!("{i} ")).collect();
        std::fs::write(&p, &big).unwrap();
        let src = Src::open(p.clone(), true).unwrap();
        let mut buf = Vec::new();
        let n = src.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], big.as_bytes());
        std::fs::write(&p, "short\n").unwrap();
        let n = src.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"short\n");
        let mut path_src = Src::open(p, true).unwrap();
        path_src.unhold();
        assert!(!path_src.is_held());
        let n = path_src.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"short\n");
    }
}
