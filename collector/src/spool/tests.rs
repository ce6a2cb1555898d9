//! Spool tests: recovery after crashes, acknowledgement, the full-spool policy.
use super::*;
use fairwatt_core::{Domain, DomainEnergy, HostId, Timestamp};
use std::collections::BTreeMap;

fn rec(seq: u64) -> IntervalRecord {
    let start = Timestamp::from_micros(1_700_000_000_000_000 + seq as i64 * 1_000_000).unwrap();
    let mut domains = BTreeMap::new();
    domains.insert(Domain::package(0), DomainEnergy::ok(Energy::from_uj(1_000 + seq)));
    IntervalRecord { host: HostId::new("h").unwrap(), seq, start, end: start.plus(Micros::from_secs(1)), domains, vms: vec![], truth: None }
}

fn cfg(dir: &Path) -> SpoolConfig {
    SpoolConfig { fsync: false, segment_bytes: 1_000, ..SpoolConfig::new(dir) }
}

fn total(recs: &[IntervalRecord]) -> u64 {
    recs.iter().map(|r| r.measured_total().as_uj()).sum()
}

#[test]
fn survives_reopen_and_acks() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(cfg(dir.path())).unwrap();
    for i in 1..=40 {
        s.append(&rec(i)).unwrap();
    }
    assert!(s.append(&rec(40)).is_err());
    drop(s);
    let mut s = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(s.last_seq(), Some(40));
    assert_eq!(s.pending(1000).unwrap().len(), 40);
    s.ack(25).unwrap();
    let p = s.pending(1000).unwrap();
    assert_eq!(p.first().unwrap().seq, 26);
    drop(s);
    let s = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(s.pending(1000).unwrap().len(), 15);
    assert_eq!(s.last_seq(), Some(40));
}

#[test]
fn torn_tail_is_cut_and_corrupt_lines_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(cfg(dir.path())).unwrap();
    for i in 1..=3 {
        s.append(&rec(i)).unwrap();
    }
    drop(s);
    let seg = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().contains("seg-")).unwrap();
    let mut text = std::fs::read_to_string(&seg).unwrap();
    // Flip a byte inside record 2 and leave a half-written record 4.
    let pos = text.match_indices("1002").next().unwrap().0;
    text.replace_range(pos..pos + 4, "9002");
    text.push_str("0000abcd {\"host\":\"h\",\"se");
    std::fs::write(&seg, text).unwrap();
    let mut s = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(s.stats().corrupt_lines, 2);
    let seqs: Vec<u64> = s.pending(10).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![1, 3]);
    s.append(&rec(4)).unwrap();
    assert_eq!(s.pending(10).unwrap().len(), 3);
}

#[test]
fn full_spool_compacts_before_dropping() {
    let dir = tempfile::tempdir().unwrap();
    let c = SpoolConfig { max_bytes: 6_000, compact_factor: 4, max_interval: Micros::from_secs(8), ..cfg(dir.path()) };
    let mut s = Spool::open(c).unwrap();
    let all: Vec<_> = (1..=60).map(rec).collect();
    for r in &all {
        s.append(r).unwrap();
    }
    assert!(s.stats().bytes <= 6_000 + 1_200, "{:?}", s.stats());
    assert!(s.stats().compactions > 0);
    let kept = s.pending(10_000).unwrap();
    // Nothing vanishes silently: what is kept plus what the drop ledger counts is all the energy.
    assert_eq!(total(&kept) + s.stats().dropped_energy.as_uj(), total(&all));
    assert!(kept.iter().all(|r| r.duration() <= Micros::from_secs(8)));
    if s.stats().dropped_records > 0 {
        let ledger = std::fs::read_to_string(dir.path().join("dropped.jsonl")).unwrap();
        assert!(ledger.contains("energy_uj"));
    }
}

#[test]
fn generous_spool_only_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let c = SpoolConfig { max_bytes: 9_000, compact_factor: 10, max_interval: Micros::from_secs(3600), ..cfg(dir.path()) };
    let mut s = Spool::open(c).unwrap();
    let all: Vec<_> = (1..=80).map(rec).collect();
    for r in &all {
        s.append(r).unwrap();
    }
    assert_eq!(s.stats().dropped_records, 0);
    assert_eq!(total(&s.pending(10_000).unwrap()), total(&all));
}

