//! `sluice cluster status`: the brokers, the controller, how many partitions each broker
//! leads, which partitions are offline and which under-replicated, asked of any broker over the Kafka protocol (so it
//! works against any Kafka-compatible cluster). Exit status 0: every partition has a leader;
//! 1: some are offline; 2: the broker could not be asked.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use sluice_broker::listeners::{parse, ListenerSettings};

use crate::admin_client::AdminClient;
use crate::cli::{self, s, Common, Output};

/// DescribeConfigs' resource type of a broker.
const BROKER_RESOURCE: i8 = 4;

/// A listener that takes clients from the network without authenticating them.
struct OpenListener {
    node_id: i32,
    listener: String,
    address: String,
    protocol: &'static str,
}

/// The listeners of broker `node` that authenticate no one, from its own configuration
/// (DescribeConfigs: `listeners`, `listener.security.protocol.map`, `ssl.client.auth`); none
/// when it cannot say.
async fn open_listeners(admin: &AdminClient, node: i32) -> Vec<OpenListener> {
    let asked = async {
        let conn = admin.brokers.conn(node).await?;
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(BROKER_RESOURCE)
                .with_resource_name(s(&node.to_string()))
                .with_configuration_keys(None),
        ]);
        let r: DescribeConfigsResponse = conn.call_at(ApiKey::DescribeConfigs, 1, &request).await?;
        Ok::<_, anyhow::Error>(r)
    };
    let Ok(r) = asked.await else {
        return Vec::new();
    };
    let value = |name: &str| {
        r.results
            .iter()
            .flat_map(|r| &r.configs)
            .find(|c| c.name.as_str() == name)
            .and_then(|c| c.value.as_ref())
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    let (listeners, protocol_map, inter_broker) = (
        value("listeners"),
        value("listener.security.protocol.map"),
        value("inter.broker.listener.name"),
    );
    let settings = ListenerSettings {
        listeners: &listeners,
        advertised_listeners: "",
        protocol_map: &protocol_map,
        inter_broker: &inter_broker,
    };
    let unused = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let Ok((parsed, _)) = parse(&settings, unused, ("localhost".into(), 0)) else {
        return Vec::new();
    };
    let client_auth = value("ssl.client.auth");
    parsed
        .iter()
        .filter(|l| !listeners.is_empty() && l.open_to_anyone(&client_auth))
        .map(|l| OpenListener {
            node_id: node,
            listener: l.name.clone(),
            address: l.bind.to_string(),
            protocol: l.protocol.name(),
        })
        .collect()
}

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
    let mut open = Vec::new();
    cli::block_on(async {
        let admin = AdminClient::connect(&args.common.target()?).await?;
        for b in &admin.metadata.brokers {
            open.extend(open_listeners(&admin, b.node_id.0).await);
        }
        metadata = Some(admin.metadata);
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
            "unauthenticated_listeners": open.iter().map(|o| serde_json::json!({
                "node_id": o.node_id, "listener": o.listener, "address": o.address,
                "protocol": o.protocol,
            })).collect::<Vec<_>>(),
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
        for o in &open {
            println!();
            println!(
                "warning: broker {} listener {} ({} on {}) takes clients from the network without authenticating them (docs/security.md)",
                o.node_id, o.listener, o.protocol, o.address
            );
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
