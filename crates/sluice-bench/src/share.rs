//! Share mode: the topic read as a queue. Each consumer is a share group member (KIP-932)
//! with a share session per leader; it acquires records with ShareFetch and accepts them
//! with its next ShareFetch, so the figure is records acknowledged per second, the work a
//! queue does for each record.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ShareAcknowledgeRequest,
    ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse, ShareGroupHeartbeatRequest,
    ShareGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::args::BenchArgs;
use crate::cluster::Layout;
use crate::consume::ConsumeTarget;
use crate::stats::Stats;
use sluice_client::{ClientSecurity, Conn};

const ACCEPT: i8 = 1;

/// A share group of the bench's own, reading from the earliest offset (a group config, set
/// through `via`).
pub async fn new_group(via: &Conn) -> anyhow::Result<String> {
    let group = format!("sluice-bench-{}", uuid::Uuid::new_v4().simple());
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(s(&group))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("share.auto.offset.reset"))
                .with_config_operation(0)
                .with_value(Some(s("earliest")))]),
    ]);
    let r: IncrementalAlterConfigsResponse = via
        .call_at(ApiKey::IncrementalAlterConfigs, 1, &request)
        .await?;
    if let Some(e) = r.responses.iter().find(|r| r.error_code != 0) {
        bail!(
            "setting share.auto.offset.reset on the bench's group: error {}",
            e.error_code
        );
    }
    Ok(group)
}

/// One member's session with one leader: acquire, then accept with the next fetch.
pub async fn run_member(
    conn: Arc<Conn>,
    layout: Arc<Layout>,
    partitions: Vec<i32>,
    group: String,
    args: Arc<BenchArgs>,
    target: Arc<ConsumeTarget>,
    stats: Arc<Stats>,
) -> anyhow::Result<()> {
    let member = StrBytes::from_string(uuid::Uuid::new_v4().to_string());
    let group_id = GroupId(StrBytes::from_string(group));
    // Brokers open share sessions only for members their group coordinator knows.
    let _membership = join(&conn, &args.client_security, &group_id, &member, &layout).await?;
    let mut epoch = 0;
    // Acquired and not yet accepted: partition -> (first, last) runs.
    let mut held: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
    loop {
        let expected = target.expected.load(Ordering::Relaxed);
        let sent: u64 = held
            .values()
            .flatten()
            .map(|(f, l)| (l - f + 1) as u64)
            .sum();
        if target.acquired.load(Ordering::Relaxed) >= expected {
            // Every record is out: accept what is held with ShareAcknowledge, answered at
            // once, where a fetch would first wait for records that will not come.
            close(&conn, &layout, &group_id, &member, epoch, &held).await?;
            stats.add(sent, 0);
            target.consumed.fetch_add(sent, Ordering::Relaxed);
            return Ok(());
        }
        let fetch_partitions = partitions
            .iter()
            .map(|&p| {
                let acks = held
                    .remove(&p)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(first, last)| {
                        AcknowledgementBatch::default()
                            .with_first_offset(first)
                            .with_last_offset(last)
                            .with_acknowledge_types(vec![ACCEPT])
                    })
                    .collect();
                FetchPartition::default()
                    .with_partition_index(p)
                    .with_acknowledgement_batches(acks)
            })
            .collect();
        let request = ShareFetchRequest::default()
            .with_group_id(Some(group_id.clone()))
            .with_member_id(Some(member.clone()))
            .with_share_session_epoch(epoch)
            .with_max_wait_ms(args.fetch_max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(args.fetch_max_bytes)
            .with_max_records(args.share_max_records)
            .with_batch_size(args.share_max_records)
            .with_topics(vec![FetchTopic::default()
                .with_topic_id(layout.topic_id)
                .with_partitions(fetch_partitions)]);
        let response: ShareFetchResponse = conn.call_at(ApiKey::ShareFetch, 1, &request).await?;
        if response.error_code != 0 {
            bail!(
                "share fetch failed: error {} {}",
                response.error_code,
                response.error_message.as_deref().unwrap_or("")
            );
        }
        epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        let mut bytes = 0;
        for data in response.responses.iter().flat_map(|t| &t.partitions) {
            if data.error_code != 0 || data.acknowledge_error_code != 0 {
                bail!(
                    "share fetch from partition {}: error {} / acknowledgement error {}",
                    data.partition_index,
                    data.error_code,
                    data.acknowledge_error_code
                );
            }
            bytes += data.records.as_ref().map_or(0, |r| r.len() as u64);
            let runs = held.entry(data.partition_index).or_default();
            for a in &data.acquired_records {
                runs.push((a.first_offset, a.last_offset));
                if a.delivery_count == 1 {
                    let n = (a.last_offset - a.first_offset + 1) as u64;
                    target.acquired.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        // The acknowledgements this fetch carried were accepted: those records are done.
        stats.add(sent, bytes);
        target.consumed.fetch_add(sent, Ordering::Relaxed);
    }
}

/// Joins the share group on its coordinator (ShareGroupHeartbeat) and keeps the member
/// alive until the returned task is dropped.
async fn join(
    via: &Conn,
    security: &ClientSecurity,
    group: &GroupId,
    member: &StrBytes,
    layout: &Layout,
) -> anyhow::Result<HeartbeatTask> {
    let find = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![group.0.clone()]);
    let found: FindCoordinatorResponse = via.call_at(ApiKey::FindCoordinator, 4, &find).await?;
    let c = found
        .coordinators
        .first()
        .ok_or_else(|| anyhow!("FindCoordinator answered nothing"))?;
    if c.error_code != 0 {
        bail!(
            "finding the share group's coordinator: error {}",
            c.error_code
        );
    }
    let coordinator =
        Conn::connect_with(&format!("{}:{}", c.host.as_str(), c.port), security).await?;
    let (group, member, topic) = (group.clone(), member.clone(), layout.topic.clone());
    let beat = move |epoch: i32| {
        ShareGroupHeartbeatRequest::default()
            .with_group_id(group.clone())
            .with_member_id(member.clone())
            .with_member_epoch(epoch)
            .with_subscribed_topic_names((epoch == 0).then(|| vec![topic.clone()]))
    };
    let r: ShareGroupHeartbeatResponse = coordinator
        .call_at(ApiKey::ShareGroupHeartbeat, 1, &beat(0))
        .await?;
    if r.error_code != 0 {
        bail!("joining the share group: error {}", r.error_code);
    }
    let interval = std::time::Duration::from_millis(r.heartbeat_interval_ms.max(100) as u64);
    let mut epoch = r.member_epoch;
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let r: anyhow::Result<ShareGroupHeartbeatResponse> = coordinator
                .call_at(ApiKey::ShareGroupHeartbeat, 1, &beat(epoch))
                .await;
            match r {
                Ok(r) if r.error_code == 0 => epoch = r.member_epoch,
                _ => return,
            }
        }
    });
    Ok(HeartbeatTask(task))
}