proptest::proptest! {
    /// Whatever garbage a crash or a disk leaves in the newest segment,
    /// opening never fails or panics and every intact record survives.
    #[test]
    fn garbage_tail_never_loses_intact_records(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(cfg(dir.path())).unwrap();
        for i in 1..=3 {
            s.append(&rec(i)).unwrap();
        }
        drop(s);
        let seg = dir.path().join(format!("seg-{:020}.jsonl", 1));
        let mut data = std::fs::read(&seg).unwrap();
        data.extend_from_slice(&tail);
        std::fs::write(&seg, data).unwrap();
        let mut s = Spool::open(cfg(dir.path())).unwrap();
        let seqs: Vec<u64> = s.pending(10).unwrap().iter().map(|r| r.seq).collect();
        proptest::prop_assert_eq!(&seqs[..3], &[1, 2, 3]);
        s.append(&rec(10)).unwrap();
        proptest::prop_assert_eq!(s.pending(10).unwrap().last().unwrap().seq, 10);
    }
}

#[test]
fn state_slots_survive_a_torn_write_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(s.load_state(), None);
    s.save_state(b"{\"n\":1}").unwrap();
    s.save_state(b"{\"n\":2}").unwrap();
    s.save_state(b"{\"n\":3}").unwrap();
    assert_eq!(s.load_state().unwrap(), b"{\"n\":3}");
    drop(s);
    let mut s = Spool::open(cfg(dir.path())).unwrap();
    s.save_state(b"{\"n\":4}").unwrap();
    assert_eq!(s.load_state().unwrap(), b"{\"n\":4}");
    // A crash in the middle of writing slot 0 (generation 4): slot 1 still holds 3.
    let slot = dir.path().join("state.0");
    let mut raw = std::fs::read(&slot).unwrap();
    raw.truncate(raw.len() - 3);
    std::fs::write(&slot, raw).unwrap();
    assert_eq!(Spool::open(cfg(dir.path())).unwrap().load_state().unwrap(), b"{\"n\":3}");
}

#[test]
fn crc_matches_reference() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn shorter_state_ignores_leftover_bytes_and_old_format_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(cfg(dir.path())).unwrap();
    s.save_state(b"{\"long\":\"aaaaaaaaaaaaaaaaaaaa\"}").unwrap();
    s.save_state(b"{\"long\":\"bbbbbbbbbbbbbbbbbbbb\"}").unwrap();
    s.save_state(b"{\"n\":1}").unwrap();
    assert_eq!(s.load_state().unwrap(), b"{\"n\":1}");
    drop(s);
    assert_eq!(Spool::open(cfg(dir.path())).unwrap().load_state().unwrap(), b"{\"n\":1}");
    // Slots as earlier versions wrote them: `GEN CRC DATA` to the end of the file.
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    let data = b"{\"n\":7}";
    std::fs::write(old.join("state.1"), [format!("9 {:08x} ", crc32(data)).as_bytes(), data].concat()).unwrap();
    assert_eq!(Spool::open(cfg(&old)).unwrap().load_state().unwrap(), data);
}

/// The pending count is what `pending` returns, also part way through a
/// segment, after a reopen, and for a big segment shipped in small acks
/// (counting the segment whole once made the shipper send one record per
/// tick).
#[test]
fn pending_count_matches_what_is_pending_mid_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(SpoolConfig { segment_bytes: 1 << 20, ..cfg(dir.path()) }).unwrap();
    for i in 1..=40 {
        s.append(&rec(i)).unwrap();
    }
    for acked in [3, 17, 39, 40] {
        s.ack(acked).unwrap();
        assert_eq!(s.stats().pending_records, 40 - acked, "after ack {acked}");
        assert_eq!(s.stats().pending_records as usize, s.pending(1000).unwrap().len());
    }
    s.append(&rec(41)).unwrap();
    assert_eq!(s.stats().pending_records, 1);
    drop(s);
    let s = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(s.stats().pending_records, 1);
    assert_eq!(s.pending(1000).unwrap().len(), 1);
}
