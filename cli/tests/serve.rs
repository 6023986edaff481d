//! `trainlog serve` against real run directories, over real HTTP on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;

use serde_json::Value as Json;

mod support;
use support::{request, serve, Server};

fn write_run(dir: &Path, name: &str, steps: u64) {
    let run = dir.join(name);
    std::fs::create_dir_all(&run).unwrap();
    let lines: String = (0..steps)
        .map(|s| {
            let loss = if s == steps / 2 {
                50.0
            } else {
                1.0 / (s + 1) as f64
            };
            format!("{{\"step\":{s},\"train/loss\":{loss},\"lr\":0.001}}\n")
        })
        .collect();
    std::fs::write(run.join("metrics_rank0.jsonl"), lines).unwrap();
}

#[test]
fn the_api_lists_runs_and_serves_every_point_of_a_series() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), "a", 10);
    write_run(&dir.path().join("group"), "b", 5000);
    let server = serve(dir.path());
    let (status, runs) = request(&server, "GET", "/api/runs");
    assert_eq!(status, 200, "{runs}");
    let names: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "group/b"]);
    assert_eq!(runs[1]["steps"], 5000);
    assert_eq!(runs[1]["metrics"], serde_json::json!(["lr", "train/loss"]));

    // Whole when small; names percent-encoded.
    let (status, s) = request(&server, "GET", "/api/scalars?run=a&metric=train%2Floss");
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["total"], 10);
    assert_eq!(s["step"].as_array().unwrap().len(), 10);
    assert_eq!(s["step"][3], 3);
    // Cut to buckets when large: every point counted, the spike kept in a bucket's max.
    let (status, s) = request(
        &server,
        "GET",
        "/api/scalars?run=group%2Fb&metric=train%2Floss&points=100",
    );
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["total"], 5000);
    assert_eq!(s["step"].as_array().unwrap().len(), 100);
    assert!(
        s["max"].as_array().unwrap().iter().any(|m| m == 50.0),
        "{s}"
    );
}

#[test]
fn nothing_outside_the_directory_and_nothing_but_reading() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    write_run(&served, "inside", 3);
    write_run(dir.path(), "outside", 3);
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path().join("outside"), served.join("link")).unwrap();
    let server = serve(&served);
    for path in [
        "/api/scalars?run=..%2Foutside&metric=lr",
        "/api/scalars?run=%2Fetc&metric=lr",
        "/api/scalars?metric=lr",
        "/api/scalars?run=inside&metric=lr&points=0",
    ] {
        let (status, body) = request(&server, "GET", path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    for path in [
        "/api/scalars?run=link&metric=lr",
        "/api/scalars?run=missing&metric=lr",
        "/api/scalars?run=inside&metric=nope",
        "/api/nothing",
    ] {
        let (status, body) = request(&server, "GET", path);
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = request(&server, "POST", "/api/runs");
    assert_eq!(status, 405);
    let (status, s) = request(&server, "GET", "/api/scalars?run=inside&metric=lr");
    assert_eq!((status, &s["total"]), (200, &serde_json::json!(3)));
}

#[test]
fn a_line_appended_is_in_the_next_answer() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), "live", 3);
    let server = serve(dir.path());
    let total = |server: &Server| {
        let (_, s) = request(server, "GET", "/api/scalars?run=live&metric=lr");
        s["total"].as_u64().unwrap()
    };
    assert_eq!(total(&server), 3);
    // Kept between requests, and read again once the file changed.
    assert_eq!(total(&server), 3);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("live").join("metrics_rank0.jsonl"))
        .unwrap();
    writeln!(f, "{{\"step\":3,\"lr\":0.002}}").unwrap();
    drop(f);
    assert_eq!(total(&server), 4);
    let (_, runs) = request(&server, "GET", "/api/runs");
    assert_eq!(runs[0]["steps"], 4);
    assert_eq!(runs[0]["last"]["lr"], 0.002);
}

