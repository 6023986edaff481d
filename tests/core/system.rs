//! System metrics (`MetricLoggerBuilder::system_metrics`): a busy loop shows about one core,
//! memory is plausible, and sampling stops with the guard.

use std::time::{Duration, Instant};

use trainlog::{sink::MemorySink, MetricLogger, Value};

/// Names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs in a child process of its own (see the next test): the other tests of this binary
/// would add their CPU time to the process's.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "run in a child process by a_busy_loop_shows_one_core_and_sampling_stops_with_the_guard"]
fn child_busy_loop() {
    if std::env::var_os("TRAINLOG_SYSTEM_CHILD").is_none() {
        return;
    }
    let memory = MemorySink::new();
    let (_layer, guard) = MetricLogger::builder()
        .sink(memory.clone())
        .system_metrics(Duration::from_millis(200))
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    // A thread names itself when it starts: give it a moment.
    let sampler_running = || thread_names().iter().any(|n| n == "trainlog-system");
    let waited = Instant::now();
    while !sampler_running() && waited.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(sampler_running());
    // Keep one core busy for a while, and measure how much CPU the whole process really
    // got (from the scheduler, a source the sampler does not use): on a busy machine it is
    // less than a whole core, and the samples must say so too.
    let on_cpu_ns = || -> f64 {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|text| text.split_whitespace().next()?.parse::<f64>().ok())
            .sum()
    };
    let (started, cpu_before) = (Instant::now(), on_cpu_ns());
    let mut x = 0u64;
    while started.elapsed() < Duration::from_millis(1500) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    std::hint::black_box(x);
    let share = (on_cpu_ns() - cpu_before) / started.elapsed().as_nanos() as f64 * 100.0;
    guard.flush().unwrap();
    let records = memory.records();
    assert!(records.len() >= 5, "{} samples in 1.5 s", records.len());
    let value = |r: &trainlog::Record, k: &str| match r.get(k) {
        Some(Value::F64(v)) => *v,
        Some(Value::U64(v)) => *v as f64,
        other => panic!("{k}: {other:?}"),
    };
    let cpu: Vec<f64> = records
        .iter()
        .map(|r| value(r, "system.cpu.percent"))
        .collect();
    // The samples taken while the loop ran (all but the first and last, which may straddle
    // its ends) agree with what the scheduler gave the process, whatever else the machine
    // does: no floor on the share, so a busy machine cannot fail this.
    let inner = &cpu[1..cpu.len() - 1];
    let mean = inner.iter().sum::<f64>() / inner.len() as f64;
    assert!(
        (share * 0.6 - 10.0..=share * 1.4 + 10.0).contains(&mean),
        "samples {cpu:?}, mean {mean:.0} %, the scheduler gave the process {share:.0} %"
    );
    // And when the machine let the loop have its core, that is what the samples show.
    if share > 80.0 {
        assert!(mean > 60.0, "samples {cpu:?}, scheduler {share:.0} %");
    }
    assert!(cpu.iter().all(|p| (0.0..=250.0).contains(p)), "{cpu:?}");
    for r in &records {
        assert_eq!(r.step, None);
        let rss = value(r, "system.memory.rss_bytes");
        assert!((1e6..8e9).contains(&rss), "rss {rss}");
        let host = value(r, "system.memory.host_used_percent");
        assert!((0.0..=100.0).contains(&host), "host {host}");
    }
    drop(guard);
    assert!(!sampler_running(), "the sampler stopped with the guard");
}

#[cfg(target_os = "linux")]
#[test]
fn a_busy_loop_shows_one_core_and_sampling_stops_with_the_guard() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "system::child_busy_loop",
            "--ignored",
            "--nocapture",
        ])
        .env("TRAINLOG_SYSTEM_CHILD", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran the test: {text}");
}
