//! `trainlog sync [DIR]`: sends what network backends left spooled under DIR.

use crate::args::SyncArgs;

#[cfg(feature = "sync")]
pub fn sync(args: &SyncArgs) -> Result<(), String> {
    use std::collections::BTreeMap;

    let dir = args.dir.display().to_string();
    let dir = dir.as_str();
    let reports = trainlog::sync_spools(dir).map_err(|e| e.to_string())?;
    if reports.is_empty() {
        println!("no spools under {dir}: nothing to send");
        return Ok(());
    }
    // Counted in messages, as the far side counts them and as the loggers' own reports
    // do, with the user's records among them.
    let mut per_destination: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut failed = 0;
    for report in &reports {
        for d in &report.delivered {
            let total = per_destination.entry(d.target.clone()).or_default();
            total.0 += d.messages;
            total.1 += d.records;
        }
        if report.refused > 0 {
            println!(
                "{}: {} messages ({} records) refused for good, kept in {}",
                report.spool.display(),
                report.refused,
                report.refused_records,
                report.spool.with_extension("dead.jsonl").display()
            );
        }
        if let Some(error) = &report.error {
            failed += 1;
            if report.pending > 0 {
                println!(
                    "{}: {} messages still pending: {error}",
                    report.spool.display(),
                    report.pending
                );
            } else {
                // Not opened at all (say, a running logger holds it).
                println!("{}: not sent: {error}", report.spool.display());
            }
        }
    }
    for (target, (messages, records)) in &per_destination {
        println!("{target}: {messages} messages ({records} records) delivered");
    }
    if per_destination.is_empty() && failed == 0 {
        println!("{} spools checked: nothing left to send", reports.len());
    }
    if failed > 0 {
        return Err(format!(
            "{failed} of {} spools could not be sent completely; run `trainlog sync {dir}` again",
            reports.len()
        ));
    }
    Ok(())
}

#[cfg(not(feature = "sync"))]
pub fn sync(_args: &SyncArgs) -> Result<(), String> {
    Err(
        "this trainlog was built without its `sync` feature (on by default): \
         cargo install trainlog-cli"
            .into(),
    )
}