#[test]
fn a_window_of_steps_comes_at_full_resolution_with_times_and_nonfinite_counted() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("w");
    std::fs::create_dir_all(&run).unwrap();
    let lines: String = (0..10_000)
        .map(|s| {
            let loss = if s % 1000 == 7 {
                "\"NaN\"".to_owned()
            } else {
                format!("{}", s as f64)
            };
            format!(
                "{{\"timestamp\":\"2026-01-01T00:00:{:02}.500000Z\",\"step\":{s},\"loss\":{loss}}}\n",
                s % 60
            )
        })
        .collect();
    std::fs::write(run.join("metrics_rank0.jsonl"), lines).unwrap();
    let server = serve(dir.path());
    let (status, s) = request(&server, "GET", "/api/scalars?run=w&metric=loss&points=50");
    assert_eq!(status, 200, "{s}");
    assert_eq!(
        (s["total"].as_u64(), s["nonfinite"].as_u64()),
        (Some(10_000), Some(10))
    );
    assert_eq!(s["time"].as_array().unwrap().len(), 50);
    let (status, s) = request(
        &server,
        "GET",
        "/api/scalars?run=w&metric=loss&points=50&from=2000&to=2019",
    );
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["total"], 20);
    assert!(s.get("min").is_none(), "20 points fit: not bucketed");
    assert_eq!(s["step"][0], 2000);
    assert_eq!(s["value"][7], "NaN");
    assert_eq!(s["nonfinite"], 1);
    // 2026-01-01T00:00:20.5Z (step 2000 is 20 s past the minute).
    assert_eq!(s["time"][0], 1_767_225_620.5);
    let (status, e) = request(&server, "GET", "/api/scalars?run=w&metric=loss&from=x");
    assert_eq!(status, 400, "{e}");
}

#[test]
fn the_page_and_its_files_are_served_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), "a", 3);
    let server = serve(dir.path());
    let get = |path: &str| {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_lowercase(), body.to_owned())
    };
    let (head, page) = get("/");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    for file in ["uPlot.iife.min.js", "app.js", "app.css", "uPlot.min.css"] {
        assert!(page.contains(file), "the page loads {file}");
        let (head, body) = get(&format!("/{file}"));
        assert!(head.starts_with("http/1.1 200"), "{file}: {head}");
        assert!(body.len() > 1000, "{file}");
    }
    // Nothing from the network: no script or style from another origin.
    let (_, app) = get("/app.js");
    for text in [&page, &app] {
        assert!(!text.contains("src=\"http") && !text.contains("href=\"http"));
        assert!(!text.contains("fetch(\"http") && !text.contains("fetch(`http"));
    }
    let (head, license) = get("/uPlot.LICENSE");
    assert!(head.starts_with("http/1.1 200") && license.contains("MIT License"));
}

/// The event stream of a server: lines as they come.
fn events(server: &Server) -> std::sync::mpsc::Receiver<String> {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(stream, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next `data:` message naming `run`, and how long it took.
fn wait_for_change(
    rx: &std::sync::mpsc::Receiver<String>,
    run: &str,
) -> (std::time::Duration, Json) {
    let start = std::time::Instant::now();
    loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("no event naming {run}: {e}"));
        if let Some(data) = line.strip_prefix("data: ") {
            let message: Json = serde_json::from_str(data).unwrap();
            if message["changed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == run)
            {
                return (start.elapsed(), message);
            }
        }
    }
}

#[test]
fn new_lines_and_new_runs_are_pushed_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), "live", 3);
    let server = serve(dir.path());
    let rx = events(&server);
    assert!(rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .unwrap()
        .starts_with("HTTP/1.1 200"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("live").join("metrics_rank0.jsonl"))
        .unwrap();
    writeln!(f, "{{\"step\":3,\"lr\":0.5}}").unwrap();
    drop(f);
    // The watcher's first look (which may come before or after the line) names the run
    // too: wait for the message after which the line is in the API.
    let start = std::time::Instant::now();
    loop {
        wait_for_change(&rx, "live");
        let (_, s) = request(&server, "GET", "/api/scalars?run=live&metric=lr");
        if s["total"] == 4 {
            assert_eq!(s["value"][3], 0.5);
            break;
        }
    }
    let took = start.elapsed();
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    // A run that appears is announced, and listed.
    write_run(&dir.path().join("later"), "b", 2);
    let (took, _) = wait_for_change(&rx, "later/b");
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    let (_, runs) = request(&server, "GET", "/api/runs");
    assert_eq!(runs.as_array().unwrap().len(), 2);
}
