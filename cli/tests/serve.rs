//! `trainlog serve` against real run directories, over real HTTP on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value as Json;

/// A server on a free port of 127.0.0.1 for `dir`, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainlog"))
        .arg("serve")
        .arg(dir)
        .args(["--addr", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `trainlog: serving DIR on http://127.0.0.1:PORT/ (...)`
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    Server { child, addr }
}

/// `METHOD path` over a fresh connection: the status and the JSON body.
fn request(server: &Server, method: &str, path: &str) -> (u16, Json) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Json::Null))
}

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
