//! `trainlog plot RUN... [-m NAME]... -o OUT.png|OUT.svg`: a chart per metric, a line per
//! run and rank.

use std::collections::BTreeMap;

use crate::args::{PlotArgs, XAxis};
use crate::chart::{self, XKind};
use crate::engine::{FileScan, Keep, X};
use crate::runs::{key_metrics, labels, metric_files, report_bad_lines, Summary};

/// Most points one file's reading keeps of every metric before a metric is picked (48 MB
/// of them): a run of three metrics and a million steps is read once.
const ALL_POINTS: usize = 3_000_000;

pub fn plot(args: &PlotArgs) -> Result<(), String> {
    let output = args.output.display().to_string();
    let svg = output.ends_with(".svg");
    if !svg && !output.ends_with(".png") {
        return Err(format!("{output}: the output must end in .png or .svg"));
    }
    let runs: Vec<_> = args.runs.iter().zip(labels(&args.runs)).collect();
    for (run, _) in &runs {
        if metric_files(run).is_empty() {
            return Err(format!(
                "{} has no metrics_rank*.jsonl files",
                run.display()
            ));
        }
    }
    let x = match args.x {
        XAxis::Step => X::Step,
        XAxis::Relative | XAxis::Wall => X::Time,
    };
    // Without `-m`, the metrics are picked once every name is known: the first reading
    // keeps every metric's points while they are few enough (one pass for a run of a
    // few metrics), else a second reading takes those of the metrics picked.
    let mut metrics = args.metrics.clone();
    let first = Keep {
        x,
        metrics: &metrics,
        all_up_to: if metrics.is_empty() { ALL_POINTS } else { 0 },
        times: false,
    };
    let mut scans = Vec::new();
    for (run, name) in &runs {
        for (rank, path) in metric_files(run) {
            let scan = FileScan::read(&path, first)?;
            report_bad_lines(&path, &scan);
            scans.push((run, name, rank, path, scan));
        }
    }
    if metrics.is_empty() {
        let mut summary = BTreeMap::new();
        for (.., scan) in &scans {
            for m in &scan.metrics {
                summary
                    .entry(m.name.clone())
                    .or_insert_with(Summary::new)
                    .extend(&m.summary);
            }
        }
        metrics = key_metrics(&summary).into_iter().take(3).cloned().collect();
        if metrics.is_empty() {
            return Err("no numeric metrics to draw in the given runs".into());
        }
        for (.., path, scan) in &mut scans {
            if scan.points_dropped {
                *scan = FileScan::read(path, Keep::points(x, &metrics))?;
            }
        }
    }
    // (run label, rank, the file's points of each metric asked for), for every run and
    // rank; relative times from the run's first record.
    let mut sources = Vec::new();
    let mut start_of = BTreeMap::new();
    for (run, _, _, _, scan) in &scans {
        let start = start_of.entry(*run).or_insert(f64::INFINITY);
        if let Some(t) = scan.first_time {
            *start = f64::min(*start, t);
        }
    }
    for (run, name, rank, _, scan) in scans {
        let mut points: BTreeMap<String, Vec<(f64, f64)>> = scan
            .metrics
            .into_iter()
            .filter(|m| !m.points.is_empty() && metrics.contains(&m.name))
            .map(|m| (m.name, m.points))
            .collect();
        if args.x == XAxis::Relative {
            let start = start_of[run];
            for p in points.values_mut().flatten() {
                p.0 -= start;
            }
        }
        sources.push((name.clone(), rank, points));
    }
    let one_rank = sources.iter().all(|(_, rank, _)| *rank == 0);
    let one_run = args.runs.len() == 1;
    let mut charts = Vec::new();
    for metric in &metrics {
        let mut series = Vec::new();
        for (name, rank, points) in &mut sources {
            let Some(points) = points.remove(metric) else {
                continue;
            };
            let label = match (one_run, one_rank) {
                (true, false) => format!("rank {rank}"),
                (_, true) => name.clone(),
                (false, false) => format!("{name} rank {rank}"),
            };
            series.push(chart::Series { label, points });
        }
        if series.is_empty() {
            let with = match args.x {
                XAxis::Step => "with a step",
                XAxis::Relative | XAxis::Wall => "with a timestamp",
            };
            return Err(format!("no run has values of `{metric}` {with}"));
        }
        let points: usize = series.iter().map(|s| s.points.len()).sum();
        let drawable = |y: f64| y.is_finite() && (!args.log_y || y > 0.0);
        if !series
            .iter()
            .flat_map(|s| &s.points)
            .any(|(_, y)| drawable(*y))
        {
            let why = if args.log_y {
                "NaN, infinite or not above 0 (--log-y)"
            } else {
                "NaN or infinite"
            };
            return Err(format!(
                "`{metric}` has nothing to draw: all of its {points} points are {why}"
            ));
        }
        charts.push(chart::Chart {
            title: crate::runs::visible(metric).into_owned(),
            series,
        });
    }
    let options = chart::Options {
        escape_undrawable: !svg,
        smooth: args.smooth,
        log_y: args.log_y,
        x: match args.x {
            XAxis::Step => XKind::Step,
            XAxis::Relative => XKind::Relative,
            XAxis::Wall => XKind::Wall,
        },
    };
    let scene = chart::layout(&charts, &options);
    let bytes = if svg {
        chart::svg::render(&scene).into_bytes()
    } else {
        chart::png::render(&scene)?
    };
    std::fs::write(&args.output, bytes).map_err(|e| format!("{output}: {e}"))?;
    let lines: usize = charts.iter().map(|c| c.series.len()).sum();
    println!("wrote {output}: {} charts, {lines} lines", charts.len());
    Ok(())
}
