//! Parsers for the few `/proc/PID` files the collector needs (`stat`,
//! `statm`, `io`, `schedstat`).
//!
//! They are hand-written rather than taken from the procfs crate so that a
//! tick allocates almost nothing and a malformed file yields a message saying
//! which field was wrong; callers attach the file path.

use crate::fsutil::{parse_u64, truncate};

/// The fields of `/proc/PID/stat` (or `/proc/PID/task/TID/stat`) we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat<'a> {
    /// The command name, without the parentheses; may contain spaces and `)`.
    pub comm: &'a str,
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub num_threads: u64,
    pub start_time_ticks: u64,
    pub rss_pages: u64,
}

// Field numbers as in proc(5), counted from 1; fields after comm are
// indexed from `state` (field 3).
const UTIME: usize = 14;
const STIME: usize = 15;
const NUM_THREADS: usize = 20;
const STARTTIME: usize = 22;
const RSS: usize = 24;

/// Parses one `stat` line. The comm field is delimited by the first `(` and
/// the *last* `)`, because a process may name itself `a) b (c`.
///
/// Byte-level, because it runs for every VM on every tick: the generic
/// split-and-parse version cost more CPU than the kernel's formatting.
pub fn parse_stat(s: &str) -> Result<Stat<'_>, String> {
    let open = s.find('(').ok_or_else(|| format!("no '(' before the command name in {:?}", truncate(s, 60)))?;
    let close = s.rfind(')').filter(|&c| c > open).ok_or_else(|| format!("no ')' after the command name in {:?}", truncate(s, 60)))?;
    let comm = &s[open + 1..close];
    let mut rest = Fields { b: &s.as_bytes()[close + 1..] };
    let mut at = 2; // comm is field 2; `at` is the number of the last field consumed
    let mut field = |n: usize| -> Result<u64, String> {
        for _ in at + 1..n {
            rest.next().ok_or_else(|| format!("truncated: field {n} missing"))?;
        }
        at = n;
        let v = rest.next().ok_or_else(|| format!("truncated: field {n} missing"))?;
        digits(v).ok_or_else(|| format!("field {n} is {:?}, expected an unsigned integer", truncate(&String::from_utf8_lossy(v), 24)))
    };
    let utime_ticks = field(UTIME)?;
    let stime_ticks = field(STIME)?;
    let num_threads = field(NUM_THREADS)?;
    let start_time_ticks = field(STARTTIME)?;
    let rss_pages = field(RSS)?;
    Ok(Stat { comm, utime_ticks, stime_ticks, num_threads, start_time_ticks, rss_pages })
}

/// Whitespace-separated fields of a byte string.
struct Fields<'a> {
    b: &'a [u8],
}

impl<'a> Fields<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.b.iter().position(|c| !c.is_ascii_whitespace())?;
        let b = &self.b[start..];
        let end = b.iter().position(u8::is_ascii_whitespace).unwrap_or(b.len());
        self.b = &b[end..];
        Some(&b[..end])
    }
}

