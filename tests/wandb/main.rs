//! W&B offline runs, read back by the `wandb` package's own reader (DataStore, wandb
//! 0.21.x pinned in `tests/python/requirements-wandb.txt`) and listed by `wandb sync --view`.

#[path = "../support/python.rs"]
mod python;
#[path = "../support/run_api.rs"]
mod run_api;

use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};
use tracing::info;
use tracing_subscriber::prelude::*;
use trainlog::sink::WandbOptions;
use trainlog::{MetricGuard, MetricLogger, MetricLoggerBuilder};

fn read(run_file: &Path) -> Json {
    python::run_json("wandb", "read_wandb.py", &[run_file])
}

/// The only offline run under `dir`, and its `.wandb` file.
fn only_run(dir: &Path) -> (PathBuf, PathBuf) {
    let runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("offline-run-")
        })
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let file = std::fs::read_dir(&runs[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wandb"))
        .unwrap();
    (runs[0].clone(), file)
}

/// The type of each record the reader returned, in file order.
fn record_types(out: &Json) -> Vec<&str> {
    out["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

/// The step of each history row the reader returned.
fn history_steps(out: &Json) -> Vec<u64> {
    out["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["step"].as_u64().unwrap())
        .collect()
}

fn logger(dir: &Path, options: WandbOptions) -> MetricLoggerBuilder {
    MetricLogger::builder()
        .output_dir(dir)
        .backends("wandb")
        .unwrap()
        .rank(0)
        .wandb(options)
}

fn run(builder: MetricLoggerBuilder, f: impl FnOnce()) -> MetricGuard {
    let (layer, guard) = builder.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    guard
}

#[test]
fn run_config_history_summary_and_exit_read_back_by_wandb() {
    let dir = tempfile::tempdir().unwrap();
    let options = WandbOptions::new()
        .project("trainlog-tests")
        .entity("team")
        .run_id("abc123xy")
        .run_name("sft_{rank}");
    let guard = run(logger(dir.path(), options), || {
        info!(target: "metrics", hparams = true, lr = 3e-4, batch_size = 32u64, model = "tiny");
        for step in 0..100u64 {
            info!(target: "metrics", step, loss = step as f64 / 4.0, "eval.acc" = 0.5, note = "ok");
        }
        info!(target: "metrics", step = 100, loss = f64::NAN, up = f64::INFINITY, down = f64::NEG_INFINITY, text = "NaN");
    });
    drop(guard);
    let (run_dir, file) = only_run(&dir.path().join("wandb"));
    let name = run_dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("offline-run-") && name.ends_with("-abc123xy"),
        "{name}"
    );
    assert_eq!(file.file_name().unwrap(), "run-abc123xy.wandb");
    let out = read(&file);
    assert_eq!(out["error"], Json::Null, "{out}");
    assert_eq!(out["run"]["run_id"], "abc123xy");
    assert_eq!(out["run"]["project"], "trainlog-tests");
    assert_eq!(out["run"]["entity"], "team");
    assert_eq!(out["run"]["display_name"], "sft_0");
    assert_eq!(
        out["config"],
        json!({"lr": 3e-4, "batch_size": 32, "model": "tiny"})
    );
    let history = out["history"].as_array().unwrap();
    assert_eq!(history.len(), 101);
    for (i, row) in history.iter().take(100).enumerate() {
        assert_eq!(row["step"], i as u64);
        let items = &row["items"];
        assert_eq!(items["_step"], i as u64);
        assert_eq!(items["loss"], i as f64 / 4.0);
        assert_eq!(items["eval/acc"], 0.5);
        assert_eq!(items["note"], "ok");
        assert!(items["_timestamp"].as_f64().unwrap() > 1.7e9);
        assert!(items["_runtime"].as_f64().unwrap() >= 0.0);
    }
    // Non-finite floats arrive as floats (not the text "NaN", which stays text).
    let last = &history[100]["items"];
    assert_eq!(last["loss"], json!({"float": "NaN"}), "{last}");
    assert_eq!(last["up"], json!({"float": "Infinity"}), "{last}");
    assert_eq!(last["down"], json!({"float": "-Infinity"}), "{last}");
    assert_eq!(last["text"], "NaN", "{last}");
    assert_eq!(out["summary"]["loss"], json!({"float": "NaN"}));
    assert_eq!(out["summary"]["down"], json!({"float": "-Infinity"}));
    assert_eq!(out["summary"]["eval/acc"], 0.5);
    assert_eq!(out["exit_code"], 0);
    let types = record_types(&out);
    assert_eq!(&types[..3], &["header", "run", "config"]);
    assert_eq!(&types[types.len() - 3..], &["summary", "exit", "final"]);
}

#[test]
fn records_larger_than_a_block_are_split_and_reassembled() {
    let dir = tempfile::tempdir().unwrap();
    let wide: serde_json::Map<String, Json> = (0..5000)
        .map(|i| (format!("layer{i}.grad_norm"), json!(i)))
        .collect();
    let guard = run(
        logger(dir.path(), WandbOptions::new().run_id("wide0001")),
        || {
            for step in 0..3u64 {
                trainlog::log_dict(Some(step), &wide);
            }
        },
    );
    drop(guard);
    let (_, file) = only_run(&dir.path().join("wandb"));
    assert!(std::fs::metadata(&file).unwrap().len() > 3 * 32_768);
    let out = read(&file);
    assert_eq!(out["error"], Json::Null, "{}", out["error"]);
    let history = out["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[2]["items"]["layer4999/grad_norm"], 4999);
    assert_eq!(history[2]["items"].as_object().unwrap().len(), 5003);
}

#[test]
fn a_panicking_run_exits_with_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = logger(dir.path(), WandbOptions::new().run_id("boom0001"))
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = guard;
        tracing::dispatcher::with_default(&dispatch, || {
            info!(target: "metrics", step = 0, loss = 1.0);
            panic!("diverged");
        })
    }));
    assert!(result.is_err());
    let (_, file) = only_run(&dir.path().join("wandb"));
    let out = read(&file);
    assert_eq!(out["exit_code"], 1);
    assert_eq!(out["history"].as_array().unwrap().len(), 1);
}

