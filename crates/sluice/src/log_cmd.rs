//! `sluice log verify DATA_DIR`: checks every segment of a data directory and reports
//! damaged batches and offset gaps. Exit status 0: nothing damaged; 1: damage found.

use std::path::PathBuf;

use sluice_log::verify::{verify_data_dir, FindingKind};

#[derive(clap::Subcommand, Debug)]
pub enum LogCommand {
    /// Read every segment and report corrupt batches and offset gaps.
    Verify(VerifyArgs),
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The broker's data directory (--data-dir of `sluice serve`).
    pub data_dir: PathBuf,
    /// `text` for people, `json` for scripts.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

/// Runs the command; returns the process exit status.
pub fn run(command: LogCommand) -> anyhow::Result<i32> {
    let LogCommand::Verify(args) = command;
    let report = verify_data_dir(&args.data_dir)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", args.data_dir.display()))?;
    let kind = |k: FindingKind| match k {
        FindingKind::Corrupt => "corrupt",
        FindingKind::Gap => "gap",
    };
    if args.output == "json" {
        let findings: Vec<serde_json::Value> = report
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "kind": kind(f.kind),
                    "file": f.file.display().to_string(),
                    "position": f.position,
                    "offset": f.offset,
                    "detail": f.detail,
                })
            })
            .collect();
        let summary = serde_json::json!({
            "partitions": report.partitions,
            "segments": report.segments,
            "batches": report.batches,
            "bytes": report.bytes,
            "corrupt": report.corrupt(),
            "findings": findings,
        });
        println!("{summary}");
    } else {
        for f in &report.findings {
            println!(
                "{:<8} {} at byte {} (offset {}): {}",
                kind(f.kind),
                f.file.display(),
                f.position,
                f.offset,
                f.detail
            );
        }
        println!(
            "checked {} partitions, {} segments, {} batches, {} bytes: {} corrupt batch(es), {} gap(s)",
            report.partitions,
            report.segments,
            report.batches,
            report.bytes,
            report.corrupt(),
            report.findings.len() - report.corrupt()
        );
    }
    Ok(if report.corrupt() > 0 { 1 } else { 0 })
}