/// A non-empty run of ASCII digits that fits in a u64.
fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &c| {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// `read_bytes` and `write_bytes` of `/proc/PID/io`: bytes that really went
/// to or came from storage, not page-cache traffic (`rchar`/`wchar`).
pub fn parse_io(s: &str) -> Result<(u64, u64), String> {
    parse_io_bytes(s.as_bytes())
}

/// [`parse_io`] on the raw bytes: only digits are interpreted, so the
/// per-tick read skips checking the file is UTF-8.
pub(crate) fn parse_io_bytes(s: &[u8]) -> Result<(u64, u64), String> {
    let mut read = None;
    let mut write = None;
    let mut rest = s;
    while !rest.is_empty() {
        // Only the first byte of a line is looked at before jumping to the
        // next: five of the seven lines are skipped unparsed.
        let key = match rest[0] {
            b'r' if rest.starts_with(b"read_bytes:") => Some(("read_bytes", &mut read)),
            b'w' if rest.starts_with(b"write_bytes:") => Some(("write_bytes", &mut write)),
            _ => None,
        };
        let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
        if let Some((key, slot)) = key {
            let v = rest[key.len() + 1..end].trim_ascii();
            *slot = Some(digits(v).ok_or_else(|| format!("{key} is {:?}, expected an unsigned integer", truncate(&String::from_utf8_lossy(v), 24)))?);
        }
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    match (read, write) {
        (Some(r), Some(w)) => Ok((r, w)),
        (None, _) => Err("truncated: no read_bytes line".into()),
        (_, None) => Err("truncated: no write_bytes line".into()),
    }
}

/// Resident pages from `/proc/PID/statm` (its second field): the same
/// counters as `stat`'s RSS field (file, anonymous and shmem pages), without
/// formatting the fifty other fields of `stat`. Recent kernels sum the
/// per-CPU parts exactly here, while `stat` may lag by a per-CPU batch.
pub fn parse_statm(s: &str) -> Result<u64, String> {
    parse_statm_bytes(s.as_bytes())
}

/// [`parse_statm`] on the raw bytes, as [`parse_io_bytes`].
pub(crate) fn parse_statm_bytes(s: &[u8]) -> Result<u64, String> {
    let mut f = Fields { b: s };
    f.next().ok_or("empty")?;
    let v = f.next().ok_or("truncated: no resident field")?;
    digits(v).ok_or_else(|| format!("resident is {:?}, expected an unsigned integer", truncate(&String::from_utf8_lossy(v), 24)))
}

/// The run time in ns from `/proc/PID/task/TID/schedstat` (its first field).
pub fn parse_schedstat(s: &str) -> Result<u64, String> {
    let v = s.split_ascii_whitespace().next().ok_or("empty")?;
    parse_u64(v).ok_or_else(|| format!("run time is {:?}, expected an unsigned integer", truncate(v, 24)))
}

/// True for the thread names QEMU gives vCPU threads with
/// `-name ...,debug-threads=on`: `CPU 3/KVM`, and `CPU 3/TCG` under
/// emulation (still guest work, so it counts as vCPU time).
pub fn is_vcpu_comm(comm: &str) -> bool {
    let Some(rest) = comm.strip_prefix("CPU ") else { return false };
    let Some((n, accel)) = rest.split_once('/') else { return false };
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && matches!(accel, "KVM" | "TCG" | "HVF" | "WHPX")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const QEMU_STAT: &str = "4242 (qemu-system-x86) S 1 4242 4242 0 -1 4194560 12345 0 0 0 150 50 0 0 20 0 7 0 987654 5000000000 262144 18446744073709551615 1 1 0 0 0 0 0 4096 17987 0 0 0 17 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn parses_a_real_looking_line() {
        let s = parse_stat(QEMU_STAT).unwrap();
        assert_eq!(s.comm, "qemu-system-x86");
        assert_eq!((s.utime_ticks, s.stime_ticks, s.num_threads, s.start_time_ticks, s.rss_pages), (150, 50, 7, 987654, 262144));
    }

    #[test]
    fn comm_with_parentheses_and_spaces() {
        let line = QEMU_STAT.replace("(qemu-system-x86)", "(a) b (CPU 0/KVM)");
        assert_eq!(parse_stat(&line).unwrap().comm, "a) b (CPU 0/KVM");
    }

    #[test]
    fn truncated_and_garbage_say_which_field() {
        let cut = &QEMU_STAT[..QEMU_STAT.find(" 987654").unwrap()];
        assert!(parse_stat(cut).unwrap_err().contains("field 22 missing"));
        let bad = QEMU_STAT.replace(" 150 50 ", " 150 -5 ");
        assert!(parse_stat(&bad).unwrap_err().contains("field 15"));
        assert!(parse_stat("").unwrap_err().contains("'('"));
        assert!(parse_stat("1 (x").unwrap_err().contains("')'"));
    }

    #[test]
    fn io_file() {
        let io = "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_io(io).unwrap(), (4096, 8192));
        assert!(parse_io("rchar: 1\nread_bytes: 4").unwrap_err().contains("write_bytes"));
        assert!(parse_io("read_bytes: x\nwrite_bytes: 1").unwrap_err().contains("read_bytes"));
    }

    #[test]
    fn statm_file() {
        assert_eq!(parse_statm("262144 1234 567 89 0 4096 0\n"), Ok(1234));
        assert!(parse_statm("").unwrap_err().contains("empty"));
        assert!(parse_statm("262144").unwrap_err().contains("truncated"));
        assert!(parse_statm("262144 -1 0").unwrap_err().contains("\"-1\""));
        assert!(parse_statm("1 99999999999999999999999 0").unwrap_err().contains("resident"));
    }

    #[test]
    fn io_keys_in_any_order_and_overflow() {
        assert_eq!(parse_io("write_bytes: 7\nread_bytes:9\n"), Ok((9, 7)));
        // cancelled_write_bytes and rchar must not be mistaken for the keys.
        assert!(parse_io("cancelled_write_bytes: 1\nrchar: 2\nread_bytes: 3\n").unwrap_err().contains("write_bytes"));
        assert!(parse_io("read_bytes: 18446744073709551616\nwrite_bytes: 1").unwrap_err().contains("read_bytes"));
        assert!(parse_io("read_bytes:\nwrite_bytes: 1").unwrap_err().contains("read_bytes"));
    }

    #[test]
    fn schedstat() {
        assert_eq!(parse_schedstat("1234567 890 12\n"), Ok(1234567));
        assert!(parse_schedstat("").is_err());
        assert!(parse_schedstat("x 1 2").unwrap_err().contains("\"x\""));
    }

    #[test]
    fn vcpu_names() {
        assert!(is_vcpu_comm("CPU 0/KVM"));
        assert!(is_vcpu_comm("CPU 127/KVM"));
        assert!(is_vcpu_comm("CPU 1/TCG"));
        assert!(!is_vcpu_comm("CPU /KVM"));
        assert!(!is_vcpu_comm("qemu-system-x86"));
        assert!(!is_vcpu_comm("IO mon_iothread"));
        assert!(!is_vcpu_comm("CPU 1/KVMX"));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,300}") {
            let _ = parse_stat(&s);
            let _ = parse_io(&s);
            let _ = parse_statm(&s);
            let _ = parse_schedstat(&s);
            let _ = is_vcpu_comm(&s);
        }

        #[test]
        fn stat_fields_are_found_whatever_the_comm(comm in "[ -~]{0,20}", f in proptest::collection::vec(0u64..u64::MAX, 50)) {
            // Field numbers from 3 on; the tail as Linux prints it.
            let line = format!("4242 ({comm}) S {}\n", f.iter().map(u64::to_string).collect::<Vec<_>>().join(" "));
            let st = parse_stat(&line).unwrap();
            prop_assert_eq!(st.comm, comm.as_str());
            prop_assert_eq!((st.utime_ticks, st.stime_ticks, st.num_threads, st.start_time_ticks, st.rss_pages), (f[UTIME - 4], f[STIME - 4], f[NUM_THREADS - 4], f[STARTTIME - 4], f[RSS - 4]));
        }

        #[test]
        fn statm_and_io_never_panic(s in "[0-9a-z_: \n-]{0,120}", raw in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = parse_statm(&s);
            let _ = parse_io(&s);
            let _ = parse_statm_bytes(&raw);
            let _ = parse_io_bytes(&raw);
        }

        #[test]
        fn stat_survives_any_truncation(cut in 0usize..QEMU_STAT.len()) {
            let _ = parse_stat(&QEMU_STAT[..cut]);
        }
    }
}