#[test]
fn wandb_sync_view_lists_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let guard = run(
        logger(
            dir.path(),
            WandbOptions::new().project("p").run_id("sync0001"),
        ),
        || {
            info!(target: "metrics", hparams = true, lr = 0.1);
            info!(target: "metrics", step = 0, loss = 1.5);
        },
    );
    drop(guard);
    let (run_dir, _) = only_run(&dir.path().join("wandb"));
    let python = python::python("wandb");
    let wandb = python.parent().unwrap().join("wandb");
    let out = std::process::Command::new(wandb)
        .args(["sync", "--view", "--verbose"])
        .arg(&run_dir)
        // `sync` wants credentials even to view; a dummy key and a dead server keep it
        // local (viewing sends nothing).
        .env("WANDB_API_KEY", "x".repeat(40))
        .env("WANDB_BASE_URL", "http://127.0.0.1:9")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("Traceback"), "{stderr}");
    assert_eq!(stdout.matches("Record: num:").count(), 7, "{stdout}");
    for kind in [
        "header {",
        "run {",
        "config {",
        "history {",
        "summary {",
        "exit {",
    ] {
        assert!(stdout.contains(kind), "{kind} missing:\n{stdout}");
    }
    assert!(stdout.contains("sync0001"), "{stdout}");
}

/// Runs in a child process (see the next test).
#[test]
#[ignore = "run in a child process"]
fn child_logs_until_killed() {
    let Some(dir) = std::env::var_os("TRAINLOG_WANDB_CHILD_DIR") else {
        return;
    };
    let (layer, guard) = logger(Path::new(&dir), WandbOptions::new().run_id("kill0001"))
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for step in 0.. {
            info!(target: "metrics", step, loss = step as f64);
            if step % 100 == 99 {
                guard.flush().unwrap();
                println!("flushed {step}");
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    });
}

