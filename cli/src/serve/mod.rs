//! `trainlog serve [DIR]`: a live dashboard over the runs under DIR, and the read-only JSON
//! API it uses, on 127.0.0.1 by default.
//!
//! - `GET /`: the dashboard (its files are embedded: nothing is fetched from elsewhere).
//! - `GET /api/runs`: every run under DIR, as `ls` finds them: `name` (relative to DIR),
//!   `status`, `start`, `first_time` (of its first record), `duration_secs`, `steps`,
//!   `ranks`, `params`, `tags`, `results`,
//!   `metrics` (names), and rank 0's `last`, `min`, `max` and `nonfinite` (count) of each,
//!   or `error` for a run that cannot be read.
//! - `GET /api/scalars?run=NAME&metric=NAME[&points=N][&rank=R][&from=STEP][&to=STEP]`: one
//!   series of one rank (rank 0 by default; its points logged with a step, those from
//!   `from` to `to` when given): `total` (its number of points), `nonfinite`, and `step`,
//!   `time` and `value` arrays; when it has more than `points` (default 1000), one entry per
//!   bucket of consecutive points with the bucket's `min` and `max` too, so a one-step spike
//!   survives.
//! - `GET /api/events`: server-sent events; a message `{"changed": [run names], "gone": N}`
//!   each time runs get new lines, appear or go away.
//!
//! Errors are JSON (`{"error": "..."}`) with a 4xx status. Nothing writes or deletes; a run
//! name can never leave DIR (`..`, absolute paths and symlinks out are refused). Files are
//! kept in memory as requests need them ([`cache`]); a watcher reads what is appended to
//! them, from where it stopped.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::args::ServeArgs;

mod api;
mod cache;

use api::{error, parse_query, Answer};
use cache::{Cache, Listeners};

/// The page's files, embedded: (path, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("assets/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "/app.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/app.css"),
    ),
    (
        "/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/uPlot.iife.min.js"),
    ),
    (
        "/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/uPlot.min.css"),
    ),
    (
        "/uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("assets/uPlot.LICENSE"),
    ),
];

/// How long a quiet event stream waits before a comment line, which also finds out that a
/// page has gone.
const KEEPALIVE: Duration = Duration::from_secs(15);

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
    let cache: &'static Cache = Box::leak(Box::default());
    let listeners: &'static Listeners = Box::leak(Box::default());
    let watched = root.clone();
    std::thread::Builder::new()
        .name("trainlog-watch".into())
        .spawn(move || cache::watch(&watched, cache, listeners))
        .map_err(|e| format!("cannot start the watcher thread: {e}"))?;
    for request in server.incoming_requests() {
        let url = request.url().to_owned();
        let path = url.split_once('?').map_or(url.as_str(), |(p, _)| p);
        if *request.method() == tiny_http::Method::Get && path == "/api/events" {
            let events = listeners.subscribe();
            // One thread per page listening; it ends when the page goes.
            let _ = std::thread::Builder::new()
                .name("trainlog-events".into())
                .spawn(move || stream_events(request, events));
            continue;
        }
        let response = match asset(path) {
            Some((kind, bytes)) if *request.method() == tiny_http::Method::Get => {
                tiny_http::Response::from_data(bytes)
                    .with_header(header("Content-Type", kind))
                    .with_header(header("Cache-Control", "no-cache"))
            }
            _ => {
                let (status, body) = answer(&root, cache, request.method(), &url);
                tiny_http::Response::from_data(body.to_string().into_bytes())
                    .with_status_code(status)
                    .with_header(header("Content-Type", "application/json; charset=utf-8"))
            }
        };
        // A client gone before the answer is its business.
        let _ = request.respond(response);
    }
    Ok(())
}

fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS
        .iter()
        .find(|(p, ..)| *p == path)
        .map(|(_, kind, bytes)| (*kind, *bytes))
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

/// The status and JSON body for an API request.
fn answer(root: &Path, cache: &Cache, method: &tiny_http::Method, url: &str) -> Answer {
    if *method != tiny_http::Method::Get {
        return error(405, "read-only: only GET requests are answered");
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let query = parse_query(query);
    match path {
        "/api/runs" => (200, api::runs(root, cache)),
        "/api/scalars" => api::scalars(root, cache, &query).unwrap_or_else(|e| e),
        _ => error(404, &format!("no such endpoint: {path}")),
    }
}

/// Server-sent events to one page: each watcher message as `data:`, and a comment line
/// when quiet, until the page goes.
fn stream_events(request: tiny_http::Request, events: mpsc::Receiver<Arc<str>>) {
    let mut out = request.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                Connection: keep-alive\r\n\r\nretry: 1000\n\n";
    if out
        .write_all(head.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return;
    }
    loop {
        let text = match events.recv_timeout(KEEPALIVE) {
            Ok(message) => format!("data: {message}\n\n"),
            Err(mpsc::RecvTimeoutError::Timeout) => ": still here\n\n".to_owned(),
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}