/// A member's heartbeats, stopped when dropped.
struct HeartbeatTask(tokio::task::JoinHandle<()>);

impl Drop for HeartbeatTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Accepts what is still held and closes the share session (epoch -1).
async fn close(
    conn: &Conn,
    layout: &Layout,
    group: &GroupId,
    member: &StrBytes,
    epoch: i32,
    held: &BTreeMap<i32, Vec<(i64, i64)>>,
) -> anyhow::Result<()> {
    if epoch == 0 {
        return Ok(()); // no session was opened
    }
    let partitions = held
        .iter()
        .map(|(p, runs)| {
            AcknowledgePartition::default()
                .with_partition_index(*p)
                .with_acknowledgement_batches(
                    runs.iter()
                        .map(|(f, l)| {
                            AckBatch::default()
                                .with_first_offset(*f)
                                .with_last_offset(*l)
                                .with_acknowledge_types(vec![ACCEPT])
                        })
                        .collect(),
                )
        })
        .collect();
    let request = ShareAcknowledgeRequest::default()
        .with_group_id(Some(group.clone()))
        .with_member_id(Some(member.clone()))
        .with_share_session_epoch(-1)
        .with_topics(vec![AcknowledgeTopic::default()
            .with_topic_id(layout.topic_id)
            .with_partitions(partitions)]);
    let r: ShareAcknowledgeResponse = conn.call_at(ApiKey::ShareAcknowledge, 1, &request).await?;
    if r.error_code != 0 {
        return Err(anyhow!("closing the share session: error {}", r.error_code));
    }
    if let Some(p) = r
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .find(|p| p.error_code != 0)
    {
        bail!(
            "acknowledging partition {}: error {}",
            p.partition_index,
            p.error_code
        );
    }
    Ok(())
}
