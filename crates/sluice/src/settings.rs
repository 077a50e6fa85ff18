//! Turning flags, environment and the TOML config file into a `BrokerConfig`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{anyhow, bail, Context};
use sluice_broker::BrokerConfig;

use crate::ServeArgs;

pub fn broker_config(args: &ServeArgs) -> anyhow::Result<BrokerConfig> {
    let listen: SocketAddr = args
        .listen
        .to_socket_addrs()
        .with_context(|| format!("--listen {}", args.listen))?
        .next()
        .ok_or_else(|| anyhow!("--listen {} resolves to no address", args.listen))?;
    let advertised = match &args.advertised {
        Some(a) => split_host_port(a).with_context(|| format!("--advertised {a}"))?,
        None => {
            let host = if listen.ip().is_unspecified() {
                "localhost".to_string()
            } else {
                listen.ip().to_string()
            };
            (host, listen.port())
        }
    };
    let settings = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_settings(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => BTreeMap::new(),
    };
    BrokerConfig::new(
        args.node_id,
        listen,
        advertised,
        args.data_dir.clone(),
        settings,
    )
    .map_err(|e| anyhow!(e))
}

fn split_host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("expected HOST:PORT"))?;
    let port = port.parse().map_err(|_| anyhow!("bad port {port:?}"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Reads Kafka-named settings. Both `"log.segment.bytes" = 1048576` and the nested form
/// `log.segment.bytes = 1048576` (TOML dotted keys) are accepted.
pub fn parse_settings(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let table: toml::Table = text.parse()?;
    let mut out = BTreeMap::new();
    flatten("", &toml::Value::Table(table), &mut out)?;
    Ok(out)
}

fn flatten(
    prefix: &str,
    value: &toml::Value,
    out: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let text = match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out)?;
            }
            return Ok(());
        }
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                toml::Value::String(s) => Ok(s.clone()),
                other => Ok(other.to_string()),
            })
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(","),
        toml::Value::Datetime(_) => bail!("{prefix}: dates are not a setting value"),
    };
    out.insert(prefix.to_string(), text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_quoted_keys_flatten_to_kafka_names() {
        let s = parse_settings("\"num.partitions\" = 3\nlog.segment.bytes = 1048576\nlog.cleanup.policy = [\"compact\", \"delete\"]\n").unwrap();
        assert_eq!(s["num.partitions"], "3");
        assert_eq!(s["log.segment.bytes"], "1048576");
        assert_eq!(s["log.cleanup.policy"], "compact,delete");
    }
}
