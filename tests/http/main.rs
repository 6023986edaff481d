//! The http backend against a real HTTP server on 127.0.0.1 with injected faults.

#[path = "../support/child.rs"]
mod child;
#[path = "../support/cli_bin.rs"]
mod cli_bin;
#[path = "../support/run_api.rs"]
mod run_api;
mod server;
#[path = "../support/spool.rs"]
mod spool;
#[path = "../support/tls.rs"]
mod tls;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use server::{free_port, Faults, TestServer};
use spool::{dead_file, lines, spool_file, spool_files, tear, the_dead_letters_of, the_spool_of};
use tracing::info;
use tracing_subscriber::prelude::*;
use trainlog::sink::HttpOptions;
use trainlog::{MetricGuard, MetricLogger, MetricLoggerBuilder};

fn logger(dir: &Path, options: HttpOptions) -> MetricLoggerBuilder {
    MetricLogger::builder()
        .output_dir(dir)
        .backends("http")
        .unwrap()
        .rank(0)
        .shutdown_timeout(Duration::from_secs(30))
        .http(options)
}

fn options(url: &str, run_id: &str) -> HttpOptions {
    HttpOptions::new()
        .url(url)
        .token("t0ken")
        .project("proj")
        .run_id(run_id)
        .batch(50, Duration::from_millis(50))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .close_cap(Duration::from_secs(20))
}

fn log_steps(builder: MetricLoggerBuilder, steps: std::ops::Range<u64>) -> MetricGuard {
    let (layer, guard) = builder.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for step in steps {
            info!(target: "metrics", step, loss = step as f64 / 4.0);
        }
    });
    guard
}

/// The `log` messages' steps, in the order the server stored them.
fn logged_steps(stored: &[Json]) -> Vec<u64> {
    stored
        .iter()
        .filter(|m| m["event_type"] == "log")
        .map(|m| m["step"].as_u64().unwrap())
        .collect()
}

fn assert_exact(server: &TestServer, steps: std::ops::Range<u64>) {
    let stored = server.stored();
    assert_eq!(logged_steps(&stored), steps.collect::<Vec<_>>());
    assert_eq!(stored.first().unwrap()["event_type"], "training_started");
    assert_eq!(stored.last().unwrap()["event_type"], "training_finished");
}