#[test]
fn sigkill_mid_run_reads_cleanly_up_to_the_last_flush() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_logs_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("TRAINLOG_WANDB_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut last = 0;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(n) = line.unwrap().strip_prefix("flushed ") {
            last = n.parse().unwrap();
            if last >= 399 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (_, file) = only_run(&dir.path().join("wandb"));
    let out = read(&file);
    assert_eq!(out["error"], Json::Null, "{}", out["error"]);
    let steps = history_steps(&out);
    assert!(
        steps.len() as u64 > last,
        "{} rows, flushed {last}",
        steps.len()
    );
    assert!(steps.iter().enumerate().all(|(i, s)| *s == i as u64));
}

#[test]
fn the_wandb_variables_configure_and_turn_on_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_configured_by_wandb_variables",
            "--ignored",
            "--quiet",
        ])
        .env("TRAINLOG_WANDB_ENV_CHILD", "1")
        .env("WANDB_PROJECT", "from-env")
        .env("WANDB_ENTITY", "env-team")
        .env("WANDB_NAME", "env_rank{rank}")
        .env("WANDB_RUN_ID", "envrun01")
        .env("WANDB_DIR", dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let (_, file) = only_run(&dir.path().join("wandb"));
    let out = read(&file);
    assert_eq!(out["run"]["project"], "from-env");
    assert_eq!(out["run"]["entity"], "env-team");
    assert_eq!(out["run"]["display_name"], "env_rank0");
    assert_eq!(out["run"]["run_id"], "envrun01");
    assert_eq!(out["history"][0]["items"]["loss"], 0.25);
}

#[test]
#[ignore = "run in a child process"]
fn child_configured_by_wandb_variables() {
    if std::env::var_os("TRAINLOG_WANDB_ENV_CHILD").is_none() {
        return;
    }
    // No backends, no options: WANDB_PROJECT turns W&B on, as in InstructLab.
    let (layer, guard) = MetricLogger::builder().rank(0).build().unwrap();
    assert_eq!(guard.sinks(), vec!["wandb"]);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info!(target: "metrics", step = 0, loss = 0.25);
    });
    drop(guard);
}

#[test]
fn run_tags_update_the_run_and_results_go_to_the_summary_not_the_history() {
    let root = tempfile::tempdir().unwrap();
    let (run_api, builder) = run_api::tagged_run(root.path(), "wandb");
    let builder = builder.wandb(
        WandbOptions::new()
            .project("trainlog-tests")
            .run_id("tags1234"),
    );
    let long = "v".repeat(100);
    let guard = run(builder, || {
        for step in 0..10u64 {
            info!(target: "metrics", step, loss = 1.0 / (step + 1) as f64);
        }
        run_api.tags().set("stage", "sft").unwrap();
        run_api.tags().set("long", long.as_str()).unwrap();
        run_api.tags().set("baseline", "").unwrap();
        run_api
            .result("final_accuracy", 0.945, &json!({"dataset": "test"}))
            .unwrap();
        run_api.result("final_loss", f64::NAN, &()).unwrap();
    });
    drop(guard);
    let (_, file) = only_run(&run_api.dir().join("wandb"));
    let out = read(&file);
    assert_eq!(out["error"], Json::Null, "{out}");
    // The run record is sent again with each change of the tags; the last one counts.
    let runs = record_types(&out).into_iter().filter(|t| *t == "run");
    assert_eq!(runs.count(), 4);
    assert_eq!(out["run"]["run_id"], "tags1234");
    assert_eq!(out["run"]["project"], "trainlog-tests");
    let tags: Vec<&str> = out["run"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let cut = format!("long:{}", "v".repeat(59));
    assert_eq!(tags, ["baseline", cut.as_str(), "stage:sft"]);
    assert_eq!(out["summary"]["final_accuracy"], 0.945);
    assert_eq!(
        out["summary"]["final_accuracy/metadata"],
        json!({"dataset": "test"})
    );
    assert_eq!(out["summary"]["final_loss"], json!({"float": "NaN"}));
    assert_eq!(out["summary"]["loss"], 0.1);
    let history = out["history"].as_array().unwrap();
    assert_eq!(history.len(), 10, "results and tags are not history rows");
    assert!(history
        .iter()
        .all(|row| row["items"].get("final_accuracy").is_none()));
}

#[test]
fn histograms_are_what_wandb_histogram_writes() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f64> = (0..500)
        .map(|i| ((i * 37) % 101) as f64 / 7.0 - 3.0)
        .collect();
    let guard = run(
        logger(dir.path(), WandbOptions::new().run_id("hist0001")),
        || {
            trainlog::log_histogram(5, "layer0.weights", &values);
            let mut bad = values.clone();
            bad.push(f64::NAN);
            trainlog::log_histogram(6, "layer0.weights", &bad);
        },
    );
    drop(guard);
    let (_, file) = only_run(&dir.path().join("wandb"));
    let out = read(&file);
    assert_eq!(out["error"], Json::Null);
    let history = out["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["step"], 5);
    let ours = &history[0]["items"]["layer0/weights"];
    // wandb's own wandb.Histogram over the same values.
    let values_file = dir.path().join("values.json");
    std::fs::write(&values_file, serde_json::to_string(&values).unwrap()).unwrap();
    let theirs = python::run_json("wandb", "wandb_histogram.py", &[values_file.as_path()]);
    assert_eq!(ours["_type"], "histogram");
    assert_eq!(ours["values"], theirs["values"], "bin counts");
    let (a, b) = (
        ours["bins"].as_array().unwrap(),
        theirs["bins"].as_array().unwrap(),
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-12,
            "{x} vs {y}"
        );
    }
    // The NaN is counted beside, the bins stay those of the finite values.
    assert_eq!(history[1]["items"]["layer0/weights/nonfinite"], 1);
    assert_eq!(
        history[1]["items"]["layer0/weights"]["values"],
        theirs["values"]
    );
    assert!(history[0]["items"]
        .get("layer0/weights/nonfinite")
        .is_none());
    assert_eq!(out["summary"]["layer0/weights"]["_type"], "histogram");
}

