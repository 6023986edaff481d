//! The JSON API (see the module docs of `serve`): what each endpoint answers.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value as Json};

use super::cache::Cache;
use crate::runs::{find_runs, flat_params, is_run, json_number, run_files, RunData};

/// Points a series is cut down to unless the request says otherwise, and the most a
/// request may ask for.
const DEFAULT_POINTS: usize = 1000;
const MAX_POINTS: usize = 100_000;

/// A status and a JSON body.
pub type Answer = (u16, Json);

pub fn error(status: u16, message: &str) -> Answer {
    (status, json!({ "error": message }))
}

/// `GET /api/runs`.
pub fn runs(root: &Path, cache: &Cache) -> Json {
    let (found, unread) = find_runs(root);
    let mut out: Vec<Json> = unread
        .into_iter()
        .map(|(dir, why)| json!({ "name": relative(root, &dir), "error": why }))
        .collect();
    // Runs read (the first time) on every core: a thousand small runs are many files.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = found.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = found
            .chunks(chunk)
            .map(|runs| {
                scope.spawn(move || {
                    runs.iter()
                        .map(|run| run_json(root, cache, run))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (part, runs) in parts.into_iter().zip(found.chunks(chunk)) {
            match part.join() {
                Ok(part) => out.extend(part),
                // A bug (its message is on stderr): these runs say so, the rest are listed.
                Err(_) => out.extend(runs.iter().map(|run| {
                    json!({ "name": relative(root, run), "error": "reading this run failed (a bug: see the server's output)" })
                })),
            }
        }
    });
    Json::Array(out)
}

/// One run as `/api/runs` lists it.
fn run_json(root: &Path, cache: &Cache, run: &Path) -> Json {
    let name = relative(root, run);
    let data = RunData::load_with(run, |file| cache.scan(file, false).map(|(scan, _)| scan));
    let entry = match data {
        Ok(data) => {
            let summary = data.summary_of(data.default_rank());
            let (mut last, mut min, mut max, mut nonfinite) =
                (Map::new(), Map::new(), Map::new(), Map::new());
            for (k, s) in &summary {
                last.insert(k.clone(), json_number(s.last));
                if s.min <= s.max {
                    min.insert(k.clone(), json_number(s.min));
                    max.insert(k.clone(), json_number(s.max));
                }
                if s.non_finite > 0 {
                    nonfinite.insert(k.clone(), s.non_finite.into());
                }
            }
            let params = data.params().map(|p| flat_params(&p)).unwrap_or_default();
            let info = data.info.as_ref();
            let first_time = data
                .files
                .iter()
                .filter_map(|(_, f)| f.first_time)
                .reduce(f64::min);
            json!({
                "name": name,
                "status": data.status(),
                "start": data.start(),
                "first_time": first_time,
                "duration_secs": data.duration(),
                "steps": data.steps(),
                "ranks": data.ranks(),
                "params": params,
                "tags": info.map(|i| json!(i.tags)).unwrap_or_else(|| json!({})),
                "results": info.map(|i| json!(i.results)).unwrap_or_else(|| json!({})),
                "metrics": summary.keys().collect::<Vec<_>>(),
                "last": last,
                "min": min,
                "max": max,
                "nonfinite": nonfinite,
            })
        }
        Err(e) => json!({ "name": name, "error": e }),
    };
    entry
}

/// A run's name as the API gives it: its path relative to DIR (`.` for DIR itself).
pub fn relative(root: &Path, dir: &Path) -> String {
    let name = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
    if name.is_empty() {
        ".".into()
    } else {
        name
    }
}

/// `GET /api/scalars`.
pub fn scalars(root: &Path, cache: &Cache, query: &[(String, String)]) -> Result<Answer, Answer> {
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
    let bound = |key: &str| match get(key) {
        None => Ok(None),
        Some(v) => v
            .parse::<f64>()
            .map(Some)
            .map_err(|_| error(400, &format!("`{key}` is a step"))),
    };
    let window = (bound("from")?, bound("to")?);
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
    let (scan, _) = cache.scan(&path, true).map_err(|e| error(500, &e))?;
    let Some(series) = scan.metrics.iter().find(|m| m.name == metric) else {
        return Err(error(
            404,
            &format!("run `{name}` has no metric `{metric}`"),
        ));
    };
    let picked = Picked::new(&series.points, window);
    let mut json = series_json(&series.points, &series.times, &picked, points);
    json["rank"] = rank.into();
    Ok((200, json))
}

/// The points of a series a request asks for: all, or those with a step in a window
/// (by index, since steps may go back).
enum Picked {
    All(usize),
    Some(Vec<u32>),
}

impl Picked {
    fn new(points: &[(f64, f64)], window: (Option<f64>, Option<f64>)) -> Picked {
        match window {
            (None, None) => Picked::All(points.len()),
            (from, to) => {
                let (from, to) = (
                    from.unwrap_or(f64::NEG_INFINITY),
                    to.unwrap_or(f64::INFINITY),
                );
                Picked::Some(
                    (0..points.len() as u32)
                        .filter(|&i| (from..=to).contains(&points[i as usize].0))
                        .collect(),
                )
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Picked::All(n) => *n,
            Picked::Some(v) => v.len(),
        }
    }

    /// The index in the series of the `i`th point picked.
    fn at(&self, i: usize) -> usize {
        match self {
            Picked::All(_) => i,
            Picked::Some(v) => v[i] as usize,
        }
    }
}

/// A series as the API gives it: `total` (points picked), `nonfinite` (how many of them
/// are NaN or ±∞), then `step`, `time` and `value` of every point when they are at most
/// `points`, else one entry per bucket of consecutive points (its last point, and its
/// finite `min` and `max`, so a one-step spike survives).
fn series_json(series: &[(f64, f64)], times: &[f64], picked: &Picked, points: usize) -> Json {
    let total = picked.len();
    let nonfinite = (0..total)
        .filter(|&i| !series[picked.at(i)].1.is_finite())
        .count();
    let time = |i: usize| times.get(i).copied().map_or(Json::Null, json_time);
    if total <= points {
        let at = |i| series[picked.at(i)];
        return json!({
            "total": total,
            "nonfinite": nonfinite,
            "step": (0..total).map(|i| at(i).0 as u64).collect::<Vec<_>>(),
            "time": (0..total).map(|i| time(picked.at(i))).collect::<Vec<_>>(),
            "value": (0..total).map(|i| json_number(at(i).1)).collect::<Vec<_>>(),
        });
    }
    let (mut step, mut time_of, mut value, mut min, mut max) =
        (vec![], vec![], vec![], vec![], vec![]);
    let finite_or_null = |y: f64| {
        if y.is_finite() {
            json_number(y)
        } else {
            Json::Null
        }
    };
    for bucket in 0..points {
        let (start, end) = (bucket * total / points, (bucket + 1) * total / points);
        if start == end {
            continue;
        }
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for i in start..end {
            let y = series[picked.at(i)].1;
            if y.is_finite() {
                lo = lo.min(y);
                hi = hi.max(y);
            }
        }
        let last = picked.at(end - 1);
        step.push(series[last].0 as u64);
        time_of.push(time(last));
        value.push(json_number(series[last].1));
        min.push(finite_or_null(lo));
        max.push(finite_or_null(hi));
    }
    json!({
        "total": total,
        "nonfinite": nonfinite,
        "step": step,
        "time": time_of,
        "value": value,
        "min": min,
        "max": max,
    })
}

/// A record time for the page: Unix seconds to the millisecond, or null.
fn json_time(t: f64) -> Json {
    if t.is_finite() {
        json!((t * 1000.0).round() / 1000.0)
    } else {
        Json::Null
    }
}

/// The run directory a request names, which must lie under DIR: no absolute path, no
/// `..`, and no symbolic link leading out (checked on the real path).
fn resolve(root: &Path, name: &str) -> Result<PathBuf, Answer> {
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
pub fn parse_query(query: &str) -> Vec<(String, String)> {
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
        let json = series_json(&series, &[], &Picked::All(series.len()), 2000);
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
        let small = series_json(&series[..10], &[], &Picked::All(10), 2000);
        assert!(small.get("min").is_none());
        assert_eq!(small["value"].as_array().unwrap().len(), 10);
        // A window of steps, at full resolution.
        let window = Picked::new(&series, (Some(777_770.0), Some(777_779.0)));
        let zoomed = series_json(&series, &[], &window, 2000);
        assert_eq!(zoomed["total"], 10);
        assert_eq!(zoomed["step"][7], 777_777);
        assert_eq!(zoomed["value"][7], 100.0);
    }
}