#[test]
fn every_record_arrives_once_in_order_in_batches() {
    let server = TestServer::start(Faults {
        token: Some("t0ken".into()),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let guard = log_steps(logger(dir.path(), options(&server.url(), "r1")), 0..500);
    let spool = the_spool_of(dir.path(), "http_spool", &server.url());
    assert!(spool.exists());
    drop(guard);
    assert_exact(&server, 0..500);
    let stored = server.stored();
    assert_eq!(stored.len(), 502);
    let m = &stored[1];
    assert_eq!(m["project_name"], "proj");
    assert_eq!(m["run_id"], "r1");
    assert_eq!(m["rank"], 0);
    assert_eq!(m["step"], 0);
    assert_eq!(m["data"], serde_json::json!({"loss": 0.0}));
    assert!(m["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(stored[501]["status"], "completed");
    assert_eq!(stored[501]["data"]["status"], "completed");
    let requests = server.requests();
    assert!(requests
        .iter()
        .all(|r| r.status == 200 && r.was_array && r.messages <= 50));
    assert!(requests.len() >= 11, "{} requests", requests.len());
    assert!(requests.iter().all(|r| r
        .idempotency_key
        .as_deref()
        .is_some_and(|k| k.starts_with("r1:0:"))));
    assert_eq!(server.duplicates(), 0);
    // Delivered in full: the spool has served its purpose.
    assert!(!spool.exists());
}

#[test]
fn event_types_hparams_custom_and_single_record_mode() {
    let server = TestServer::start(Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let builder = logger(
        dir.path(),
        options(&server.url(), "types").single_record(true),
    );
    let (layer, guard) = builder.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info!(target: "metrics", hparams = true, lr = 3e-4, model = "tiny");
        info!(target: "metrics", step = 3, event = "eval_done", acc = 0.5, "eval finished");
        info!(target: "metrics", step = 4, nan = f64::NAN);
    });
    drop(guard);
    let stored = server.stored();
    let types: Vec<&str> = stored
        .iter()
        .map(|m| m["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "training_started",
            "hparams",
            "eval_done",
            "log",
            "training_finished"
        ]
    );
    assert_eq!(
        stored[1]["data"],
        serde_json::json!({"lr": 3e-4, "model": "tiny"})
    );
    assert_eq!(stored[1]["step"], Json::Null);
    assert_eq!(
        stored[2]["data"],
        serde_json::json!({"message": "eval finished", "acc": 0.5})
    );
    assert_eq!(stored[3]["data"]["nan"], "NaN");
    assert!(server
        .requests()
        .iter()
        .all(|r| !r.was_array && r.messages == 1));
}

#[test]
fn server_errors_are_retried_until_delivered() {
    let server = TestServer::start(Faults {
        fail_first: 3,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    drop(log_steps(
        logger(dir.path(), options(&server.url(), "e500")),
        0..200,
    ));
    assert_exact(&server, 0..200);
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..4], &[500, 500, 500, 200]);
    assert_eq!(server.duplicates(), 0);
}

#[test]
fn too_many_requests_honours_retry_after() {
    let server = TestServer::start(Faults {
        throttle_first: 1,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    drop(log_steps(
        logger(dir.path(), options(&server.url(), "e429")),
        0..100,
    ));
    assert_exact(&server, 0..100);
    let requests = server.requests();
    assert_eq!(requests[0].status, 429);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "retried after {waited:?}, Retry-After said 1 s"
    );
}

#[test]
fn a_stalled_request_times_out_is_retried_and_deduplicated_by_message_id() {
    let server = TestServer::start(Faults {
        stall_first: 1,
        stall: Duration::from_secs(3),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&server.url(), "stall").request_timeout(Duration::from_secs(1));
    drop(log_steps(logger(dir.path(), opts), 0..100));
    assert_exact(&server, 0..100);
    // The stalled batch was stored, its response lost, and the batch sent again.
    assert!(
        server.duplicates() > 0,
        "the retry of the stalled batch should arrive twice"
    );
    let keys: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.idempotency_key.clone())
        .collect();
    assert_eq!(
        keys[0], keys[1],
        "a retried batch keeps its idempotency key"
    );
}

/// A server that is down: it takes connections and closes them unanswered, counting
/// them, until dropped (then the port is free for a real server).
struct Down {
    attempts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Down {
    fn on(port: u16) -> Down {
        use std::sync::atomic::Ordering::Relaxed;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, s) = (attempts.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        a.fetch_add(1, Relaxed);
                        drop(conn);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Down {
            attempts,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until `n` connections were refused this way (at most 30 s).
    fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.attempts.load(std::sync::atomic::Ordering::Relaxed) < n {
            assert!(Instant::now() < deadline, "the sender never tried again");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Down {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn records_spool_while_the_server_is_down_and_arrive_when_it_is_up() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/ingest");
    let dir = tempfile::tempdir().unwrap();
    let down = Down::on(port);
    let guard = log_steps(logger(dir.path(), options(&url, "down")), 0..300);
    // Several failed attempts (each a connection closed unanswered), then the server
    // comes up.
    down.wait_for(3);
    drop(down);
    let server = TestServer::start_on(port, Faults::default());
    drop(guard);
    assert_exact(&server, 0..300);
    assert_eq!(server.duplicates(), 0);
}

/// Logs `steps` as run `run_id` under `dir` while nothing listens on the port it returns
/// (with the URL): everything stays in the spool.
fn spooled_while_down(dir: &Path, run_id: &str, steps: std::ops::Range<u64>) -> (u16, String) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/ingest");
    let opts = options(&url, run_id).stall_timeout(Duration::from_millis(300));
    drop(log_steps(logger(dir, opts), steps));
    (port, url)
}

#[test]
fn a_torn_spool_tail_is_cut_by_the_next_logger_and_nothing_is_sent_twice_or_lost() {
    let dir = tempfile::tempdir().unwrap();
    // The server is down at exit: everything stays spooled; then a crash mid-write.
    let (port, url) = spooled_while_down(dir.path(), "torn", 0..100);
    let spool = the_spool_of(dir.path(), "http_spool", &url);
    let half = tear(&spool);
    let server = TestServer::start_on(port, Faults::default());
    drop(log_steps(
        logger(dir.path(), options(&url, "torn")),
        100..150,
    ));
    // Both loggers' messages, each once; the half line never left the machine.
    let stored = server.stored();
    assert_eq!(logged_steps(&stored), (0..150).collect::<Vec<_>>());
    assert_eq!(server.duplicates(), 0);
    assert!(server.requests().iter().all(|r| r.status == 200));
    assert!(!stored.iter().any(|m| m["step"] == 99999), "{half}");
    assert!(spool_files(dir.path(), "http_spool").is_empty());
}

#[test]
fn a_torn_dead_letter_tail_is_cut_before_the_next_refusals_are_appended() {
    let server = TestServer::start(Faults {
        token: Some("right".into()),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let refused = |steps| {
        let opts = options(&server.url(), "dead").token("wrong");
        let _ = log_steps(logger(dir.path(), opts), steps)
            .shutdown(trainlog::sink::RunOutcome::Completed);
    };
    refused(0..10);
    let dead = the_dead_letters_of(dir.path(), "http_spool", &server.url());
    tear(&dead);
    refused(10..20);
    // Every line whole (`lines` panics on a broken one), each refusal there once.
    let dead = lines(&dead);
    assert_eq!(logged_steps(&dead), (0..20).collect::<Vec<_>>());
    assert_eq!(dead.len(), 24, "two runs of a start, 10 records and an end");
}

#[test]
fn a_wrong_token_is_not_retried_and_goes_to_the_dead_letter_file() {
    let server = TestServer::start(Faults {
        token: Some("right".into()),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&server.url(), "auth").token("wrong");
    let guard = log_steps(logger(dir.path(), opts), 0..120);
    let err = guard
        .shutdown(trainlog::sink::RunOutcome::Completed)
        .unwrap_err();
    let trainlog::Error::Lost { stats, .. } = err else {
        panic!("expected Error::Lost, got {err:?}")
    };
    assert!(server.stored().is_empty());
    assert!(server.requests().iter().all(|r| r.status == 401));
    let dead = std::fs::read_to_string(dead_file(dir.path(), "http_spool")).unwrap();
    let dead: Vec<Json> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(logged_steps(&dead), (0..120).collect::<Vec<_>>());
    assert_eq!(dead.len(), 122);
    // The run's start and end messages are the sink's own, not records.
    assert_eq!(stats.lost, 120, "{stats:?}");
    assert_eq!(stats.queued, stats.written + stats.lost, "{stats:?}");
    // Each batch was refused once: no retries of a 401.
    let sent: usize = server.requests().iter().map(|r| r.messages).sum();
    assert_eq!(sent, 122);
}

#[test]
fn exit_is_not_held_by_a_dead_server_and_the_next_start_sends_the_spool() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/ingest");
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&url, "resume").stall_timeout(Duration::from_millis(500));
    let guard = log_steps(logger(dir.path(), opts.clone()), 0..100);
    let started = Instant::now();
    let result = guard.shutdown(trainlog::sink::RunOutcome::Completed);
    // Given up after the 500 ms stall timeout, not the 120 s cap.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(
        result.is_ok(),
        "the sink reports through stderr and stats, not the guard: {result:?}"
    );
    let spool = spool_file(dir.path(), "http_spool");
    // The session line, the run's start, 100 records and the run's end.
    assert_eq!(
        std::fs::read_to_string(&spool).unwrap().lines().count(),
        103
    );

    // The server comes back; a new process with the same run id logs 100..150.
    let server = TestServer::start_on(port, Faults::default());
    drop(log_steps(
        logger(dir.path(), options(&url, "resume")),
        100..150,
    ));
    let stored = server.stored();
    assert_eq!(logged_steps(&stored), (0..150).collect::<Vec<_>>());
    let kinds: Vec<&str> = stored
        .iter()
        .map(|m| m["event_type"].as_str().unwrap())
        .filter(|k| *k != "log")
        .collect();
    assert_eq!(
        kinds,
        [
            "training_started",
            "training_finished",
            "training_started",
            "training_finished"
        ]
    );
    assert_eq!(server.duplicates(), 0);
}

/// During a burst the sender writes its offset file at most every 100 ms, but always
/// before it waits to retry or stops: a server that fails mid-burst leaves an offset
/// that names exactly the acknowledged messages, so the next start sends none twice.
#[test]
fn the_offset_names_every_acknowledged_message_when_the_server_fails_mid_burst() {
    let server = TestServer::start(Faults {
        fail_from: Some(8),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&server.url(), "offset").stall_timeout(Duration::from_millis(500));
    let guard = log_steps(logger(dir.path(), opts), 0..2000);
    let stats = guard
        .shutdown(trainlog::sink::RunOutcome::Completed)
        .unwrap();
    let stored = server.stored().len();
    assert!(
        (8..2000).contains(&stored),
        "8 batches were acknowledged: {stored} messages, {stats:?}"
    );
    assert!(server.requests().iter().any(|r| r.status == 503));

    let spool = spool_file(dir.path(), "http_spool");
    let text = std::fs::read_to_string(&spool).unwrap();
    // The session line, the run's start, 2,000 records and the run's end.
    assert_eq!(text.lines().count(), 2003);
    // Acknowledged: the session line and the messages the server stored.
    let acked: usize = text.lines().take(1 + stored).map(|l| l.len() + 1).sum();
    let offset = std::fs::read_to_string(spool.with_extension("offset")).unwrap();
    let saved: usize = offset.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(saved, acked, "offset file: {offset}");
}

#[test]
fn configuration_errors_name_what_to_set_and_secrets_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    if trainlog::sink::URL_VARS
        .iter()
        .all(|v| std::env::var_os(v).is_none())
    {
        let err = MetricLogger::builder()
            .output_dir(dir.path())
            .backends("http")
            .unwrap()
            .rank(0)
            .build::<tracing_subscriber::Registry>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TRAINLOG_SERVER_URL") && err.contains("MESSENGER_LOGGER_SERVER_URL"),
            "{err}"
        );
    }
    let insecure = HttpOptions::new()
        .url("http://metrics.example.com/x")
        .token("hunter2");
    let err = logger(dir.path(), insecure.clone())
        .build::<tracing_subscriber::Registry>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("plain http"), "{err}");
    assert!(!err.contains("hunter2"));
    let builder = logger(dir.path(), insecure.allow_insecure_http(true));
    assert!(!format!("{builder:?}").contains("hunter2"));
    let err = logger(dir.path(), HttpOptions::new().url("ftp://x"))
        .build::<tracing_subscriber::Registry>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("http:// or https://"), "{err}");
}

#[test]
fn rank0_only_by_default() {
    let server = TestServer::start(Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let guard = log_steps(
        logger(dir.path(), options(&server.url(), "ranks")).rank(1),
        0..10,
    );
    assert!(guard.sinks().is_empty());
    drop(guard);
    let guard = log_steps(
        logger(dir.path(), options(&server.url(), "ranks").all_ranks(true)).rank(1),
        0..10,
    );
    drop(guard);
    let stored = server.stored();
    assert_eq!(logged_steps(&stored), (0..10).collect::<Vec<_>>());
    assert!(stored.iter().all(|m| m["rank"] == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_and_never_panics_inside_a_tokio_runtime() {
    let server = TestServer::start(Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let guard = log_steps(logger(dir.path(), options(&server.url(), "tokio")), 0..50);
    drop(guard); // dropped on a runtime thread
    assert_exact(&server, 0..50);
}

#[test]
fn a_run_that_panics_finishes_with_status_failed() {
    let server = TestServer::start(Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = logger(dir.path(), options(&server.url(), "boom"))
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = guard;
        tracing::dispatcher::with_default(&dispatch, || {
            info!(target: "metrics", step = 0, loss = 1.0);
            panic!("out of memory");
        })
    }));
    assert!(result.is_err());
    let stored = server.stored();
    assert_eq!(stored.last().unwrap()["event_type"], "training_finished");
    assert_eq!(stored.last().unwrap()["status"], "failed");
}

#[test]
fn heartbeats_are_sent_while_idle() {
    let server = TestServer::start(Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&server.url(), "beat").heartbeat(Duration::from_millis(100));
    let guard = log_steps(logger(dir.path(), opts), 0..1);
    // Idle from here: heartbeats keep coming, every 100 ms.
    let beats = || -> Vec<Json> {
        server
            .stored()
            .into_iter()
            .filter(|m| m["event_type"] == "heartbeat")
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while beats().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "{} heartbeats in 30 s",
            beats().len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(guard);
    let beats = beats();
    assert!(beats
        .iter()
        .all(|b| b["run_id"] == "beat" && b["project_name"] == "proj"));
}

/// Runs in a child process with a controlled environment (see the next test).
#[test]
#[ignore = "run in a child process"]
fn child_configured_from_the_environment() {
    let Some(dir) = std::env::var_os("TRAINLOG_HTTP_CHILD_DIR") else {
        return;
    };
    let builder = MetricLogger::builder()
        .output_dir(Path::new(&dir))
        .backends("http")
        .unwrap()
        .rank(0);
    let builder = match std::env::var("CHILD_BUILDER_URL") {
        Ok(url) => builder.http(HttpOptions::new().url(url).run_id("env")),
        Err(_) => builder.http(HttpOptions::new().run_id("env")),
    };
    drop(log_steps(builder, 0..5));
}

fn run_child(server_dir: &Path, env: &[(&str, String)]) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_configured_from_the_environment",
        "--ignored",
        "--quiet",
    ])
    .env("TRAINLOG_HTTP_CHILD_DIR", server_dir);
    for var in trainlog::sink::URL_VARS
        .iter()
        .chain(&trainlog::sink::TOKEN_VARS)
    {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    assert!(cmd.status().unwrap().success());
}

#[test]
fn url_and_token_come_from_the_environment_and_the_builder_wins() {
    let right = TestServer::start(Faults {
        token: Some("env-token".into()),
        ..Faults::default()
    });
    let other = TestServer::start(Faults::default());
    let dir = tempfile::tempdir().unwrap();
    // The Python callback's variable names work alone.
    run_child(
        dir.path(),
        &[
            ("MESSENGER_LOGGER_SERVER_URL", right.url()),
            ("MESSENGER_LOGGER_AUTH_TOKEN", "env-token".into()),
        ],
    );
    assert_eq!(logged_steps(&right.stored()), (0..5).collect::<Vec<_>>());
    // TRAINLOG_* wins over MESSENGER_LOGGER_*.
    run_child(
        dir.path(),
        &[
            ("TRAINLOG_SERVER_URL", other.url()),
            ("MESSENGER_LOGGER_SERVER_URL", right.url()),
        ],
    );
    assert_eq!(logged_steps(&other.stored()), (0..5).collect::<Vec<_>>());
    // The builder wins over the environment.
    run_child(
        dir.path(),
        &[
            ("TRAINLOG_SERVER_URL", right.url()),
            ("CHILD_BUILDER_URL", other.url()),
        ],
    );
    assert_eq!(logged_steps(&other.stored()).len(), 10);
    assert_eq!(logged_steps(&right.stored()).len(), 5);
}

#[test]
fn a_redirect_is_a_refusal_not_a_silent_loss_and_credentials_are_not_followed() {
    let elsewhere = TestServer::start(Faults::default());
    let server = TestServer::start(Faults {
        redirect_to: Some(format!("{}?api_key=SECRET", elsewhere.url())),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let guard = log_steps(logger(dir.path(), options(&server.url(), "moved")), 0..30);
    let err = guard
        .shutdown(trainlog::sink::RunOutcome::Completed)
        .unwrap_err();
    let trainlog::Error::Lost { stats, .. } = err else {
        panic!("expected Error::Lost, got {err:?}")
    };
    assert_eq!(stats.lost, 30, "{stats:?}");
    assert_eq!(stats.queued, stats.written + stats.lost, "{stats:?}");
    // Nothing was followed to the other server, nothing was retried, and the messages
    // are kept in the dead-letter file instead of being deleted as delivered.
    assert!(elsewhere.requests().is_empty());
    assert!(server.requests().iter().all(|r| r.status == 302));
    let sent: usize = server.requests().iter().map(|r| r.messages).sum();
    assert_eq!(sent, 32);
    let dead = std::fs::read_to_string(dead_file(dir.path(), "http_spool")).unwrap();
    assert_eq!(dead.lines().count(), 32);
}

#[test]
fn a_retried_batch_keeps_its_members_while_more_records_arrive() {
    let server = TestServer::start(Faults {
        fail_first: 4,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = logger(dir.path(), options(&server.url(), "grow"))
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let log = |steps: std::ops::Range<u64>| {
        tracing::dispatcher::with_default(&dispatch, || {
            for step in steps {
                info!(target: "metrics", step, loss = 1.0);
            }
        })
    };
    log(0..5);
    // Wait until the first attempt failed, then log more while it is retried.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.requests().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    log(5..45);
    drop(guard);
    assert_exact(&server, 0..45);
    let requests = server.requests();
    assert!(requests.len() >= 5, "{requests:?}");
    let first = &requests[..5];
    assert_eq!(
        first.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 500, 500, 200]
    );
    for r in first {
        assert_eq!(r.idempotency_key, first[0].idempotency_key, "{first:?}");
        assert_eq!(r.messages, first[0].messages, "{first:?}");
    }
    assert_eq!(server.duplicates(), 0);
}

#[test]
fn credentials_in_a_url_never_appear_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let err = MetricLogger::builder()
        .output_dir(dir.path())
        .backends("http")
        .unwrap()
        .http(HttpOptions::new().url("ftp://alice:pa55word@example.com/x?api_key=k3y"))
        .build::<tracing_subscriber::Registry>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be http:// or https://"), "{err}");
    assert!(!err.contains("pa55word") && !err.contains("k3y"), "{err}");
}

#[test]
fn close_keeps_sending_while_a_slow_server_makes_progress() {
    // Every request takes 0.25 s: 3,000 records in batches of 100 need about 8 s, twice
    // the stall timeout; close goes on because every batch is accepted.
    let server = TestServer::start(Faults {
        stall_first: usize::MAX,
        stall: Duration::from_millis(250),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let opts = HttpOptions::new()
        .url(server.url())
        .run_id("slow")
        .batch(100, Duration::from_secs(1));
    let builder = MetricLogger::builder()
        .output_dir(dir.path())
        .backends("http")
        .unwrap()
        .rank(0)
        .http(opts);
    let guard = log_steps(builder, 0..3000);
    let started = Instant::now();
    let stats = guard
        .shutdown(trainlog::sink::RunOutcome::Completed)
        .unwrap();
    assert!(
        started.elapsed() > Duration::from_secs(4),
        "close took {:?}: the test needs a backlog longer than the stall timeout",
        started.elapsed()
    );
    assert_exact(&server, 0..3000);
    assert_eq!(stats.written, 3000, "{stats:?}");
    assert!(spool_files(dir.path(), "http_spool").is_empty());
}

#[test]
fn a_dead_server_lets_the_process_exit_after_the_stall_timeout_not_the_cap() {
    let url = format!("http://127.0.0.1:{}/ingest", free_port());
    let dir = tempfile::tempdir().unwrap();
    let opts = HttpOptions::new().url(&url).run_id("dead");
    let builder = MetricLogger::builder()
        .output_dir(dir.path())
        .backends("http")
        .unwrap()
        .rank(0)
        .http(opts);
    let guard = log_steps(builder, 0..50);
    let started = Instant::now();
    let stats = guard
        .shutdown(trainlog::sink::RunOutcome::Completed)
        .unwrap();
    let took = started.elapsed();
    // Close waits the stall timeout (4 s) for any progress, then gives up: never less,
    // and far below the 120 s cap a server making progress would get (a bound no busy
    // machine comes near).
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(60),
        "close took {took:?}, the stall timeout is 4 s and the cap 120 s"
    );
    // Nothing is lost: the records wait in the spool.
    assert_eq!(stats.lost, 0, "{stats:?}");
    let spool = spool_file(dir.path(), "http_spool");
    let text = std::fs::read_to_string(spool).unwrap();
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("\"event_type\":\"log\""))
            .count(),
        50
    );
}

#[test]
fn sync_sends_a_leftover_spool_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("exp1");
    // The server is down at exit: everything stays spooled.
    let (port, url) = spooled_while_down(&run_dir, "left", 0..120);
    assert_eq!(spool_files(&run_dir, "http_spool").len(), 1);

    let server = TestServer::start_on(port, Faults::default());
    let reports = trainlog::sync_spools(dir.path()).unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0];
    assert_eq!(report.error, None);
    assert_eq!(report.pending, 0);
    // Counted as the server counts them: the run's start and end are messages too.
    assert_eq!(
        report.delivered,
        vec![trainlog::Delivered {
            target: url.clone(),
            messages: 122,
            records: 120
        }]
    );
    assert_exact(&server, 0..120);
    assert!(spool_files(&run_dir, "http_spool").is_empty());
    // Again: nothing left, nothing sent.
    let requests = server.requests().len();
    let reports = trainlog::sync_spools(dir.path()).unwrap();
    assert!(reports.is_empty(), "{reports:?}");
    assert_eq!(server.requests().len(), requests);
    assert_eq!(server.duplicates(), 0);
}

#[test]
fn trainlog_sync_command_reports_per_destination_and_the_token_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (port, url) = spooled_while_down(dir.path(), "cli", 0..40);
    let spool = spool_file(dir.path(), "http_spool");
    assert!(!std::fs::read_to_string(&spool).unwrap().contains("t0ken"));

    // A slow server (1.2 s per request), so that the wait is shown.
    let server = TestServer::start_on(
        port,
        Faults {
            token: Some("t0ken".into()),
            stall_first: usize::MAX,
            stall: Duration::from_millis(1200),
            ..Faults::default()
        },
    );
    let cli = |token: Option<&str>| {
        let mut cmd = std::process::Command::new(cli_bin::trainlog_bin());
        cmd.arg("sync")
            .arg(dir.path())
            .env_remove("MESSENGER_LOGGER_AUTH_TOKEN");
        match token {
            Some(t) => cmd.env("TRAINLOG_AUTH_TOKEN", t),
            None => cmd.env_remove("TRAINLOG_AUTH_TOKEN"),
        };
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = cli(Some("t0ken"));
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(&format!("{url}: 42 messages (40 records) delivered")),
        "{out}"
    );
    // Off a terminal the wait is one plain line, and the end says that everything went.
    assert!(
        err.contains(&format!(
            "trainlog: http: sending 42 pending messages to {url} …"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "trainlog: http: delivered every pending message to {url}"
        )),
        "{err}"
    );
    assert_exact(&server, 0..40);
    let (ok, out, _) = cli(Some("t0ken"));
    assert!(ok);
    assert!(out.contains("nothing to send"), "{out}");
}

#[test]
fn https_with_a_private_ca_from_the_options_or_ssl_cert_file() {
    let ca = tls::TestCa::new();
    let server = TestServer::start(Faults::default());
    let proxy = tls::TlsProxy::start(&ca, server.port);
    let url = proxy.url("/ingest");
    // Without the CA the server's certificate is not trusted: nothing arrives, nothing
    // is lost, the records wait in the spool.
    let untrusted = tempfile::tempdir().unwrap();
    let opts = options(&url, "untrusted").stall_timeout(Duration::from_millis(500));
    let stats = log_steps(logger(untrusted.path(), opts), 0..10)
        .shutdown(trainlog::sink::RunOutcome::Completed)
        .unwrap();
    assert_eq!(stats.lost, 0, "{stats:?}");
    assert!(server.stored().is_empty());
    assert_eq!(spool_files(untrusted.path(), "http_spool").len(), 1);
    // With the CA from the options.
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&url, "tls").ca_certificate(ca.ca());
    drop(log_steps(logger(dir.path(), opts), 0..50));
    assert_exact(&server, 0..50);
    // With the CA from SSL_CERT_FILE (a child process, for its own environment).
    let other = TestServer::start(Faults::default());
    let proxy2 = tls::TlsProxy::start(&ca, other.port);
    run_child(
        dir.path(),
        &[
            ("TRAINLOG_SERVER_URL", proxy2.url("/ingest")),
            ("SSL_CERT_FILE", ca.ca().display().to_string()),
        ],
    );
    assert_eq!(logged_steps(&other.stored()), (0..5).collect::<Vec<_>>());
}

#[test]
fn run_tags_and_results_arrive_as_their_own_event_types() {
    let server = TestServer::start(Faults::default());
    let root = tempfile::tempdir().unwrap();
    let (run_api, builder) = run_api::tagged_run(root.path(), "http");
    let builder = builder.http(options(&server.url(), "tagged"));
    let (layer, guard) = builder.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        run_api.tags().set("stage", "sft").unwrap();
        run_api
            .result(
                "final_accuracy",
                0.945,
                &serde_json::json!({"dataset": "test"}),
            )
            .unwrap();
    });
    drop(guard);
    let stored = server.stored();
    let tags = stored.iter().find(|m| m["event_type"] == "tags").unwrap();
    assert_eq!(tags["data"], serde_json::json!({"stage": "sft"}));
    let result = stored.iter().find(|m| m["event_type"] == "result").unwrap();
    assert_eq!(
        result["data"],
        serde_json::json!({"final_accuracy": 0.945, "metadata.dataset": "test"})
    );
}

#[test]
#[ignore = "run in a child process by the give-up and credentials tests"]
fn child_logs_to_a_url() {
    if !child::is_child("child_logs_to_a_url") {
        return;
    }
    let dir = child::var("CHILD_DIR");
    let opts = options(&child::var("CHILD_URL"), "child").stall_timeout(Duration::from_millis(300));
    drop(log_steps(logger(Path::new(&dir), opts), 0..50));
}

#[test]
fn the_give_up_message_says_how_many_messages_stay_where_and_how_to_send_them() {
    let url = format!("http://127.0.0.1:{}/ingest", free_port());
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().to_str().unwrap();
    let out = child::run(
        "child_logs_to_a_url",
        &[("CHILD_DIR", dir_text), ("CHILD_URL", &url)],
    );
    assert!(out.ok, "{}", out.stderr);
    let spool = the_spool_of(dir.path(), "http_spool", &url);
    // A session line (where the messages go), then the run's start, 50 records and the
    // run's end: 52 messages, as the server would count them.
    let spooled = lines(&spool);
    assert_eq!(spooled.len(), 53);
    assert!(spooled[0].get("session").is_some(), "{}", spooled[0]);
    let expected = format!(
        "trainlog: close failed: http sink: nothing was delivered for 300ms; 52 messages stay in {}; \
         send them with `trainlog sync {dir_text}`, or start a logger with the same output directory",
        spool.display()
    );
    let said = out.trainlog_lines();
    assert!(
        said.contains(&expected.as_str()),
        "expected\n{expected}\nin\n{}",
        out.stderr
    );
}

#[test]
fn a_refusal_from_a_url_with_credentials_is_reported_without_them() {
    let server = TestServer::start(Faults {
        token: Some("right".into()),
        ..Faults::default()
    });
    let url = format!(
        "http://alice:pa55w0rd@127.0.0.1:{}/ingest?token=s3cr3t&run=7",
        server.port
    );
    let dir = tempfile::tempdir().unwrap();
    let out = child::run(
        "child_logs_to_a_url",
        &[
            ("CHILD_DIR", dir.path().to_str().unwrap()),
            ("CHILD_URL", &url),
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    assert!(server.requests().iter().all(|r| r.status == 401));
    let said = out.trainlog_lines().join("\n");
    assert!(
        said.contains("401"),
        "the refusal is reported: {}",
        out.stderr
    );
    for secret in ["pa55w0rd", "s3cr3t", "t0ken"] {
        assert!(!out.stderr.contains(secret), "{secret} in:\n{}", out.stderr);
        assert!(!out.stdout.contains(secret), "{secret} in:\n{}", out.stdout);
    }
    // What the spool keeps on disk holds no secret either.
    for entry in std::fs::read_dir(dir.path().join("http_spool")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for secret in ["pa55w0rd", "s3cr3t", "t0ken"] {
            assert!(!text.contains(secret), "{secret} in the spool: {text}");
        }
    }
}

#[test]
fn default_run_ids_differ_between_loggers_started_in_the_same_second() {
    let server = TestServer::start(Faults::default());
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let guards: Vec<_> = dirs
        .iter()
        .map(|dir| {
            let opts = HttpOptions::new().url(server.url());
            let builder = MetricLogger::builder()
                .output_dir(dir.path())
                .backends("http")
                .unwrap()
                .rank(0)
                .http(opts);
            log_steps(builder, 0..1)
        })
        .collect();
    drop(guards);
    let mut ids: Vec<String> = server
        .stored()
        .iter()
        .filter(|m| m["event_type"] == "log")
        .map(|m| m["run_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    let pid = std::process::id().to_string();
    for id in &ids {
        // run_<YYYYMMDD_HHMMSS>_<host>_<pid>_<4 hex digits>
        let parts: Vec<&str> = id.split('_').collect();
        assert_eq!(parts[0], "run", "{id}");
        assert_eq!(parts[1].len(), 8, "{id}");
        assert_eq!(parts[2].len(), 6, "{id}");
        assert_eq!(parts[parts.len() - 2], pid, "{id}");
        let random = parts[parts.len() - 1];
        assert!(
            random.len() == 4 && random.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 2, "two loggers, two run ids: {ids:?}");
}

#[test]
fn two_loggers_on_one_spool_the_second_is_refused_and_sync_leaves_a_spool_in_use_alone() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/ingest");
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(&url, "one").stall_timeout(Duration::from_millis(300));
    let first = log_steps(logger(dir.path(), opts()), 0..10);
    let err = logger(dir.path(), opts())
        .build::<tracing_subscriber::Registry>()
        .unwrap_err();
    assert!(matches!(err, trainlog::Error::InUse { .. }), "{err:?}");
    let spool = the_spool_of(dir.path(), "http_spool", &url);
    assert!(
        err.to_string().contains(&spool.display().to_string()),
        "{err}"
    );
    // `trainlog sync` does not send a spool a running logger is sending.
    let server = TestServer::start_on(port, Faults::default());
    let reports = trainlog::sync_spools(dir.path()).unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0];
    assert!(
        report
            .error
            .as_deref()
            .is_some_and(|e| e.contains("another trainlog logger")),
        "{report:?}"
    );
    assert!(report.delivered.is_empty(), "{report:?}");
    drop(first);
    assert_exact(&server, 0..10);
    assert_eq!(server.duplicates(), 0);
}

#[test]
fn a_step_that_is_not_a_step_is_sent_without_one() {
    let server = TestServer::start(Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = logger(dir.path(), options(&server.url(), "badstep"))
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info!(target: "metrics", step = "ten", loss = 2.0);
        info!(target: "metrics", step = -1i64, loss = 3.0);
    });
    drop(guard);
    let logs: Vec<Json> = server
        .stored()
        .into_iter()
        .filter(|m| m["event_type"] == "log")
        .collect();
    assert_eq!(logs.len(), 2);
    for (m, loss) in logs.iter().zip([2.0, 3.0]) {
        assert!(m.get("step").is_none_or(Json::is_null), "{m}");
        assert_eq!(m["data"], serde_json::json!({"loss": loss}), "{m}");
    }
}
