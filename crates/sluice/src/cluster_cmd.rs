//! `sluice cluster status`: the brokers, the controller, how many partitions each broker
//! leads, which partitions are offline and which under-replicated, asked of any broker over the Kafka protocol (so it
//! works against any Kafka-compatible cluster). Exit status 0: every partition has a leader;
//! 1: some are offline; 2: the broker could not be asked.

use std::collections::BTreeMap;

use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};

use crate::cli::{self, Common, Output};

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Show the brokers, the controller, partitions per broker and offline partitions.
    Status(StatusArgs),
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub common: Common,
}

struct BrokerRow {
    node_id: i32,
    address: String,
    rack: Option<String>,
    leads: usize,
}

/// Runs the command; returns the process exit status.
pub fn run(command: ClusterCommand) -> anyhow::Result<i32> {
    let ClusterCommand::Status(args) = command;
    let mut metadata = None;
    cli::block_on(async {
        let conn = cli::connect(&args.common.target()?).await?;
        let m: MetadataResponse = conn
            .call(
                ApiKey::Metadata,
                &MetadataRequest::default().with_topics(None),
            )
            .await?;
        metadata = Some(m);
        Ok(0)
    })?;
    let metadata = metadata.ok_or_else(|| anyhow::anyhow!("no metadata"))?;
    let mut brokers: BTreeMap<i32, BrokerRow> = metadata
        .brokers
        .iter()
        .map(|b| {
            let row = BrokerRow {
                node_id: b.node_id.0,
                address: format!("{}:{}", b.host.as_str(), b.port),
                rack: b.rack.as_ref().map(|r| r.to_string()),
                leads: 0,
            };
            (b.node_id.0, row)
        })
        .collect();
    let mut offline = Vec::new();
    let mut under_replicated = Vec::new();
    let mut partitions = 0;
    for topic in &metadata.topics {
        let name = topic.name.as_ref().map_or("?", |n| n.0.as_str());
        for p in &topic.partitions {
            partitions += 1;
            match brokers.get_mut(&p.leader_id.0) {
                Some(row) => row.leads += 1,
                None => offline.push(format!("{name}-{}", p.partition_index)),
            }
            if p.isr_nodes.len() < p.replica_nodes.len() {
                under_replicated.push(format!("{name}-{}", p.partition_index));
            }
        }
    }
    offline.sort();
    under_replicated.sort();
    let controller = metadata.controller_id.0;
    let cluster_id = metadata.cluster_id.as_ref().map(|c| c.to_string());
    if args.common.output == Output::Json {
        let rows: Vec<_> = brokers
            .values()
            .map(|b| {
                serde_json::json!({
                    "node_id": b.node_id,
                    "address": b.address,
                    "rack": b.rack,
                    "controller": b.node_id == controller,
                    "leader_partitions": b.leads,
                })
            })
            .collect();
        let out = serde_json::json!({
            "cluster_id": cluster_id,
            "controller_id": controller,
            "brokers": rows,
            "partitions": partitions,
            "offline_partitions": offline,
            "under_replicated_partitions": under_replicated,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "cluster {}  controller {}  {} brokers  {partitions} partitions  {} offline  {} under-replicated",
            cluster_id.as_deref().unwrap_or("-"),
            if controller >= 0 {
                controller.to_string()
            } else {
                "none".into()
            },
            brokers.len(),
            offline.len(),
            under_replicated.len()
        );
        println!();
        let rows: Vec<Vec<String>> = brokers
            .values()
            .map(|b| {
                let id = if b.node_id == controller {
                    format!("{}*", b.node_id)
                } else {
                    b.node_id.to_string()
                };
                let rack = b.rack.clone().unwrap_or_else(|| "-".into());
                vec![id, b.address.clone(), rack, b.leads.to_string()]
            })
            .collect();
        cli::print_table(&["BROKER", "ADDRESS", "RACK", "LEADS"], &rows);
        if controller >= 0 {
            println!("(* controller)");
        }
        if !offline.is_empty() {
            println!();
            println!("offline partitions (no live leader): {}", offline.join(" "));
        }
        if !under_replicated.is_empty() {
            println!();
            println!(
                "under-replicated partitions (fewer in-sync replicas than replicas): {}",
                under_replicated.join(" ")
            );
        }
    }
    Ok(if offline.is_empty() { 0 } else { 1 })
}
