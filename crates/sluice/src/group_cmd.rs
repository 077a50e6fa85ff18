//! `sluice group list|describe|delete|reset-offsets`: consumer groups of any Kafka-compatible
//! cluster over the Kafka protocol: listed from every broker, described and changed at their
//! coordinator, with each partition's lag (its end offset, from its leader, minus the
//! committed offset). Exit status as `cli.rs` says: 0 done, 1 refused, 2 not asked.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse, MetadataResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use serde::Serialize;
use sluice_client::Conn;

use crate::admin_client::{AdminClient, KEY_TYPE_GROUP};
use crate::cli::{self, s, Common, Output, Status, Target, EARLIEST, LATEST};

#[derive(clap::Subcommand, Debug)]
pub enum GroupCommand {
    /// List the consumer groups of every broker.
    List(Common),
    /// Show a group: its state, members, and per partition the committed offset and lag.
    Describe(GroupArgs),
    /// Delete groups (only empty ones: their committed offsets go too).
    Delete(DeleteArgs),
    /// Move a group's committed offsets (the group must be empty). A dry run unless
    /// --execute.
    ResetOffsets(ResetArgs),
}

#[derive(clap::Args, Debug)]
pub struct GroupArgs {
    pub group: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    #[arg(required = true)]
    pub groups: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("to").required(true)))]
pub struct ResetArgs {
    pub group: String,
    /// Topics to reset (all partitions of each); default: those the group committed for.
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// To each partition's first offset.
    #[arg(long, group = "to")]
    pub to_earliest: bool,
    /// To each partition's end.
    #[arg(long, group = "to")]
    pub to_latest: bool,
    /// To this offset (kept within each partition's start and end).
    #[arg(long, group = "to")]
    pub to_offset: Option<i64>,
    /// To the first record at or after this time (epoch milliseconds).
    #[arg(long, group = "to")]
    pub to_timestamp: Option<i64>,
    /// Commit the new offsets (without it, only show them).
    #[arg(long)]
    pub execute: bool,
    #[command(flatten)]
    pub common: Common,
}

pub fn run(command: GroupCommand) -> anyhow::Result<Status> {
    cli::block_on(async move {
        match command {
            GroupCommand::List(c) => list(&c).await,
            GroupCommand::Describe(a) => describe(&a).await,
            GroupCommand::Delete(a) => delete(&a).await,
            GroupCommand::ResetOffsets(a) => reset(&a).await,
        }
    })
}

#[derive(Serialize)]
pub(crate) struct GroupRow {
    pub group: String,
    pub state: String,
    pub group_type: String,
    pub protocol_type: String,
}

/// Every broker's groups, by id; or the error code a broker refused the listing with.
pub(crate) async fn group_rows(target: &Target) -> anyhow::Result<Result<Vec<GroupRow>, i16>> {
    let AdminClient {
        metadata, brokers, ..
    } = AdminClient::connect(target).await?;
    let mut rows = BTreeMap::new();
    for b in &metadata.brokers {
        let conn = brokers.conn(b.node_id.0).await?;
        let r: ListGroupsResponse = conn
            .call_at(ApiKey::ListGroups, 5, &ListGroupsRequest::default())
            .await?;
        if r.error_code != 0 {
            return Ok(Err(r.error_code));
        }
        for g in r.groups {
            rows.insert(
                g.group_id.to_string(),
                GroupRow {
                    group: g.group_id.to_string(),
                    state: g.group_state.to_string(),
                    group_type: g.group_type.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                },
            );
        }
    }
    Ok(Ok(rows.into_values().collect()))
}

async fn list(c: &Common) -> anyhow::Result<Status> {
    let rows = match group_rows(&c.target()?).await? {
        Ok(rows) => rows,
        Err(code) => return Ok(cli::refused("listing groups", code, None)),
    };
    match c.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Output::Text => cli::print_table(
            &["GROUP", "STATE", "TYPE", "PROTOCOL"],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.group.clone(),
                        r.state.clone(),
                        r.group_type.clone(),
                        r.protocol_type.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
    Ok(0)
}

#[derive(Serialize)]
pub(crate) struct MemberRow {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    /// The partitions it is assigned, `topic-partition`.
    pub assignment: Vec<String>,
}

/// A classic consumer-protocol assignment (ConsumerProtocolAssignment: version, then topics
/// with their partitions), as `topic-partition` names; empty if it is not one.
fn classic_assignment(bytes: &[u8]) -> Vec<String> {
    fn parse(b: &[u8]) -> Option<Vec<String>> {
        let mut pos = 2; // version
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = b.get(pos..pos + n)?;
            pos += n;
            Some(s)
        };
        let topics = i32::from_be_bytes(take(4)?.try_into().ok()?);
        let mut out = Vec::new();
        for _ in 0..topics.clamp(0, 100_000) {
            let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
            let name = String::from_utf8_lossy(take(len.max(0) as usize)?).into_owned();
            let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
            for _ in 0..count.clamp(0, 1_000_000) {
                let p = i32::from_be_bytes(take(4)?.try_into().ok()?);
                out.push(format!("{name}-{p}"));
            }
        }
        Some(out)
    }
    parse(bytes).unwrap_or_default()
}

