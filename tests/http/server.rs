//! A real HTTP server on 127.0.0.1 for the http backend's tests, with fault injection.
//! It stores messages once per `message_id` (first arrival order) and keeps a log of
//! every request, so tests can check delivery is exact and idempotent.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// Faults to inject, counted over all requests from the first.
#[derive(Clone, Default)]
pub struct Faults {
    /// The first N requests answer 500.
    pub fail_first: usize,
    /// The next N requests answer 429 with `Retry-After: 1`.
    pub throttle_first: usize,
    /// The next N requests are stored, then answered after `stall`.
    pub stall_first: usize,
    pub stall: Duration,
    /// Requests without `Authorization: Bearer <token>` answer 401.
    pub token: Option<String>,
    /// Every request answers 302 with this `Location`.
    pub redirect_to: Option<String>,
    /// Requests from the Nth on (0-based) answer 503, unstored: a server that goes away.
    pub fail_from: Option<usize>,
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub status: u16,
    pub messages: usize,
    pub was_array: bool,
    pub idempotency_key: Option<String>,
}

#[derive(Default)]
struct State {
    stored: Vec<Json>,
    ids: HashSet<String>,
    duplicates: usize,
    requests: Vec<Seen>,
}

pub struct TestServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestServer {
    pub fn start(faults: Faults) -> Self {
        Self::start_on(0, faults)
    }

    pub fn start_on(port: u16, faults: Faults) -> Self {
        let server = tiny_http::Server::http(("127.0.0.1", port)).expect("test server binds");
        let port = server.server_addr().to_ip().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(50)) {
                        handle(request, &faults, &state);
                    }
                }
            })
        };
        TestServer {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/ingest", self.port)
    }

    /// Messages stored, once each, in first-arrival order.
    pub fn stored(&self) -> Vec<Json> {
        self.state.lock().unwrap().stored.clone()
    }

    /// Messages that arrived again after they were stored.
    pub fn duplicates(&self) -> usize {
        self.state.lock().unwrap().duplicates
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(mut request: tiny_http::Request, faults: &Faults, state: &Mutex<State>) {
    let mut body = String::new();
    let _ = request.as_reader().read_to_string(&mut body);
    let header = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_owned())
    };
    let auth = header("Authorization");
    let idempotency_key = header("Idempotency-Key");
    let parsed: Json = serde_json::from_str(&body).unwrap_or(Json::Null);
    let was_array = parsed.is_array();
    let messages: Vec<Json> = match parsed {
        Json::Array(items) => items,
        Json::Null => Vec::new(),
        one => vec![one],
    };
    let n = state.lock().unwrap().requests.len();
    let (status, retry_after, store, stall) = if faults.redirect_to.is_some() {
        (302, false, false, false)
    } else if faults
        .token
        .as_ref()
        .is_some_and(|t| auth.as_deref() != Some(&format!("Bearer {t}")))
    {
        (401, false, false, false)
    } else if n < faults.fail_first {
        (500, false, false, false)
    } else if faults.fail_from.is_some_and(|from| n >= from) {
        (503, false, false, false)
    } else if n < faults.fail_first + faults.throttle_first {
        (429, true, false, false)
    } else if n < faults.fail_first + faults.throttle_first + faults.stall_first {
        (200, false, true, true)
    } else {
        (200, false, true, false)
    };
    {
        let mut s = state.lock().unwrap();
        s.requests.push(Seen {
            at: Instant::now(),
            status,
            messages: messages.len(),
            was_array,
            idempotency_key,
        });
        if store {
            for m in messages {
                let id = m["message_id"].as_str().unwrap_or("").to_owned();
                if id.is_empty() || s.ids.insert(id) {
                    s.stored.push(m);
                } else {
                    s.duplicates += 1;
                }
            }
        }
    }
    if stall {
        std::thread::sleep(faults.stall);
    }
    let text = if status == 401 { "invalid token" } else { "ok" };
    let mut response = tiny_http::Response::from_string(text).with_status_code(status);
    if let Some(location) = &faults.redirect_to {
        response.add_header(tiny_http::Header::from_bytes("Location", location.as_str()).unwrap());
    }
    if retry_after {
        response.add_header(tiny_http::Header::from_bytes("Retry-After", "1").unwrap());
    }
    let _ = request.respond(response);
}
