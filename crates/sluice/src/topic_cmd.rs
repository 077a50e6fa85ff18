//! `sluice topic create|list|describe|delete|alter-config|add-partitions`: topics of any
//! Kafka-compatible cluster, over the Kafka protocol through one of its brokers (which passes
//! changes to its controller). Exit status as `cli.rs` says: 0 done, 1 refused, 2 not asked.

use std::collections::BTreeMap;

use anyhow::bail;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use serde::Serialize;

use crate::admin_client::Brokers;
use crate::cli::{self, s, Common, Output, Status, Target, EARLIEST, LATEST};

#[derive(clap::Subcommand, Debug)]
pub enum TopicCommand {
    /// List the topics.
    List(Common),
    /// Show topics: partitions, leaders, replicas, in-sync replicas, offsets, configs.
    Describe(DescribeArgs),
    /// Create a topic.
    Create(CreateArgs),
    /// Delete topics.
    Delete(DeleteArgs),
    /// Set or remove a topic's configs.
    AlterConfig(AlterArgs),
    /// Raise a topic's partition count.
    AddPartitions(AddPartitionsArgs),
}

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    #[arg(required = true)]
    pub topics: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    pub topic: String,
    /// Partitions (the broker's num.partitions if not given).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replicas of each partition (the broker's default.replication.factor if not given).
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// A topic config, `name=value` (repeat for more).
    #[arg(long = "config", value_parser = cli::name_value)]
    pub configs: Vec<(String, String)>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    #[arg(required = true)]
    pub topics: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct AlterArgs {
    pub topic: String,
    /// Set a config, `name=value` (repeat for more).
    #[arg(long = "set", value_parser = cli::name_value)]
    pub set: Vec<(String, String)>,
    /// Remove a config (back to the broker's default).
    #[arg(long = "delete")]
    pub delete: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct AddPartitionsArgs {
    pub topic: String,
    /// The partition count wanted (more than now).
    #[arg(long)]
    pub total: i32,
    #[command(flatten)]
    pub common: Common,
}

const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs' source of a config set on the topic itself.
const TOPIC_CONFIG_SOURCE: i8 = 1;

pub fn run(command: TopicCommand) -> anyhow::Result<Status> {
    cli::block_on(async move {
        match command {
            TopicCommand::List(c) => list(&c).await,
            TopicCommand::Describe(a) => describe(&a).await,
            TopicCommand::Create(a) => create(&a).await,
            TopicCommand::Delete(a) => delete(&a).await,
            TopicCommand::AlterConfig(a) => alter(&a).await,
            TopicCommand::AddPartitions(a) => add_partitions(&a).await,
        }
    })
}

async fn metadata(target: &Target, topics: Option<&[String]>) -> anyhow::Result<MetadataResponse> {
    let conn = cli::connect(target).await?;
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(s(t)))))
                .collect()
        }));
    conn.call(ApiKey::Metadata, &request).await
}

#[derive(Serialize)]
pub(crate) struct TopicRow {
    pub name: String,
    pub partitions: usize,
    pub replication_factor: usize,
    pub internal: bool,
}