#[test]
fn resume_allow_continues_the_run_at_the_next_step_must_and_never_refuse() {
    use trainlog::sink::WandbResume;
    let dir = tempfile::tempdir().unwrap();
    let options = || WandbOptions::new().run_id("again001");
    // `must` with no earlier run, and without a run id, are refused at build.
    let err = logger(dir.path(), options().resume(WandbResume::Must))
        .build::<tracing_subscriber::Registry>();
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("no offline run `again001`"));
    let guard = run(logger(dir.path(), options()), || {
        for step in 0..10u64 {
            info!(target: "metrics", step, loss = step as f64);
        }
    });
    drop(guard);
    let (_, file) = only_run(&dir.path().join("wandb"));
    // Damage the end as a kill mid-write would: a few bytes of a record that never
    // finished are appended.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(&[0x12, 0x34, 0x56]);
    std::fs::write(&file, &bytes).unwrap();
    let err = logger(dir.path(), options().resume(WandbResume::Never))
        .build::<tracing_subscriber::Registry>();
    assert!(err.unwrap_err().to_string().contains("exists"));
    // `allow` continues it: records without a step go on at 10, nothing before is lost.
    let guard = run(
        logger(dir.path(), options().resume(WandbResume::Allow)),
        || {
            for i in 0..5 {
                info!(target: "metrics", loss = 10.0 + i as f64);
            }
        },
    );
    drop(guard);
    let (_, same) = only_run(&dir.path().join("wandb"));
    assert_eq!(same, file, "the same offline run");
    let out = read(&file);
    assert_eq!(out["error"], Json::Null);
    assert_eq!(history_steps(&out), (0..15).collect::<Vec<_>>());
    let types = record_types(&out);
    assert_eq!(
        types.iter().filter(|t| **t == "exit").count(),
        1,
        "{types:?}"
    );
    assert_eq!(types.last(), Some(&"final"));
    assert_eq!(out["run"]["resumed"], true);
    assert_eq!(out["summary"]["loss"], 14.0);
}

