//! `sluice queue describe GROUP`: a share group (queue) as its coordinators see it, over the
//! Kafka protocol: members (ShareGroupDescribe), and per partition the start offset, the log
//! end, and from the share-partition's persisted state (ReadShareGroupState at its share
//! coordinator, found with FindCoordinator key type 2) how many records in flight are done
//! (acknowledged, archived), waiting for redelivery, and how often they were delivered.
//! Exit status 0: described; 1: no such share group; 2: the brokers could not be asked.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use kafka_protocol::messages::describe_share_group_offsets_request::{
    DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::read_share_group_state_request::{PartitionData, ReadStateData};
use kafka_protocol::messages::{
    ApiKey, DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, GroupId,
    ReadShareGroupStateRequest, ReadShareGroupStateResponse, ShareGroupDescribeRequest,
    ShareGroupDescribeResponse, TopicName,
};
use sluice_client::Conn;

use crate::admin_client::{AdminClient, Brokers, KEY_TYPE_GROUP, KEY_TYPE_SHARE};
use crate::cli::{s, Common, Output, Target, LATEST};

#[derive(clap::Subcommand, Debug)]
pub enum QueueCommand {
    /// Show a share group's members and, per partition, its progress and in-flight records.
    Describe(DescribeArgs),
}

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// The share group.
    pub group: String,
    /// Topics to describe (default: those the group's members subscribe to).
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

/// Kafka's RecordState codes in persisted share state.
const ACQUIRED: i8 = 1;
const ACKNOWLEDGED: i8 = 2;
const ARCHIVED: i8 = 4;

#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct PartitionRow {
    topic: String,
    partition: i32,
    /// Where the group's unfinished records begin (-1: it never read this partition).
    start_offset: i64,
    log_end_offset: i64,
    /// Records from the start offset to the log end not yet done.
    unfinished: i64,
    /// Held by members (as of the last state write, at most about a second old).
    acquired: i64,
    /// Done but ahead of the start offset (in flight: an earlier record is not).
    acknowledged: i64,
    archived: i64,
    /// In flight and free to be delivered: released, timed out, or waiting for their
    /// delivery time.
    available: i64,
    /// Records in flight by how many times they were delivered.
    delivery_counts: BTreeMap<i16, i64>,
}

#[derive(Debug, serde::Serialize)]
pub(crate) struct MemberRow {
    member_id: String,
    client_id: String,
    host: String,
    epoch: i32,
    partitions: usize,
}

/// Runs the command; returns the process exit status.
pub fn run(command: QueueCommand) -> anyhow::Result<i32> {
    let QueueCommand::Describe(args) = command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), describe(&args))
            .await
            .map_err(|_| anyhow!("the brokers did not answer within 30 s"))?
    })
}

/// A share group as its coordinators see it: state, members, and a row per partition.
pub(crate) struct Queue {
    pub state: String,
    pub members: Vec<MemberRow>,
    pub partitions: Vec<PartitionRow>,
}

/// Describes a share group (over `topics`, or those its members subscribe to); None when
/// there is no such group and no topics were named.
pub(crate) async fn describe_queue(
    target: &Target,
    group_id: &str,
    topics: &[String],
) -> anyhow::Result<Option<Queue>> {
    let AdminClient {
        via: bootstrap,
        metadata,
        brokers,
    } = AdminClient::connect(target).await?;
    let coordinator = brokers
        .find(&bootstrap, KEY_TYPE_GROUP, group_id)
        .await
        .context("finding the group's coordinator")?;
    let described: ShareGroupDescribeResponse = coordinator
        .call_at(
            ApiKey::ShareGroupDescribe,
            1,
            &ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group_id))]),
        )
        .await?;
    let group = described
        .groups
        .first()
        .ok_or_else(|| anyhow!("the coordinator described no group"))?;
    const GROUP_ID_NOT_FOUND: i16 = 69;
    if group.error_code == GROUP_ID_NOT_FOUND && topics.is_empty() {
        return Ok(None);
    }
    if group.error_code != 0 && group.error_code != GROUP_ID_NOT_FOUND {
        bail!(
            "describing the group failed: error {} {}",
            group.error_code,
            group.error_message.as_deref().unwrap_or("")
        );
    }
    let members: Vec<MemberRow> = group
        .members
        .iter()
        .map(|m| MemberRow {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            epoch: m.member_epoch,
            partitions: m
                .assignment
                .topic_partitions
                .iter()
                .map(|t| t.partitions.len())
                .sum(),
        })
        .collect();
    let topics: BTreeSet<String> = if topics.is_empty() {
        group
            .members
            .iter()
            .flat_map(|m| m.subscribed_topic_names.iter().map(|t| t.to_string()))
            .collect()
    } else {
        topics.iter().cloned().collect()
    };
    let mut rows = Vec::new();
    for topic in &topics {
        let Some(t) = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        else {
            bail!("unknown topic {topic:?}");
        };
        let mut partitions: Vec<(i32, i32)> = t
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.leader_id.0))
            .collect();
        partitions.sort();
        let starts = start_offsets(&coordinator, group_id, topic, &partitions).await?;
        for (index, leader) in partitions {
            let mut row = PartitionRow {
                topic: topic.clone(),
                partition: index,
                start_offset: starts.get(&index).copied().unwrap_or(-1),
                log_end_offset: brokers.offset(leader, topic, index, LATEST).await?,
                ..Default::default()
            };
            let key = format!("{group_id}:{}:{index}", t.topic_id);
            fill_in_flight(
                &brokers, &bootstrap, &key, t.topic_id, index, group_id, &mut row,
            )
            .await?;
            let from = row.start_offset.max(0);
            row.unfinished = (row.log_end_offset - from - row.acknowledged - row.archived).max(0);
            rows.push(row);
        }
    }
    Ok(Some(Queue {
        state: group.group_state.to_string(),
        members,
        partitions: rows,
    }))
}

