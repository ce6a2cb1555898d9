//! Shipping the spool to the billing API (`--server http://HOST:PORT`,
//! `--key`): every [`SHIP_EVERY`] (every tick while a backlog of a full
//! batch or more waits), the oldest unacknowledged intervals go out as one
//! batch — reading the spool costs a segment's parse, too much for every
//! tick;
//! only a 200 whose answer names the batch acknowledges them in the spool,
//! so a server that is down, restarting or unreachable loses nothing — the
//! spool keeps them (bounded, see the spool's policy) and the shipper tries
//! again with exponential backoff (1 s doubling to 60 s). The batch id is
//! the host and the sequence range, so a batch resent after a crash is a
//! replay on the server, and an interval shipped twice is stored once.
//!
//! A batch the server refuses as bad (400) is halved until the refused
//! record is alone; that record goes to `rejected.jsonl` in the spool
//! directory with the server's reason and is acknowledged, so one bad record
//! cannot block the rest and nothing is dropped silently.
//!
//! Plain HTTP: put a TLS-terminating proxy on the host for remote servers.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use fairwatt_collector::spool::Spool;
use fairwatt_core::IntervalRecord;

pub struct Shipper {
    host_port: String,
    key: String,
    batch: usize,
    /// Current batch size (halved while isolating a refused record).
    size: usize,
    backoff: Duration,
    next_try: Instant,
    rejected: PathBuf,
    last_ship: Option<Instant>,
    pub shipped: u64,
}

/// How often a caught-up agent ships what it has.
pub const SHIP_EVERY: Duration = Duration::from_secs(10);

const MAX_BACKOFF: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

enum Outcome {
    Acked,
    Refused(String),
    Retry(String),
}

impl Shipper {
    pub fn new(server: &str, key: &str, batch: usize, spool_dir: &std::path::Path) -> anyhow::Result<Shipper> {
        let host_port = server.strip_prefix("http://").context("--server must be http://HOST:PORT (TLS: a local proxy)")?.trim_end_matches('/');
        if host_port.is_empty() || host_port.contains('/') {
            bail!("--server {server:?}: expected http://HOST:PORT");
        }
        if key.is_empty() {
            bail!("--server needs --key (or FAIRWATT_KEY): a collector key from `fairwatt keys create --role collector`");
        }
        Ok(Shipper {
            host_port: host_port.to_string(),
            key: key.to_string(),
            batch: batch.max(1),
            size: batch.max(1),
            backoff: Duration::from_secs(1),
            next_try: Instant::now(),
            rejected: spool_dir.join("rejected.jsonl"),
            last_ship: None,
            shipped: 0,
        })
    }

    /// Ships what is pending, one batch per call at most, unless backing off.
    /// Returns whether the spool still holds unshipped intervals.
    pub fn tick(&mut self, spool: &mut Spool) -> bool {
        let pending = spool.stats().pending_records;
        let caught_up = (pending as usize) < self.batch && self.last_ship.is_some_and(|t| t.elapsed() < SHIP_EVERY);
        if Instant::now() < self.next_try || caught_up {
            return pending > 0;
        }
        self.last_ship = Some(Instant::now());
        let recs = match spool.pending(self.size) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("shipping: reading the spool: {e}");
                return true;
            }
        };
        let Some(last) = recs.last().map(|r| r.seq) else { return false };
        match self.post(&recs) {
            Outcome::Acked => {
                if let Err(e) = spool.ack(last) {
                    tracing::error!("shipping: acknowledging up to {last} in the spool: {e}");
                }
                self.shipped += recs.len() as u64;
                self.backoff = Duration::from_secs(1);
                self.size = self.batch;
            }
            Outcome::Refused(why) if recs.len() == 1 => {
                tracing::error!("shipping: the server refused interval {last}: {why}; kept in {}", self.rejected.display());
                match self.reject(&recs[0], &why) {
                    Ok(()) => {
                        let _ = spool.ack(last);
                    }
                    Err(e) => tracing::error!("shipping: could not keep the refused interval: {e}"),
                }
                self.size = self.batch;
            }
            Outcome::Refused(why) => {
                tracing::warn!("shipping: the server refused a batch of {} ({why}); narrowing down", recs.len());
                self.size = (recs.len() / 2).max(1);
            }
            Outcome::Retry(why) => {
                tracing::warn!("shipping to {}: {why}; retrying in {} s", self.host_port, self.backoff.as_secs());
                self.next_try = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
        spool.stats().pending_records > 0
    }

    /// Ships until the spool is empty, a retry is needed, or `limit` passes.
    pub fn drain(&mut self, spool: &mut Spool, limit: Duration) {
        let end = Instant::now() + limit;
        self.next_try = Instant::now();
        self.last_ship = None;
        while Instant::now() < end && self.tick(spool) {
            if Instant::now() < self.next_try {
                break;
            }
            self.last_ship = None;
        }
    }

    fn reject(&self, r: &IntervalRecord, why: &str) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.rejected)?;
        let line = serde_json::json!({ "reason": why, "record": r });
        writeln!(f, "{line}")?;
        f.sync_all()?;
        Ok(())
    }

    fn post(&self, recs: &[IntervalRecord]) -> Outcome {
        let (first, last) = (recs[0].seq, recs[recs.len() - 1].seq);
        let id = format!("{}-{first}-{last}", recs[0].host);
        let body = match serde_json::to_vec(&serde_json::json!({ "batch_id": id, "records": recs })) {
            Ok(b) => b,
            Err(e) => return Outcome::Retry(format!("encoding: {e}")),
        };
        match self.exchange(&body) {
            Ok((200, answer)) if answer.contains(&format!("\"batch_id\":\"{id}\"")) => Outcome::Acked,
            Ok((200, answer)) => Outcome::Retry(format!("unexpected answer {answer:?}")),
            Ok((400, answer)) | Ok((413, answer)) => Outcome::Refused(answer),
            Ok((code, answer)) => Outcome::Retry(format!("HTTP {code}: {answer}")),
            Err(e) => Outcome::Retry(format!("{e:#}")),
        }
    }

    fn exchange(&self, body: &[u8]) -> anyhow::Result<(u16, String)> {
        post_ingest(&self.host_port, &self.key, body)
    }
}

/// One `POST /v1/ingest` to `host_port` over plain HTTP/1.1, with timeouts;
/// the status and the body of the answer.
pub fn post_ingest(host_port: &str, key: &str, body: &[u8]) -> anyhow::Result<(u16, String)> {
    request(host_port, "POST", "/v1/ingest", key, body)
}

/// One request to the billing API at `host_port` (a JSON body, bearer key,
/// `Connection: close`), with timeouts; the status and the body of the answer.
pub fn request(host_port: &str, method: &str, path: &str, key: &str, body: &[u8]) -> anyhow::Result<(u16, String)> {
    let addr = host_port.to_socket_addrs()?.next().context("no address")?;
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out);
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).context("no HTTP status in the answer")?;
    Ok((code, text.split_once("\r\n\r\n").map(|(_, b)| b.trim().to_string()).unwrap_or_default()))
}
