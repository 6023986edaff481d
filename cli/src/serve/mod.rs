//! `trainlog serve [DIR]`: a read-only JSON API over the runs under DIR, on 127.0.0.1 by
//! default. (The dashboard page that uses it comes next; see the README.)
//!
//! - `GET /api/runs`: every run under DIR, as `ls` finds them: `name` (relative to DIR),
//!   `status`, `start`, `duration_secs`, `steps`, `ranks`, `params`, `metrics` (names) and
//!   `last` (rank 0's last value of each), or `error` for a run that cannot be read.
//! - `GET /api/scalars?run=NAME&metric=NAME[&points=N][&rank=R]`: one series of one rank
//!   (rank 0 by default; its points logged with a step): `total` (its number of points),
//!   `step` and `value` arrays, and,
//!   when it has more than `points` (default 1000), one entry per bucket of consecutive
//!   points with the bucket's `min` and `max` too, so a one-step spike survives.
//!
//! Errors are JSON (`{"error": "..."}`) with a 4xx status. Nothing writes or deletes; a run
//! name can never leave DIR (`..`, absolute paths and symlinks out are refused). Files are
//! kept in memory between requests and read again when they change ([`Cache`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};

use crate::args::ServeArgs;
use crate::engine::{FileScan, Keep, X};
use crate::runs::{find_runs, flat_params, is_run, json_number, run_files, RunData};

/// Points a series is cut down to unless the request says otherwise, and the most a
/// request may ask for.
const DEFAULT_POINTS: usize = 1000;
const MAX_POINTS: usize = 100_000;

pub fn serve(args: &ServeArgs) -> Result<(), String> {
    let root =
        std::fs::canonicalize(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    if !root.is_dir() {
        return Err(format!("{} is not a directory", args.dir.display()));
    }
    let addr: SocketAddr = args
        .addr
        .parse()
        .map_err(|e| format!("--addr {}: {e} (HOST:PORT, e.g. 127.0.0.1:6007)", args.addr))?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "trainlog: warning: listening on {addr}, not only on this machine: anyone who can \
             reach it can read every run under {}",
            root.display()
        );
    }
    let server = tiny_http::Server::http(addr).map_err(|e| format!("{addr}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .map_or_else(|| addr.to_string(), |a| a.to_string());
    eprintln!(
        "trainlog: serving {} on http://{bound}/ (read-only; Ctrl-C stops)",
        root.display()
    );
    let mut cache = Cache::default();
    for request in server.incoming_requests() {
        let (status, body) = answer(&root, &mut cache, request.method(), request.url());
        let header = tiny_http::Header::from_bytes(
            &b"Content-Type"[..],
            &b"application/json; charset=utf-8"[..],
        )
        .expect("a valid header");
        let response = tiny_http::Response::from_string(body.to_string())
            .with_status_code(status)
            .with_header(header);
        // A client gone before the answer is its business.
        let _ = request.respond(response);
    }
    Ok(())
}

/// The status and JSON body for a request.
fn answer(root: &Path, cache: &mut Cache, method: &tiny_http::Method, url: &str) -> (u16, Json) {
    if *method != tiny_http::Method::Get {
        return error(405, "read-only: only GET requests are answered");
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let query = parse_query(query);
    match path {
        "/api/runs" => (200, runs(root, cache)),
        "/api/scalars" => scalars(root, cache, &query).unwrap_or_else(|e| e),
        _ => error(404, &format!("no such endpoint: {path}")),
    }
}

fn error(status: u16, message: &str) -> (u16, Json) {
    (status, json!({ "error": message }))
}

/// Metrics files as read, with every metric's points, kept between requests and read
/// again when a file's size or modification time changes.
#[derive(Default)]
struct Cache {
    files: HashMap<PathBuf, (Stamp, Arc<FileScan>)>,
}

/// What tells that a file changed: its length and modification time.
type Stamp = (u64, Option<std::time::SystemTime>);

impl Cache {
    /// `path` as read now: from memory while it has not changed.
    fn scan(&mut self, path: &Path) -> Result<Arc<FileScan>, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let stamp = (meta.len(), meta.modified().ok());
        if let Some((seen, scan)) = self.files.get(path) {
            if *seen == stamp {
                return Ok(scan.clone());
            }
        }
        let every_point = Keep {
            x: X::Step,
            metrics: &[],
            all_up_to: usize::MAX,
        };
        let scan = Arc::new(FileScan::read(path, every_point)?);
        self.files.insert(path.to_path_buf(), (stamp, scan.clone()));
        Ok(scan)
    }
}

/// `GET /api/runs`.
fn runs(root: &Path, cache: &mut Cache) -> Json {
    let (found, unread) = find_runs(root);
    let mut out: Vec<Json> = unread
        .into_iter()
        .map(|(dir, why)| json!({ "name": relative(root, &dir), "error": why }))
        .collect();
    for run in found {
        let name = relative(root, &run);
        let entry = match RunData::load_with(&run, |file| cache.scan(file)) {
            Ok(data) => {
                let summary = data.summary_of(data.default_rank());
                let last: Map<String, Json> = summary
                    .iter()
                    .map(|(k, s)| (k.clone(), json_number(s.last)))
                    .collect();
                let params = data.params().map(|p| flat_params(&p)).unwrap_or_default();
                json!({
                    "name": name,
                    "status": data.status(),
                    "start": data.start(),
                    "duration_secs": data.duration(),
                    "steps": data.steps(),
                    "ranks": data.ranks(),
                    "params": params,
                    "metrics": summary.keys().collect::<Vec<_>>(),
                    "last": last,
                })
            }
            Err(e) => json!({ "name": name, "error": e }),
        };
        out.push(entry);
    }
    Json::Array(out)
}

/// A run's name as the API gives it: its path relative to DIR (`.` for DIR itself).
fn relative(root: &Path, dir: &Path) -> String {
    let name = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
    if name.is_empty() {
        ".".into()
    } else {
        name
    }
}

/// `GET /api/scalars`.
fn scalars(
    root: &Path,
    cache: &mut Cache,
    query: &[(String, String)],
) -> Result<(u16, Json), (u16, Json)> {
    let get = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let name = get("run").ok_or_else(|| error(400, "missing `run`"))?;
    let metric = get("metric").ok_or_else(|| error(400, "missing `metric`"))?;
    let points = match get("points") {
        None => DEFAULT_POINTS,
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|p| (1..=MAX_POINTS).contains(p))
            .ok_or_else(|| error(400, &format!("`points` is a number from 1 to {MAX_POINTS}")))?,
    };
    let run = resolve(root, name)?;
    let files = run_files(&run).map_err(|e| error(404, &e))?;
    let rank = match get("rank") {
        None => files.first().map(|(r, _)| *r),
        Some(r) => Some(
            r.parse::<u32>()
                .map_err(|_| error(400, "`rank` is a number"))?,
        ),
    };
    let Some((rank, path)) = files.into_iter().find(|(r, _)| Some(*r) == rank) else {
        return Err(error(404, &format!("run `{name}` has no such rank")));
    };
    let scan = cache.scan(&path).map_err(|e| error(500, &e))?;
    let Some(series) = scan.metrics.iter().find(|m| m.name == metric) else {
        return Err(error(
            404,
            &format!("run `{name}` has no metric `{metric}`"),
        ));
    };
    Ok((200, series_json(rank, &series.points, points)))
}

