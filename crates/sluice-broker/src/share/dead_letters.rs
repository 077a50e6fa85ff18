//! Dead letters: records a share group archived (rejected, or delivered as many times as
//! `share.delivery.count.limit` allows) are copied to the group's dead-letter topic, the
//! group config `errors.deadletterqueue.topic.name` (KIP-1191's name), with their key, value,
//! timestamp and headers, and headers saying where they came from and why.

use sluice_log::batch::{put_record_with_headers, seal_batch, HEADER_SIZE};
use sluice_log::records::BatchRecords;
use sluice_log::ReadBound;
use tracing::warn;

use super::partition::{ArchiveReason, ArchivedRecord};
use super::SharePartitionManager;
use crate::replica::partition::Partition;

pub const DEAD_LETTER_TOPIC_CONFIG: &str = "errors.deadletterqueue.topic.name";
/// How long a dead letter's write waits for its partition's in-sync replicas.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Bytes read from the source partition to find one archived record.
const READ_BYTES: usize = 1 << 20;

/// One dead letter, owned: the source record's parts and the headers to add.
struct Letter {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl SharePartitionManager {
    /// Copies `archived` records of `source` to the group's dead-letter topic, if it has one,
    /// and waits until that write is acknowledged. A failure is logged (the records stay
    /// archived; a dead-letter topic is a convenience, not the queue's state).
    pub(crate) async fn send_dead_letters(
        &self,
        group: &str,
        source: &Partition,
        archived: &[ArchivedRecord],
    ) {
        if archived.is_empty() {
            return;
        }
        let name = self
            .groups
            .group_setting_str(group, DEAD_LETTER_TOPIC_CONFIG);
        if name.is_empty() {
            return;
        }
        if let Err(e) = self
            .write_dead_letters(group, &name, source, archived)
            .await
        {
            warn!(group, topic = %name, error = %e, records = archived.len(), "could not write dead letters");
        }
    }

    async fn write_dead_letters(
        &self,
        group: &str,
        name: &str,
        source: &Partition,
        archived: &[ArchivedRecord],
    ) -> crate::Result<()> {
        let topic = self
            .replicas
            .topic(name)
            .ok_or(crate::BrokerError::UnknownTopicOrPartition)?;
        // A partition of the topic this broker leads, else the source's namesake partition
        // (modulo the count) at its leader.
        let local =
            (0..topic.partition_count).find_map(|p| self.replicas.local_leader(name, p, -1).ok());
        let mut letters = Vec::with_capacity(archived.len());
        for a in archived {
            if let Some(letter) = read_letter(group, source, a)? {
                letters.push(letter);
            }
        }
        if letters.is_empty() {
            return Ok(());
        }
        let base = letters[0].timestamp;
        let mut batch = vec![0u8; HEADER_SIZE];
        for (i, l) in letters.iter().enumerate() {
            let headers: Vec<_> = l
                .headers
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref()))
                .collect();
            put_record_with_headers(
                &mut batch,
                i as i64,
                l.timestamp - base,
                l.key.as_deref(),
                l.value.as_deref(),
                &headers,
            );
        }
        seal_batch(&mut batch, letters.len() as i32, base, 0);
        if let Some(target) = local {
            let pending = self.replicas.append(
                &target,
                batch.into(),
                -1,
                crate::AppendOrigin::Coordinator,
            )?;
            return pending.wait(WRITE_TIMEOUT).await.map(|_| ());
        }
        let index = source.index.rem_euclid(topic.partition_count.max(1));
        let leader = self
            .replicas
            .image()
            .live_leader(name, index)
            .cloned()
            .ok_or(crate::BrokerError::LeaderNotAvailable)?;
        let remote = self
            .coordinator
            .remote()
            .map_err(|_| crate::BrokerError::LeaderNotAvailable)?;
        tokio::time::timeout(
            WRITE_TIMEOUT,
            remote.produce(leader, name.to_string(), index, batch.into()),
        )
        .await
        .map_err(|_| crate::BrokerError::RequestTimedOut(WRITE_TIMEOUT.as_millis() as u64))?
    }
}

/// The archived record at `a.offset` of `source`, as a dead letter (None if it is gone).
fn read_letter(
    group: &str,
    source: &Partition,
    a: &ArchivedRecord,
) -> crate::Result<Option<Letter>> {
    let slice = source
        .log()
        .read_bounded(a.offset, READ_BYTES, ReadBound::HighWatermark)?;
    let Some(slice) = slice else { return Ok(None) };
    let bytes = slice
        .read_to_vec()
        .map_err(|e| crate::BrokerError::Storage(e.to_string()))?;
    let mut pos = 0;
    while pos + HEADER_SIZE <= bytes.len() {
        let header = sluice_log::batch::BatchHeader::parse(&bytes[pos..]);
        let end = (pos + header.size()).min(bytes.len());
        let batch = &bytes[pos..end];
        pos = end;
        if header.last_offset() < a.offset {
            continue;
        }
        let mut records = BatchRecords::open(batch, 64 << 20)?;
        while let Some(r) = records.next_record()? {
            if r.offset != a.offset {
                continue;
            }
            let reason = match a.reason {
                ArchiveReason::Rejected => "rejected",
                ArchiveReason::DeliveryLimit => "delivery count limit",
            };
            let mut headers: Vec<(Vec<u8>, Option<Vec<u8>>)> = r
                .headers()?
                .into_iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect();
            for (k, v) in [
                ("__dlq.errors.group.id", group.to_string()),
                ("__dlq.errors.topic", source.topic.to_string()),
                ("__dlq.errors.partition", source.index.to_string()),
                ("__dlq.errors.offset", a.offset.to_string()),
                ("__dlq.errors.delivery.count", a.delivery_count.to_string()),
                ("__dlq.errors.reason", reason.to_string()),
            ] {
                headers.push((k.as_bytes().to_vec(), Some(v.into_bytes())));
            }
            return Ok(Some(Letter {
                timestamp: r.timestamp.unwrap_or(0),
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.map(<[u8]>::to_vec),
                headers,
            }));
        }
        return Ok(None);
    }
    Ok(None)
}
