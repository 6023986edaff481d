//! `trainlog plot RUN... [-m NAME]... -o OUT.png|OUT.svg`: a chart per metric, a line per
//! run and rank.

use std::collections::BTreeMap;

use trainlog::jsonl::{number, read as read_jsonl, without_orphans};

use crate::args::{PlotArgs, XAxis};
use crate::chart::{self, XKind};
use crate::runs::{histogram_stats, key_metrics, labels, line_time, metric_files, summarize};

pub fn plot(args: &PlotArgs) -> Result<(), String> {
    let output = args.output.display().to_string();
    let svg = output.ends_with(".svg");
    if !svg && !output.ends_with(".png") {
        return Err(format!("{output}: the output must end in .png or .svg"));
    }
    // (run label, rank, lines, the run's first record time), for every run and rank.
    let mut sources = Vec::new();
    let mut summary = BTreeMap::new();
    for (run, name) in args.runs.iter().zip(labels(&args.runs)) {
        let files = metric_files(run);
        if files.is_empty() {
            return Err(format!(
                "{} has no metrics_rank*.jsonl files",
                run.display()
            ));
        }
        let mut run_sources = Vec::new();
        for (rank, path) in files {
            let lines = read_jsonl(&path).map_err(|e| e.to_string())?;
            let lines: Vec<_> = without_orphans(lines)
                .into_iter()
                .map(histogram_stats)
                .collect();
            summary.extend(summarize(&lines));
            run_sources.push((name.clone(), rank, lines));
        }
        let start = run_sources
            .iter()
            .filter_map(|(_, _, lines)| lines.iter().find_map(line_time))
            .fold(f64::INFINITY, f64::min);
        sources.extend(run_sources.into_iter().map(|(n, r, l)| (n, r, l, start)));
    }
    let mut metrics = args.metrics.clone();
    if metrics.is_empty() {
        metrics = key_metrics(&summary).into_iter().take(3).cloned().collect();
        if metrics.is_empty() {
            return Err("no numeric metrics to draw in the given runs".into());
        }
    }
    let one_rank = sources.iter().all(|(_, rank, _, _)| *rank == 0);
    let one_run = args.runs.len() == 1;
    let mut charts = Vec::new();
    for metric in &metrics {
        let mut series = Vec::new();
        for (name, rank, lines, start) in &sources {
            let points: Vec<(f64, f64)> = lines
                .iter()
                .filter(|l| l["hparams"] != true)
                .filter_map(|l| {
                    let y = number(&l[metric.as_str()])?;
                    let x = match args.x {
                        XAxis::Step => l["step"].as_u64()? as f64,
                        XAxis::Relative => line_time(l)? - start,
                        XAxis::Wall => line_time(l)?,
                    };
                    Some((x, y))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
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
            title: metric.clone(),
            series,
        });
    }
    let options = chart::Options {
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
