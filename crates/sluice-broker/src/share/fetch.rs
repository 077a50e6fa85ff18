//! ShareFetch on a partition's leader: acknowledgements riding on the request applied, then
//! records acquired for the member from its session's partitions (whole batches, read as
//! file ranges from their headers alone), waiting up to the request's max wait for some.

use super::*;

/// How often a waiting share fetch looks again without being woken (lock expiries and
/// delivery times are not events).
pub(super) const WAIT_TICK: Duration = Duration::from_millis(100);

/// What a waiting share fetch wakes on: its partitions' high watermarks (new records) and
/// their share-partitions' changes (records released, acknowledged, archived).
#[derive(Default)]
pub(super) struct Wakers {
    pub(super) high_watermarks: Vec<tokio::sync::watch::Receiver<i64>>,
    pub(super) changes: Vec<tokio::sync::watch::Receiver<u64>>,
}

impl Wakers {
    pub(super) fn is_empty(&self) -> bool {
        self.high_watermarks.is_empty() && self.changes.is_empty()
    }

    pub(super) fn mark_seen(&mut self) {
        for w in &mut self.high_watermarks {
            w.borrow_and_update();
        }
        for w in &mut self.changes {
            w.borrow_and_update();
        }
    }

    pub(super) async fn wait_until(&mut self, until: tokio::time::Instant) {
        type Wait<'a> = futures::future::BoxFuture<'a, bool>;
        let waits: Vec<Wait<'_>> = self
            .high_watermarks
            .iter_mut()
            .map(|w| Box::pin(async move { w.changed().await.is_ok() }) as Wait<'_>)
            .chain(
                self.changes
                    .iter_mut()
                    .map(|w| Box::pin(async move { w.changed().await.is_ok() }) as Wait<'_>),
            )
            .collect();
        if waits.is_empty() {
            tokio::time::sleep_until(until).await;
            return;
        }
        let _ = tokio::time::timeout_at(until, futures::future::select_all(waits)).await;
    }
}

impl SharePartitionManager {
    /// ShareFetch: checks the share session, applies the acknowledgements that ride on the
    /// request, then acquires records for the member from the session's partitions, waiting
    /// up to `max_wait` for some.
    pub async fn share_fetch(&self, req: ShareFetchRequest) -> Result<ShareFetchResult> {
        let limits = self.share_limits(&req.group_id);
        let has_acks = req.partitions.iter().any(|p| !p.acks.is_empty());
        if req.session_epoch == OPEN && has_acks {
            return Err(BrokerError::InvalidRequest(
                "a share session cannot open with acknowledgements".into(),
            ));
        }
        if req.session_epoch == OPEN {
            self.check_member(&req.group_id, &req.member_id).await?;
        }
        let (session_partitions, released) = self.advance_session(&req)?;
        if req.session_epoch == OPEN {
            self.refresh_share_partitions(&req.group_id, &req.partitions)
                .await;
        }
        let member: Arc<str> = Arc::from(req.member_id.as_str());
        let mut out: Vec<ShareFetchedPartition> = Vec::new();
        let mut commits: Vec<(usize, PendingCommit)> = Vec::new();
        for p in &req.partitions {
            let mut entry = ShareFetchedPartition {
                topic: p.topic.clone(),
                partition: p.partition,
                ..Default::default()
            };
            if !p.acks.is_empty() {
                match self.apply_acks(&req.group_id, &member, p, &limits) {
                    Ok((refused, commit)) => {
                        entry.ack_error = refused;
                        commits.extend(commit.map(|c| (out.len(), c)));
                    }
                    Err(e) => entry.ack_error = Some(e),
                }
            }
            out.push(entry);
        }
        // Acknowledged first: what a closing member acknowledges is not released.
        let releases = self.release_in_memory(&req.group_id, &req.member_id, released, &limits);
        // The acknowledgements become durable while records are acquired; the answer waits
        // for both.
        let quiet: Vec<SharedPartition> = commits.iter().map(|(_, c)| c.slot.clone()).collect();
        let durable = async {
            let mut failed = Vec::new();
            for (at, commit) in commits {
                if let Err(e) = self.commit(commit).await {
                    failed.push((at, e));
                }
            }
            self.commit_releases(&req.group_id, releases).await;
            failed
        };
        let failed = if req.session_epoch == CLOSE || req.acquire_mode == AcquireMode::RenewOnly {
            for slot in quiet {
                slot.notify();
            }
            durable.await
        } else {
            let acquire = async {
                let acquired = self
                    .acquire_records(&req, &member, &limits, &session_partitions, has_acks)
                    .await;
                for slot in quiet {
                    slot.notify();
                }
                acquired
            };
            let (failed, acquired) = tokio::join!(durable, acquire);
            for fetched in acquired {
                match out
                    .iter_mut()
                    .find(|e| e.topic == fetched.topic && e.partition == fetched.partition)
                {
                    Some(e) => {
                        e.error = fetched.error;
                        e.records = fetched.records;
                        e.acquired = fetched.acquired;
                    }
                    None => out.push(fetched),
                }
            }
            failed
        };
        for (at, e) in failed {
            out[at].ack_error = Some(e);
        }
        Ok(ShareFetchResult {
            lock_duration_ms: limits.lock_duration_ms,
            partitions: out,
        })
    }

    /// Acquires records for `member` from its session's partitions, waiting up to the
    /// request's max_wait for some (not at all when the request carried acknowledgements:
    /// it answers them now). Returns the partitions with records or an error.
    pub(super) async fn acquire_records(
        &self,
        req: &ShareFetchRequest,
        member: &Arc<str>,
        limits: &Limits,
        session_partitions: &[(Arc<str>, i32)],
        has_acks: bool,
    ) -> Vec<ShareFetchedPartition> {
        let deadline = tokio::time::Instant::now() + req.max_wait;
        let mut wakers = Wakers::default();
        loop {
            wakers.mark_seen();
            let mut budget = req.max_records.max(1);
            let mut bytes = req.max_bytes.max(1);
            let mut out = Vec::new();
            for (topic, index) in session_partitions {
                if budget == 0 || bytes == 0 {
                    break;
                }
                let mut entry = ShareFetchedPartition {
                    topic: topic.clone(),
                    partition: *index,
                    ..Default::default()
                };
                match self
                    .acquire_for(
                        &req.group_id,
                        member,
                        topic,
                        *index,
                        budget,
                        bytes,
                        limits,
                        req.acquire_mode,
                    )
                    .await
                {
                    Ok(Some((records, acquired))) => {
                        let count: i64 = acquired
                            .iter()
                            .map(|a| a.last_offset - a.first_offset + 1)
                            .sum();
                        budget = budget.saturating_sub(count as usize);
                        bytes = bytes.saturating_sub(records.len);
                        if let Ok(p) = self.replicas.local_leader(topic, *index, -1) {
                            p.traffic.sent(count as u64, records.len);
                        }
                        entry.records = Some(records);
                        entry.acquired = acquired;
                    }
                    Ok(None) => continue,
                    Err(e) => entry.error = Some(e),
                }
                out.push(entry);
            }
            // A fetch that carried acknowledgements answers them now rather than after a
            // wait for records (max_wait is a bound, not a promise): the member learns at
            // once that its acknowledgements are durable.
            if !out.is_empty() || has_acks || tokio::time::Instant::now() >= deadline {
                return out;
            }
            // New records and other members' acknowledgements and releases wake the wait;
            // lock expiries and delivery times come due on the tick.
            if wakers.is_empty() {
                wakers = self.wakers_for(&req.group_id, session_partitions);
            }
            let tick = tokio::time::Instant::now() + WAIT_TICK;
            wakers.wait_until(tick.min(deadline)).await;
        }
    }

    /// Wakers for a share fetch waiting on `partitions` (those led here).
    pub(super) fn wakers_for(&self, group: &str, partitions: &[(Arc<str>, i32)]) -> Wakers {
        let mut w = Wakers::default();
        for (topic, index) in partitions {
            if let Ok(p) = self.replicas.local_leader(topic, *index, -1) {
                w.high_watermarks
                    .push(p.subscribe_to(ReadBound::HighWatermark));
            }
            if let Some(slot) = self.existing_share_partition(group, topic, *index) {
                w.changes.push(slot.signal.subscribe());
            }
        }
        w
    }

    /// Acquires records of one partition for `member`: redeliveries first, else new
    /// records at the window's end. Returns the whole batches holding them and the runs.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn acquire_for(
        &self,
        group: &str,
        member: &Arc<str>,
        topic: &Arc<str>,
        index: i32,
        max_records: usize,
        max_bytes: usize,
        limits: &Limits,
        mode: AcquireMode,
    ) -> Result<Option<(ShareRecords, Vec<Acquired>)>> {
        let partition = self.replicas.local_leader(topic, index, -1)?;
        let Some(slot) = self.share_partition(group, topic, &partition).await? else {
            return Ok(None);
        };
        let sp = &slot.state;
        let now = crate::now_ms();
        let (available, end, room, archived) = {
            let mut s = sp.lock();
            // Expired locks raised delivery counts: a change to persist.
            if s.expire_locks(now, limits) {
                slot.changed_quietly();
            }
            let archived = s.take_archived();
            if !archived.is_empty() {
                slot.changed();
            }
            (
                s.first_available(now),
                s.end_offset(),
                s.room(limits),
                archived,
            )
        };
        if !archived.is_empty() {
            // Locks ran out at the delivery limit: those records are dead letters now.
            let key = self.state_key(group, topic, index)?;
            let change = slot.changes.load(std::sync::atomic::Ordering::SeqCst);
            self.commit_change(group, &partition, &key, &slot, change, archived)
                .await?;
        }
        let from = match available {
            Some(offset) => offset,
            None if room > 0 => end,
            None => return Ok(None),
        };
        // New records go in whole batches (a batch is sent whole anyway), so the in-flight
        // bound may be passed by the rest of the last batch.
        let wanted = match available {
            Some(_) => max_records,
            None => max_records.min(room),
        };
        let Some((records, last, delays)) =
            read_whole_batches(&partition, from, max_bytes, wanted, now)?
        else {
            return Ok(None);
        };
        // Record-limit mode acquires no more than asked; the batches still go whole (the
        // member skips records it did not acquire).
        let last = match mode {
            AcquireMode::RecordLimit => last.min(from + wanted as i64 - 1),
            _ => last,
        };
        let acquired = {
            let mut s = sp.lock();
            let acquired = match available {
                Some(offset) => {
                    s.acquire_available(member, offset, last, max_records, now, limits, &delays)
                }
                None => s.acquire_new(member, end, last, now, limits, &delays),
            };
            // Persisted by the next write (an acknowledgement's, or the periodic one), so
            // raised delivery counts and what is held show in the stored state.
            if !acquired.is_empty() {
                slot.changed_quietly();
            }
            acquired
        };
        Ok((!acquired.is_empty()).then_some((records, acquired)))
    }
}

/// Bytes of the log looked at at once while gathering a share fetch's batches.
pub(super) const READ_CHUNK: usize = 256 * 1024;

/// Whole batches from the one holding `from`, up to `max_bytes` (at least one batch) and
/// stopping once `max_records` offsets from `from` are covered: their file ranges (sent by
/// sendfile, unread), the last offset they hold, and the delivery times of the records that
/// must wait past `now_ms`. Only batch headers are read, and the batches that may carry
/// Sluice's own headers (`HeaderMarks`). None when there is nothing at `from` yet.
pub(super) fn read_whole_batches(
    partition: &Partition,
    from: i64,
    max_bytes: usize,
    max_records: usize,
    now_ms: i64,
) -> Result<Option<(ShareRecords, i64, Delays)>> {
    use sluice_log::batch::HEADER_SIZE;
    use std::os::unix::fs::FileExt;
    let storage = |e: std::io::Error| BrokerError::Storage(e.to_string());
    let mut records = ShareRecords::default();
    let mut delays = Delays::new();
    let mut last = -1;
    let mut next = from;
    let mut header = [0u8; HEADER_SIZE];
    while last - from + 1 < max_records as i64 && records.len < max_bytes {
        let chunk = READ_CHUNK.min(max_bytes - records.len);
        let slice = partition
            .log()
            .read_bounded(next, chunk, ReadBound::HighWatermark)?;
        let Some(slice) = slice else {
            break;
        };
        let end = slice.position + slice.len as u64;
        let mut pos = slice.position;
        while pos + HEADER_SIZE as u64 <= end {
            slice
                .file
                .read_exact_at(&mut header, pos)
                .map_err(storage)?;
            let h = BatchHeader::parse(&header);
            let size = h.size() as u64;
            if size < HEADER_SIZE as u64 || pos + size > end {
                break;
            }
            if partition.header_marks.may_hold(h.base_offset) {
                let mut batch = vec![0u8; size as usize];
                slice.file.read_exact_at(&mut batch, pos).map_err(storage)?;
                delays.extend(delays::delays_in(&batch, now_ms));
            }
            pos += size;
            last = h.last_offset();
            if last - from + 1 >= max_records as i64 {
                break;
            }
        }
        let whole = (pos - slice.position) as usize;
        if whole == 0 {
            break;
        }
        records.len += whole;
        records.slices.push(sluice_log::ReadSlice {
            file: slice.file.clone(),
            position: slice.position,
            len: whole,
            whole_through: Some(last),
        });
        next = last + 1;
    }
    if last < from {
        return Ok(None);
    }
    Ok(Some((records, last, delays)))
}