/// A series as the API gives it: whole when it has at most `points` points, else one
/// entry per bucket of consecutive points (its last step and value, and its finite min
/// and max).
fn series_json(rank: u32, series: &[(f64, f64)], points: usize) -> Json {
    let total = series.len();
    if total <= points {
        return json!({
            "rank": rank,
            "total": total,
            "step": series.iter().map(|p| p.0 as u64).collect::<Vec<_>>(),
            "value": series.iter().map(|p| json_number(p.1)).collect::<Vec<_>>(),
        });
    }
    let (mut step, mut value, mut min, mut max) = (vec![], vec![], vec![], vec![]);
    for bucket in 0..points {
        let part = &series[bucket * total / points..(bucket + 1) * total / points];
        let Some(&(x, y)) = part.last() else { continue };
        let finite = part.iter().map(|p| p.1).filter(|y| y.is_finite());
        let lo = finite.clone().fold(f64::INFINITY, f64::min);
        let hi = finite.fold(f64::NEG_INFINITY, f64::max);
        step.push(x as u64);
        value.push(json_number(y));
        min.push(if lo.is_finite() {
            json_number(lo)
        } else {
            Json::Null
        });
        max.push(if hi.is_finite() {
            json_number(hi)
        } else {
            Json::Null
        });
    }
    json!({
        "rank": rank,
        "total": total,
        "step": step,
        "value": value,
        "min": min,
        "max": max,
    })
}

/// The run directory a request names, which must lie under DIR: no absolute path, no
/// `..`, and no symbolic link leading out (checked on the real path).
fn resolve(root: &Path, name: &str) -> Result<PathBuf, (u16, Json)> {
    let relative = Path::new(name);
    let plain = relative.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if name.is_empty() || !plain {
        return Err(error(
            400,
            "a run is named by its path under the served directory",
        ));
    }
    let real = std::fs::canonicalize(root.join(relative))
        .map_err(|_| error(404, &format!("no run `{name}`")))?;
    if !real.starts_with(root) || !is_run(&real) {
        return Err(error(404, &format!("no run `{name}`")));
    }
    Ok(real)
}

/// `a=1&b=x%2Fy` as pairs, percent-decoded (`+` is a space).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding (hand-written: a dozen lines, where a crate would bring a URL parser);
/// bytes that do not decode stay as they are, and invalid UTF-8 becomes U+FFFD.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        assert_eq!(
            parse_query("run=a%2Fb&metric=train%2Floss+x&points=5&bad=%zz%"),
            [
                ("run".to_owned(), "a/b".to_owned()),
                ("metric".to_owned(), "train/loss x".to_owned()),
                ("points".to_owned(), "5".to_owned()),
                ("bad".to_owned(), "%zz%".to_owned()),
            ]
        );
    }

    #[test]
    fn a_downsampled_series_keeps_every_buckets_extremes_and_its_total() {
        let series: Vec<(f64, f64)> = (0..1_000_000)
            .map(|i| (i as f64, if i == 777_777 { 100.0 } else { 1.0 }))
            .collect();
        let json = series_json(0, &series, 2000);
        assert_eq!(json["total"], 1_000_000);
        assert_eq!(json["step"].as_array().unwrap().len(), 2000);
        let max: Vec<f64> = json["max"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(
            max.iter().filter(|m| **m == 100.0).count(),
            1,
            "the spike survives"
        );
        let small = series_json(0, &series[..10], 2000);
        assert!(small.get("min").is_none());
        assert_eq!(small["value"].as_array().unwrap().len(), 10);
    }
}
