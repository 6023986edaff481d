//! `trainlog plot RUN... [--metric NAME]... -o OUT.png|OUT.svg`: a chart per metric.

use std::collections::BTreeMap;
use std::path::PathBuf;

use trainlog::jsonl::{number, read as read_jsonl};

use crate::chart;
use crate::runs::{key_metrics, metric_files, summarize};
use crate::USAGE;

pub fn plot(args: &[String]) -> Result<(), String> {
    let mut runs = Vec::new();
    let mut metrics = Vec::new();
    let mut output = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--metric" | "-m" => metrics.push(it.next().ok_or("--metric needs a name")?.clone()),
            "-o" | "--output" => output = Some(it.next().ok_or("-o needs a file name")?.clone()),
            other if !other.starts_with('-') => runs.push(PathBuf::from(other)),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    let output = output.ok_or_else(|| format!("plot needs -o OUT.png or -o OUT.svg\n{USAGE}"))?;
    if runs.is_empty() {
        return Err(format!("plot needs at least one run directory\n{USAGE}"));
    }
    // (run label, rank) → lines, for every run.
    let mut sources = Vec::new();
    let mut summary = BTreeMap::new();
    for run in &runs {
        let files = metric_files(run);
        if files.is_empty() {
            return Err(format!(
                "{} has no metrics_rank*.jsonl files",
                run.display()
            ));
        }
        let name = run.file_name().map_or_else(
            || run.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        for (rank, path) in files {
            let lines = read_jsonl(&path).map_err(|e| e.to_string())?;
            summary.extend(summarize(&lines));
            sources.push((name.clone(), rank, lines));
        }
    }
    if metrics.is_empty() {
        metrics = key_metrics(&summary).into_iter().take(3).cloned().collect();
        if metrics.is_empty() {
            return Err("no numeric metrics to draw in the given runs".into());
        }
    }
    let one_rank = sources.iter().all(|(_, rank, _)| *rank == 0);
    let one_run = runs.len() == 1;
    let mut charts = Vec::new();
    for metric in &metrics {
        let mut series = Vec::new();
        for (name, rank, lines) in &sources {
            let points: Vec<(f64, f64)> = lines
                .iter()
                .filter(|l| l["hparams"] != true)
                .filter_map(|l| {
                    let step = l["step"].as_u64()? as f64;
                    Some((step, number(&l[metric.as_str()])?))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let label = match (one_run, one_rank) {
                (true, true) => name.clone(),
                (true, false) => format!("rank {rank}"),
                (false, true) => name.clone(),
                (false, false) => format!("{name} rank {rank}"),
            };
            series.push(chart::Series { label, points });
        }
        if series.is_empty() {
            return Err(format!("no run has values of `{metric}` with a step"));
        }
        let points: usize = series.iter().map(|s| s.points.len()).sum();
        let finite = series
            .iter()
            .flat_map(|s| &s.points)
            .any(|(_, y)| y.is_finite());
        if !finite {
            return Err(format!(
                "`{metric}` has nothing to draw: all of its {points} points are NaN or infinite"
            ));
        }
        charts.push(chart::Chart {
            title: metric.clone(),
            series,
        });
    }
    let bytes = if output.ends_with(".svg") {
        chart::svg(&charts).into_bytes()
    } else if output.ends_with(".png") {
        chart::png(&charts)?
    } else {
        return Err(format!("{output}: the output must end in .png or .svg"));
    };
    std::fs::write(&output, bytes).map_err(|e| format!("{output}: {e}"))?;
    let lines: usize = charts.iter().map(|c| c.series.len()).sum();
    println!("wrote {output}: {} charts, {lines} lines", charts.len());
    Ok(())
}