/// Every topic, sorted by name.
pub(crate) async fn topic_rows(target: &Target) -> anyhow::Result<Vec<TopicRow>> {
    let m = metadata(target, None).await?;
    let mut rows: Vec<TopicRow> = m
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .map(|t| TopicRow {
            name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
            partitions: t.partitions.len(),
            replication_factor: t.partitions.first().map_or(0, |p| p.replica_nodes.len()),
            internal: t.is_internal,
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

async fn list(c: &Common) -> anyhow::Result<Status> {
    let rows = topic_rows(&c.target()?).await?;
    match c.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Output::Text => cli::print_table(
            &["TOPIC", "PARTITIONS", "REPLICATION", "INTERNAL"],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.partitions.to_string(),
                        r.replication_factor.to_string(),
                        if r.internal {
                            "yes".into()
                        } else {
                            String::new()
                        },
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
    Ok(0)
}

#[derive(Serialize)]
pub(crate) struct PartitionRow {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub start_offset: i64,
    pub end_offset: i64,
}

#[derive(Serialize)]
pub(crate) struct TopicDescription {
    pub name: String,
    pub id: String,
    pub internal: bool,
    pub partitions: Vec<PartitionRow>,
    /// Configs set on the topic (others are the broker's defaults).
    pub configs: BTreeMap<String, String>,
}

/// Each topic described, or the Kafka error code that refused it.
pub(crate) async fn describe_topics(
    target: &Target,
    topics: &[String],
) -> anyhow::Result<Vec<(String, Result<TopicDescription, i16>)>> {
    let m = metadata(target, Some(topics)).await?;
    let brokers = Brokers::from(&m, target.security.clone());
    let conn = cli::connect(target).await?;
    let mut out = Vec::new();
    for t in &m.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        if t.error_code != 0 {
            out.push((name, Err(t.error_code)));
            continue;
        }
        let mut partitions = Vec::new();
        let mut sorted: Vec<_> = t.partitions.iter().collect();
        sorted.sort_by_key(|p| p.partition_index);
        for p in sorted {
            let leader = p.leader_id.0;
            partitions.push(PartitionRow {
                partition: p.partition_index,
                leader,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                start_offset: brokers
                    .offset(leader, &name, p.partition_index, EARLIEST)
                    .await?,
                end_offset: brokers
                    .offset(leader, &name, p.partition_index, LATEST)
                    .await?,
            });
        }
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(s(&name))
                .with_configuration_keys(None),
        ]);
        let r: DescribeConfigsResponse = conn.call_at(ApiKey::DescribeConfigs, 1, &request).await?;
        let configs = r
            .results
            .iter()
            .flat_map(|r| &r.configs)
            .filter(|c| c.config_source == TOPIC_CONFIG_SOURCE)
            .map(|c| {
                let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                (c.name.to_string(), value)
            })
            .collect();
        let d = TopicDescription {
            name: name.clone(),
            id: t.topic_id.to_string(),
            internal: t.is_internal,
            partitions,
            configs,
        };
        out.push((name, Ok(d)));
    }
    Ok(out)
}

async fn describe(a: &DescribeArgs) -> anyhow::Result<Status> {
    let mut status = 0;
    let mut out = Vec::new();
    for (name, d) in describe_topics(&a.common.target()?, &a.topics).await? {
        match d {
            Ok(d) => out.push(d),
            Err(code) => status = cli::refused(&format!("topic {name}"), code, None),
        }
    }
    match a.common.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        Output::Text => {
            for t in &out {
                println!("topic {}  id {}", t.name, t.id);
                for (k, v) in &t.configs {
                    println!("  {k}={v}");
                }
                let list = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
                cli::print_table(
                    &["PARTITION", "LEADER", "REPLICAS", "ISR", "START", "END"],
                    &t.partitions
                        .iter()
                        .map(|p| {
                            vec![
                                p.partition.to_string(),
                                p.leader.to_string(),
                                list(&p.replicas),
                                list(&p.isr),
                                p.start_offset.to_string(),
                                p.end_offset.to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
                println!();
            }
        }
    }
    Ok(status)
}

/// A Kafka error code and its message.
pub(crate) type Refusal = (i16, Option<String>);

/// Creates a topic (-1: the broker's default partitions or replication factor).
pub(crate) async fn create_topic(
    target: &Target,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> anyhow::Result<Result<(), Refusal>> {
    let conn = cli::connect(target).await?;
    let topic = CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        );
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(30_000);
    let r: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, &request).await?;
    let Some(t) = r.topics.first() else {
        bail!("CreateTopics answered nothing");
    };
    if t.error_code != 0 {
        return Ok(Err((
            t.error_code,
            t.error_message.as_ref().map(|m| m.to_string()),
        )));
    }
    Ok(Ok(()))
}

async fn create(a: &CreateArgs) -> anyhow::Result<Status> {
    let created = create_topic(
        &a.common.target()?,
        &a.topic,
        a.partitions.unwrap_or(-1),
        a.replication_factor.unwrap_or(-1),
        &a.configs,
    )
    .await?;
    if let Err((code, message)) = created {
        return Ok(cli::refused(
            &format!("creating topic {}", a.topic),
            code,
            message.as_deref(),
        ));
    }
    report(a.common.output, "created", &a.topic);
    Ok(0)
}

/// Deletes topics: each one's outcome.
pub(crate) async fn delete_topics(
    target: &Target,
    topics: &[String],
) -> anyhow::Result<Vec<(String, Result<(), Refusal>)>> {
    let conn = cli::connect(target).await?;
    let request = DeleteTopicsRequest::default()
        .with_topic_names(topics.iter().map(|t| TopicName(s(t))).collect())
        .with_timeout_ms(30_000);
    let r: DeleteTopicsResponse = conn.call_at(ApiKey::DeleteTopics, 4, &request).await?;
    Ok(r.responses
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let outcome = match t.error_code {
                0 => Ok(()),
                code => Err((code, t.error_message.as_ref().map(|m| m.to_string()))),
            };
            (name, outcome)
        })
        .collect())
}

async fn delete(a: &DeleteArgs) -> anyhow::Result<Status> {
    let mut status = 0;
    for (name, outcome) in delete_topics(&a.common.target()?, &a.topics).await? {
        match outcome {
            Ok(()) => report(a.common.output, "deleted", &name),
            Err((code, message)) => {
                status = cli::refused(&format!("deleting topic {name}"), code, message.as_deref())
            }
        }
    }
    Ok(status)
}

async fn alter(a: &AlterArgs) -> anyhow::Result<Status> {
    if a.set.is_empty() && a.delete.is_empty() {
        bail!("nothing to change: give --set name=value or --delete name");
    }
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    let configs = a
        .set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(SET)
                .with_value(Some(s(v)))
        })
        .chain(a.delete.iter().map(|k| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(DELETE)
        }))
        .collect();
    let conn = cli::connect(&a.common.target()?).await?;
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(s(&a.topic))
            .with_configs(configs),
    ]);
    let r: IncrementalAlterConfigsResponse = conn
        .call_at(ApiKey::IncrementalAlterConfigs, 0, &request)
        .await?;
    if let Some(e) = r.responses.iter().find(|r| r.error_code != 0) {
        return Ok(cli::refused(
            &format!("changing the configs of {}", a.topic),
            e.error_code,
            e.error_message.as_deref(),
        ));
    }
    report(a.common.output, "altered", &a.topic);
    Ok(0)
}

async fn add_partitions(a: &AddPartitionsArgs) -> anyhow::Result<Status> {
    let conn = cli::connect(&a.common.target()?).await?;
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(s(&a.topic)))
            .with_count(a.total)])
        .with_timeout_ms(30_000);
    let r: CreatePartitionsResponse = conn.call_at(ApiKey::CreatePartitions, 1, &request).await?;
    if let Some(e) = r.results.iter().find(|r| r.error_code != 0) {
        return Ok(cli::refused(
            &format!("adding partitions to {}", a.topic),
            e.error_code,
            e.error_message.as_deref(),
        ));
    }
    report(a.common.output, "partitions added", &a.topic);
    Ok(0)
}

/// What a change did: a line for people, an object for scripts.
fn report(output: Output, what: &str, topic: &str) {
    match output {
        Output::Text => println!("{what}: {topic}"),
        Output::Json => println!("{}", serde_json::json!({ "topic": topic, "result": what })),
    }
}