#[derive(Serialize)]
pub(crate) struct LagRow {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub end_offset: i64,
    pub lag: i64,
}

#[derive(Serialize)]
pub(crate) struct Description {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    pub members: Vec<MemberRow>,
    pub partitions: Vec<LagRow>,
    pub total_lag: i64,
}

/// Why a group could not be described: a Kafka error (and message), or no such group.
pub(crate) enum NotDescribed {
    Refused(i16, Option<String>),
    NoSuchGroup,
}

/// A partition's leader, by the metadata.
fn leader_of(metadata: &MetadataResponse, topic: &str, partition: i32) -> i32 {
    metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition))
        .map_or(-1, |p| p.leader_id.0)
}

/// The group's committed offsets: (topic, partition) -> offset.
async fn committed(
    coordinator: &Conn,
    group: &str,
) -> anyhow::Result<Result<BTreeMap<(String, i32), i64>, i16>> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(None);
    let r: OffsetFetchResponse = coordinator
        .call_at(ApiKey::OffsetFetch, 7, &request)
        .await?;
    if r.error_code != 0 {
        return Ok(Err(r.error_code));
    }
    Ok(Ok(r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.error_code == 0 && p.committed_offset >= 0)
                .map(move |p| {
                    (
                        (t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    )
                })
        })
        .collect()))
}

/// A group: state, members, and per partition its committed offset and lag.
pub(crate) async fn describe_group(
    target: &Target,
    group: &str,
) -> anyhow::Result<Result<Description, NotDescribed>> {
    let AdminClient {
        via: conn,
        metadata,
        brokers,
    } = AdminClient::connect(target).await?;
    let coordinator = brokers.find(&conn, KEY_TYPE_GROUP, group).await?;
    let r: DescribeGroupsResponse = coordinator
        .call_at(
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
        )
        .await?;
    let g = r
        .groups
        .first()
        .ok_or_else(|| anyhow!("DescribeGroups answered nothing"))?;
    if g.error_code != 0 {
        let message = g.error_message.as_ref().map(|m| m.to_string());
        return Ok(Err(NotDescribed::Refused(g.error_code, message)));
    }
    let offsets = match committed(&coordinator, group).await? {
        Ok(o) => o,
        Err(code) => return Ok(Err(NotDescribed::Refused(code, None))),
    };
    if g.group_state.as_str() == "Dead" && offsets.is_empty() {
        return Ok(Err(NotDescribed::NoSuchGroup));
    }
    let mut partitions = Vec::new();
    for ((topic, partition), committed) in &offsets {
        let leader = leader_of(&metadata, topic, *partition);
        let end = brokers.offset(leader, topic, *partition, LATEST).await?;
        partitions.push(LagRow {
            topic: topic.clone(),
            partition: *partition,
            committed: *committed,
            end_offset: end,
            lag: (end - committed).max(0),
        });
    }
    Ok(Ok(Description {
        group: group.to_string(),
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        members: match consumer_members(&coordinator, group).await {
            Some(members) => members,
            None => g
                .members
                .iter()
                .map(|m| MemberRow {
                    member_id: m.member_id.to_string(),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment: classic_assignment(&m.member_assignment),
                })
                .collect(),
        },
        total_lag: partitions.iter().map(|p| p.lag).sum(),
        partitions,
    }))
}

/// The members of a KIP-848 consumer group with their assignments (ConsumerGroupDescribe);
/// None for another kind of group, or a broker without that API.
async fn consumer_members(coordinator: &Conn, group: &str) -> Option<Vec<MemberRow>> {
    use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
    let r: ConsumerGroupDescribeResponse = coordinator
        .call_at(ApiKey::ConsumerGroupDescribe, 0, &request)
        .await
        .ok()?;
    let g = r.groups.first().filter(|g| g.error_code == 0)?;
    Some(
        g.members
            .iter()
            .map(|m| MemberRow {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: m
                    .assignment
                    .topic_partitions
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(move |p| format!("{}-{p}", t.topic_name.0))
                    })
                    .collect(),
            })
            .collect(),
    )
}

