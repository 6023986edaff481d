//! A real Prometheus server (Debian's `prometheus` package, unpacked under `target/tmp/`
//! without installing it) that scrapes trainlog's endpoint and answers PromQL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

static SETUP: Mutex<()> = Mutex::new(());

/// The `prometheus` binary: downloaded once with `apt-get download` and unpacked with
/// `dpkg-deb`, or why that is not possible on this machine.
pub fn binary() -> Result<PathBuf, String> {
    let _one = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-prometheus");
    let binary = root.join("usr/bin/prometheus");
    if binary.exists() {
        return Ok(binary);
    }
    let download = root.with_extension("download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download).map_err(|e| e.to_string())?;
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd
            .output()
            .map_err(|e| format!("{cmd:?}: {e} (a Debian-based machine has it)"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    let download_deb = || {
        run(Command::new("apt-get")
            .args(["download", "prometheus"])
            .current_dir(&download))
    };
    if let Err(first) = download_deb() {
        // A fresh machine may have no package lists yet; as root, fetch them and retry.
        run(Command::new("apt-get").args(["update", "-qq"]))
            .map_err(|why| format!("{first}; then {why} (`apt-get update` needs root)"))?;
        download_deb()?;
    }
    let deb = std::fs::read_dir(&download)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download left no .deb")?;
    let unpacked = download.join("x");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&unpacked, &root).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&download);
    Ok(binary)
}

/// A running server; killed on drop.
pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts a server scraping `target` (host:port) every second, on a free port: when a
    /// test running beside takes the port between finding it and the server binding it,
    /// the server exits saying so, and another port is tried.
    pub fn start_on_free_port(binary: &Path, target: &str) -> Prometheus {
        for _ in 0..5 {
            let port = crate::free_addr().port();
            let mut server = Prometheus::start(binary, target, port);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(_)) = server.child.try_wait() {
                    let log = server.log();
                    assert!(
                        log.contains("address already in use"),
                        "the server exited: {log}"
                    );
                    break;
                }
                let ready = reqwest::blocking::Client::new()
                    .get(format!("{}/-/ready", server.url))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .is_ok_and(|r| r.status().is_success());
                if ready {
                    return server;
                }
                assert!(
                    Instant::now() < deadline,
                    "the server is not ready after 30 s: {}",
                    server.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("no free port for the server after 5 tries");
    }

    /// Starts a server scraping `target` (host:port) every second.
    fn start(binary: &Path, target: &str, port: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
                 - job_name: trainlog\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Runs an instant PromQL query until it returns a sample (or 60 s pass); the
    /// samples' metric labels and values.
    pub fn query(&self, promql: &str) -> Vec<(Json, String)> {
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = client
                .get(format!("{}/api/v1/query", self.url))
                .query(&[("query", promql)])
                .timeout(Duration::from_secs(5))
                .send()
                .and_then(|r| r.text())
                .map(|text| serde_json::from_str::<Json>(&text).unwrap_or_default());
            if let Ok(answer) = &answer {
                let result = answer["data"]["result"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if !result.is_empty() {
                    return result
                        .iter()
                        .map(|s| {
                            let value = s["value"][1].as_str().unwrap_or_default().to_owned();
                            (s["metric"].clone(), value)
                        })
                        .collect();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no answer to `{promql}`: {answer:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