#[test]
fn resume_from_a_step_drops_the_later_history_and_the_summary_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let options = || WandbOptions::new().run_id("cut00001");
    let guard = run(logger(dir.path(), options()), || {
        for step in 0..10u64 {
            info!(target: "metrics", step, loss = step as f64);
            if step >= 7 {
                info!(target: "metrics", step, diverged = 1u64);
            }
        }
    });
    drop(guard);
    let guard = run(logger(dir.path(), options()).resume_from(5), || {
        for step in 5..8u64 {
            info!(target: "metrics", step, loss = step as f64 + 0.5);
        }
    });
    drop(guard);
    let (_, file) = only_run(&dir.path().join("wandb"));
    let out = read(&file);
    let history: Vec<(u64, Json)> = out["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["step"].as_u64().unwrap(), h["items"]["loss"].clone()))
        .collect();
    let expected: Vec<(u64, Json)> = (0..5u64)
        .map(|s| (s, json!(s as f64)))
        .chain((5..8u64).map(|s| (s, json!(s as f64 + 0.5))))
        .collect();
    assert_eq!(history, expected);
    assert_eq!(out["summary"]["loss"], 7.5);
    assert!(
        out["summary"].get("diverged").is_none(),
        "only orphaned steps had it: {}",
        out["summary"]
    );
    assert_eq!(out["run"]["starting_step"], "5");
}

/// Keys stay unique in a history row: `a.b` and `a/b` both map to `a/b`, a field may be
/// called `_step`; the later one gets a free `field.` name. Checked in a narrow row and in
/// a wide one (over 32 fields, where the writer keeps the names in a set).
#[test]
fn colliding_keys_get_free_names_in_narrow_and_wide_rows() {
    let dir = tempfile::tempdir().unwrap();
    let guard = run(
        logger(dir.path(), WandbOptions::new().run_id("keys0001")),
        || {
            info!(target: "metrics", step = 0u64, "a.b" = 1u64, "a/b" = 2u64, _step = 7u64);
            let mut wide = serde_json::Map::new();
            for i in 0..40 {
                wide.insert(format!("k.{i}"), json!(i));
            }
            // The map is sorted by name: `k/…` comes after every `k.…`, so these two collide
            // with fields already in the row.
            wide.insert("k/3".into(), json!(103));
            wide.insert("k/39".into(), json!(139));
            wide.insert("_runtime".into(), json!(-1));
            trainlog::log_dict(Some(1), &wide);
        },
    );
    drop(guard);
    let (_, file) = only_run(&dir.path().join("wandb"));
    let out = read(&file);
    assert_eq!(out["error"], Json::Null, "{out}");
    let history = out["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{out}");
    let narrow = &history[0]["items"];
    assert_eq!(narrow["_step"], 0);
    assert_eq!(narrow["a/b"], 1);
    assert_eq!(narrow["field.a/b"], 2);
    assert_eq!(narrow["field._step"], 7);
    let wide = history[1]["items"].as_object().unwrap();
    for i in 0..40 {
        assert_eq!(wide[&format!("k/{i}")], i, "k/{i}");
    }
    assert_eq!(wide["field.k/3"], 103);
    assert_eq!(wide["field.k/39"], 139);
    assert_eq!(wide["field._runtime"], -1);
    assert!(wide["_runtime"].as_f64().unwrap() >= 0.0);
    // The three row keys, the 40 fields and the three renamed ones: nothing collapsed.
    assert_eq!(wide.len(), 46, "{wide:?}");
}

#[test]
fn a_step_that_is_not_a_step_makes_no_step_key() {
    let dir = tempfile::tempdir().unwrap();
    let guard = run(
        logger(dir.path(), WandbOptions::new().run_id("badstep1")),
        || {
            info!(target: "metrics", step = 0u64, loss = 1.0);
            info!(target: "metrics", step = "ten", loss = 2.0);
            info!(target: "metrics", step = -1i64, loss = 3.0);
        },
    );
    drop(guard);
    let (_, file) = only_run(&dir.path().join("wandb"));
    let out = read(&file);
    assert_eq!(out["error"], Json::Null, "{out}");
    // Kept, on the next steps of W&B's own counter, without a `step` item.
    assert_eq!(history_steps(&out), [0, 1, 2]);
    for (row, loss) in out["history"]
        .as_array()
        .unwrap()
        .iter()
        .zip([1.0, 2.0, 3.0])
    {
        assert!(row["items"].get("step").is_none(), "{row}");
        assert_eq!(row["items"]["loss"], loss, "{row}");
    }
}
