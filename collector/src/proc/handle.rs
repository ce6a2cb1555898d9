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

    /// The whole file, from the start, into `buf`.
    pub fn read(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        match self {
            Src::Path(p) => File::open(p)?.read_to_end(buf).map(|_| ()),
            Src::Held(f, _) => {
                loop {
                    let len = buf.len();
                    if buf.capacity() - len < 1024 {
                        buf.reserve(len.max(4096));
                    }
                    let want = buf.capacity() - len;
                    buf.resize(len + want, 0);
                    let n = f.read_at(&mut buf[len..], len as u64)?;
                    buf.truncate(len + n);
                    // procfs returns a whole record per read, so a short
                    // read is the end; saves the read that would return 0.
                    if n < want {
                        return Ok(());
                    }
                }
            }
        }
    }
}

pub(super) struct Handle {
    pub start_time_ticks: u64,
    pub stat: Src,
    /// `None` once the file proved unreadable (another user's process without root) or absent.
    pub io: Option<Src>,
    pub num_threads: u64,
    pub threads: Vec<u32>,
    pub vcpus: Vec<(u32, Src)>,
    pub non_vcpu: HashSet<u32>,
    pub reads: u32,
}

impl Handle {
    pub fn new(stat: Src, io: Option<Src>) -> Self {
        Handle { start_time_ticks: 0, stat, io, num_threads: 0, threads: Vec::new(), vcpus: Vec::new(), non_vcpu: HashSet::new(), reads: 0 }
    }

    /// File descriptors this handle keeps open.
    pub fn fds(&self) -> usize {
        usize::from(self.stat.is_held()) + self.io.as_ref().map_or(0, |s| usize::from(s.is_held())) + self.vcpus.iter().filter(|(_, s)| s.is_held()).count()
    }

    /// Closes the files, keeping the paths, when the descriptor budget is spent.
    pub fn unhold(&mut self) {
        self.stat.unhold();
        if let Some(io) = &mut self.io {
            io.unhold();
        }
        for (_, s) in &mut self.vcpus {
            s.unhold();
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
