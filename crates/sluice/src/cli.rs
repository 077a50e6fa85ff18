//! What the client subcommands (`topic`, `group`, `queue`, `cluster`) share: reaching a
//! broker, naming Kafka error codes, and printing tables or JSON. Asking the cluster is
//! `admin_client.rs`.
//!
//! Exit status: 0 done; 1 the broker refused (the Kafka error is named); 2 the broker could
//! not be asked (unreachable, timed out) or the arguments are wrong.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;
use sluice_bench::SecurityArgs;
use sluice_client::{ClientSecurity, Conn};

/// ListOffsets' timestamps for the first and the next offset.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// How long a command waits for a broker.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The exit status a command chose (1: refused by the broker).
pub type Status = i32;

/// Runs a command's future on a runtime of its own, bounded by `TIMEOUT`.
pub fn block_on<F: std::future::Future<Output = anyhow::Result<Status>>>(
    what: F,
) -> anyhow::Result<Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::time::timeout(TIMEOUT, what)
            .await
            .map_err(|_| anyhow::anyhow!("the broker did not answer within {TIMEOUT:?}"))?
    })
}

/// A cluster to ask: a broker to start from, and how to connect to its brokers.
#[derive(Clone, Debug)]
pub struct Target {
    pub bootstrap: String,
    pub security: Arc<ClientSecurity>,
}

pub async fn connect(target: &Target) -> anyhow::Result<Arc<Conn>> {
    Conn::connect_with(&target.bootstrap, &target.security)
        .await
        .with_context(|| format!("cannot reach a broker at {}", target.bootstrap))
}

/// A librdkafka client of `bootstrap`: the other properties of --command-config first (the
/// command's own settings go over them), then the security settings.
pub fn librdkafka_config(
    bootstrap: &str,
    security: &SecurityArgs,
) -> anyhow::Result<rdkafka::ClientConfig> {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (key, value) in security.other_properties()? {
        config.set(key, value);
    }
    for (key, value) in security.client_security()?.librdkafka_properties() {
        config.set(key, value);
    }
    Ok(config)
}

/// A `name=value` argument.
pub fn name_value(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{v:?} is not name=value")),
    }
}

/// A Kafka error code by its name: `TOPIC_ALREADY_EXISTS (36)`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => format!("error {code}"),
        Some(e) => format!("{} ({code})", screaming(&format!("{e:?}"))),
    }
}

/// `TopicAlreadyExists` -> `TOPIC_ALREADY_EXISTS`, as Kafka's documentation names errors.
fn screaming(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Prints a refusal (`sluice: what: ERROR (code): message`) and returns its exit status.
pub fn refused(what: &str, code: i16, message: Option<&str>) -> Status {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => eprintln!("sluice: {what}: {}: {m}", error_name(code)),
        None => eprintln!("sluice: {what}: {}", error_name(code)),
    }
    1
}

/// Prints rows under a header, each column as wide as its widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The options every client subcommand takes.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// Any broker of the cluster (host:port).
    #[arg(long, env = "SLUICE_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    #[command(flatten)]
    pub security: SecurityArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

impl Common {
    /// The cluster these options name; an error names the bad property or file. Client
    /// properties that are not security settings do nothing here, and are named as such.
    pub fn target(&self) -> anyhow::Result<Target> {
        let ignored: Vec<String> = self
            .security
            .other_properties()?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        if !ignored.is_empty() {
            eprintln!(
                "sluice: ignoring client properties this command does not use: {}",
                ignored.join(", ")
            );
        }
        Ok(Target {
            bootstrap: self.bootstrap.clone(),
            security: Arc::new(self.security.client_security()?),
        })
    }
}

/// `text` for people, `json` for scripts.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_are_named_as_kafka_names_them() {
        assert_eq!(super::error_name(36), "TOPIC_ALREADY_EXISTS (36)");
        assert_eq!(super::error_name(3), "UNKNOWN_TOPIC_OR_PARTITION (3)");
        assert_eq!(super::error_name(-9999), "error -9999");
    }
}