async fn describe(a: &GroupArgs) -> anyhow::Result<Status> {
    let d = match describe_group(&a.common.target()?, &a.group).await? {
        Ok(d) => d,
        Err(NotDescribed::Refused(code, message)) => {
            return Ok(cli::refused(
                &format!("group {}", a.group),
                code,
                message.as_deref(),
            ))
        }
        Err(NotDescribed::NoSuchGroup) => {
            eprintln!("sluice: no group {:?}", a.group);
            return Ok(1);
        }
    };
    match a.common.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&d)?),
        Output::Text => {
            println!(
                "group {}  {}  {} members  lag {}",
                d.group,
                d.state,
                d.members.len(),
                d.total_lag
            );
            if !d.members.is_empty() {
                println!();
                cli::print_table(
                    &["MEMBER", "CLIENT", "HOST", "ASSIGNED"],
                    &d.members
                        .iter()
                        .map(|m| {
                            vec![
                                m.member_id.clone(),
                                m.client_id.clone(),
                                m.host.clone(),
                                m.assignment.join(","),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
            println!();
            cli::print_table(
                &["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"],
                &d.partitions
                    .iter()
                    .map(|p| {
                        vec![
                            p.topic.clone(),
                            p.partition.to_string(),
                            p.committed.to_string(),
                            p.end_offset.to_string(),
                            p.lag.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            );
        }
    }
    Ok(0)
}

async fn delete(a: &DeleteArgs) -> anyhow::Result<Status> {
    let AdminClient {
        via: conn, brokers, ..
    } = AdminClient::connect(&a.common.target()?).await?;
    let mut status = 0;
    for group in &a.groups {
        let coordinator = brokers.find(&conn, KEY_TYPE_GROUP, group).await?;
        let r: DeleteGroupsResponse = coordinator
            .call_at(
                ApiKey::DeleteGroups,
                2,
                &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]),
            )
            .await?;
        match r.results.first() {
            Some(g) if g.error_code != 0 => {
                status = cli::refused(&format!("deleting group {group}"), g.error_code, None)
            }
            Some(_) => match a.common.output {
                Output::Text => println!("deleted: {group}"),
                Output::Json => {
                    println!(
                        "{}",
                        serde_json::json!({ "group": group, "result": "deleted" })
                    )
                }
            },
            None => bail!("DeleteGroups answered nothing"),
        }
    }
    Ok(status)
}

#[derive(Serialize)]
struct ResetRow {
    topic: String,
    partition: i32,
    current: Option<i64>,
    new: i64,
}

async fn reset(a: &ResetArgs) -> anyhow::Result<Status> {
    let AdminClient {
        via: conn,
        metadata,
        brokers,
    } = AdminClient::connect(&a.common.target()?).await?;
    let coordinator = brokers.find(&conn, KEY_TYPE_GROUP, &a.group).await?;
    let current = match committed(&coordinator, &a.group).await? {
        Ok(o) => o,
        Err(code) => return Ok(cli::refused(&format!("offsets of {}", a.group), code, None)),
    };
    // The partitions to move: every partition of the topics named, else those committed.
    let mut targets: Vec<(String, i32)> = Vec::new();
    if a.topics.is_empty() {
        targets.extend(current.keys().cloned());
    } else {
        for topic in &a.topics {
            let t = metadata
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
                .filter(|t| t.error_code == 0);
            let Some(t) = t else {
                return Ok(cli::refused(&format!("topic {topic}"), 3, None));
            };
            targets.extend(
                t.partitions
                    .iter()
                    .map(|p| (topic.clone(), p.partition_index)),
            );
        }
    }
    targets.sort();
    if targets.is_empty() {
        bail!("the group has no committed offsets: name the topics with --topic");
    }
    let mut rows = Vec::new();
    for (topic, partition) in targets {
        let leader = leader_of(&metadata, &topic, partition);
        let new = if a.to_earliest {
            brokers.offset(leader, &topic, partition, EARLIEST).await?
        } else if a.to_latest {
            brokers.offset(leader, &topic, partition, LATEST).await?
        } else if let Some(at) = a.to_timestamp {
            match brokers.offset(leader, &topic, partition, at).await? {
                // No record at or after that time: the end.
                -1 => brokers.offset(leader, &topic, partition, LATEST).await?,
                o => o,
            }
        } else {
            let wanted = a.to_offset.unwrap_or(0);
            let start = brokers.offset(leader, &topic, partition, EARLIEST).await?;
            let end = brokers.offset(leader, &topic, partition, LATEST).await?;
            wanted.clamp(start, end.max(start))
        };
        rows.push(ResetRow {
            current: current.get(&(topic.clone(), partition)).copied(),
            topic,
            partition,
            new,
        });
    }
    let mut status = 0;
    if a.execute {
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for r in &rows {
            by_topic.entry(&r.topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(r.partition)
                    .with_committed_offset(r.new)
                    .with_committed_leader_epoch(-1),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(&a.group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let r: OffsetCommitResponse = coordinator
            .call_at(ApiKey::OffsetCommit, 8, &request)
            .await?;
        if let Some(p) = r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.error_code != 0)
        {
            status = cli::refused(
                &format!(
                    "committing the offsets of {} (is the group empty?)",
                    a.group
                ),
                p.error_code,
                None,
            );
        }
    }
    if status != 0 {
        return Ok(status);
    }
    match a.common.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({ "group": a.group, "executed": a.execute, "partitions": rows })
        ),
        Output::Text => {
            cli::print_table(
                &["TOPIC", "PARTITION", "CURRENT", "NEW"],
                &rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.topic.clone(),
                            r.partition.to_string(),
                            r.current.map_or("-".into(), |c| c.to_string()),
                            r.new.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            );
            if !a.execute {
                println!("\na dry run: nothing was changed (add --execute to commit these)");
            }
        }
    }
    Ok(0)
}
