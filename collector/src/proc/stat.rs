//! Parsers for the few `/proc/PID` files the collector needs (`stat`, `io`).
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
pub fn parse_stat(s: &str) -> Result<Stat<'_>, String> {
    let open = s.find('(').ok_or_else(|| format!("no '(' before the command name in {:?}", truncate(s, 60)))?;
    let close = s.rfind(')').filter(|&c| c > open).ok_or_else(|| format!("no ')' after the command name in {:?}", truncate(s, 60)))?;
    let comm = &s[open + 1..close];
    let mut rest = s[close + 1..].split_ascii_whitespace();
    let mut field = |n: usize, from: &mut usize| -> Result<u64, String> {
        // `from` is the number of the last field consumed.
        let skip = n - *from - 1;
        *from = n;
        let v = rest.nth(skip).ok_or_else(|| format!("truncated: field {n} missing"))?;
        parse_u64(v).ok_or_else(|| format!("field {n} is {:?}, expected an unsigned integer", truncate(v, 24)))
    };
    let mut at = 2; // comm is field 2
    let utime_ticks = field(UTIME, &mut at)?;
    let stime_ticks = field(STIME, &mut at)?;
    let num_threads = field(NUM_THREADS, &mut at)?;
    let start_time_ticks = field(STARTTIME, &mut at)?;
    let rss_pages = field(RSS, &mut at)?;
    Ok(Stat { comm, utime_ticks, stime_ticks, num_threads, start_time_ticks, rss_pages })
}

/// `read_bytes` and `write_bytes` of `/proc/PID/io`: bytes that really went
/// to or came from storage, not page-cache traffic (`rchar`/`wchar`).
pub fn parse_io(s: &str) -> Result<(u64, u64), String> {
    let mut read = None;
    let mut write = None;
    for line in s.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let slot = match key.trim() {
            "read_bytes" => &mut read,
            "write_bytes" => &mut write,
            _ => continue,
        };
        let v = value.trim();
        *slot = Some(parse_u64(v).ok_or_else(|| format!("{} is {:?}, expected an unsigned integer", key.trim(), truncate(v, 24)))?);
    }
    match (read, write) {
        (Some(r), Some(w)) => Ok((r, w)),
        (None, _) => Err("truncated: no read_bytes line".into()),
        (_, None) => Err("truncated: no write_bytes line".into()),
    }
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
            let _ = parse_schedstat(&s);
            let _ = is_vcpu_comm(&s);
        }

        #[test]
        fn stat_survives_any_truncation(cut in 0usize..QEMU_STAT.len()) {
            let _ = parse_stat(&QEMU_STAT[..cut]);
        }
    }
}