async fn describe(args: &DescribeArgs) -> anyhow::Result<i32> {
    let Some(queue) = describe_queue(&args.common.target()?, &args.group, &args.topics).await?
    else {
        eprintln!("sluice: no share group {:?}", args.group);
        return Ok(1);
    };
    print(args, &queue.state, &queue.members, &queue.partitions)?;
    Ok(0)
}

fn print(
    args: &DescribeArgs,
    state: &str,
    members: &[MemberRow],
    rows: &[PartitionRow],
) -> anyhow::Result<()> {
    if args.common.output == Output::Json {
        let out = serde_json::json!({
            "group": args.group,
            "state": state,
            "members": members,
            "partitions": rows,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "share group {}  {}  {} members",
        args.group,
        if state.is_empty() { "unknown" } else { state },
        members.len()
    );
    if !members.is_empty() {
        println!();
        println!(
            "{:<24} {:<20} {:<18} {:>6} {:>10}",
            "MEMBER", "CLIENT", "HOST", "EPOCH", "PARTITIONS"
        );
        for m in members {
            println!(
                "{:<24} {:<20} {:<18} {:>6} {:>10}",
                m.member_id, m.client_id, m.host, m.epoch, m.partitions
            );
        }
    }
    println!();
    println!(
        "{:<20} {:>9} {:>12} {:>12} {:>10} {:>8} {:>8} {:>8} {:>10}  DELIVERIES",
        "TOPIC",
        "PARTITION",
        "START",
        "END",
        "UNFINISHED",
        "ACQUIRED",
        "ACKED",
        "ARCHIVED",
        "AVAILABLE"
    );
    for r in rows {
        let deliveries: Vec<String> = r
            .delivery_counts
            .iter()
            .map(|(count, n)| format!("{count}x:{n}"))
            .collect();
        println!(
            "{:<20} {:>9} {:>12} {:>12} {:>10} {:>8} {:>8} {:>8} {:>10}  {}",
            r.topic,
            r.partition,
            r.start_offset,
            r.log_end_offset,
            r.unfinished,
            r.acquired,
            r.acknowledged,
            r.archived,
            r.available,
            if deliveries.is_empty() {
                "-".to_string()
            } else {
                deliveries.join(" ")
            }
        );
    }
    println!();
    println!(
        "START: where the group's unfinished records begin. ACKED/ARCHIVED: done records past it."
    );
    println!(
        "ACQUIRED: held by members. AVAILABLE: in flight and free (released, timed out, delayed)."
    );
    println!("As of the share-partition's last state write (at most about a second old).");
    Ok(())
}

async fn start_offsets(
    coordinator: &Conn,
    group: &str,
    topic: &str,
    partitions: &[(i32, i32)],
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![DescribeShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(s(topic)))
                .with_partitions(partitions.iter().map(|p| p.0).collect())])),
    ]);
    let r: DescribeShareGroupOffsetsResponse = coordinator
        .call_at(ApiKey::DescribeShareGroupOffsets, 0, &request)
        .await?;
    let mut out = BTreeMap::new();
    for g in &r.groups {
        for t in &g.topics {
            for p in &t.partitions {
                out.insert(p.partition_index, p.start_offset);
            }
        }
    }
    Ok(out)
}

/// Fills in the in-flight counts of a share-partition from its persisted state.
async fn fill_in_flight(
    brokers: &Brokers,
    via: &Conn,
    key: &str,
    topic_id: uuid::Uuid,
    partition: i32,
    group: &str,
    row: &mut PartitionRow,
) -> anyhow::Result<()> {
    let Ok(coordinator) = brokers.find(via, KEY_TYPE_SHARE, key).await else {
        return Ok(()); // no state topic yet: nothing was ever acknowledged
    };
    let request = ReadShareGroupStateRequest::default()
        .with_group_id(s(group))
        .with_topics(vec![ReadStateData::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![PartitionData::default()
                .with_partition(partition)
                .with_leader_epoch(-1)])]);
    let r: ReadShareGroupStateResponse = coordinator
        .call_at(ApiKey::ReadShareGroupState, 0, &request)
        .await?;
    let Some(p) = r.results.first().and_then(|t| t.partitions.first()) else {
        return Ok(());
    };
    for b in &p.state_batches {
        let n = b.last_offset - b.first_offset + 1;
        match b.delivery_state {
            ACQUIRED => row.acquired += n,
            ACKNOWLEDGED => row.acknowledged += n,
            ARCHIVED => row.archived += n,
            _ => row.available += n,
        }
        if b.delivery_count > 0 {
            *row.delivery_counts.entry(b.delivery_count).or_insert(0) += n;
        }
    }
    Ok(())
}
