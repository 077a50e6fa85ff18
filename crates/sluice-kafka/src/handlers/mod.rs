//! Every API Sluice serves, in one table: the handler module (which declares the versions it
//! implements as `VERSIONS` and answers with `handle`), its request type, and how it runs. The
//! advertised versions (versions.rs), the dispatch (dispatch.rs) and the fuzz target's decoder
//! (fuzzing.rs) are all generated from it, so adding an API is a module and a row here.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Decodable;

use crate::reply::{Reply, Response, ResponseFuture};
use crate::Context;

/// An answer that is already there.
pub(crate) fn ready(frame: Response) -> ResponseFuture {
    Box::pin(std::future::ready(frame))
}

/// Runs a handler that does file work (creating or deleting logs, syncing metadata) on the
/// blocking pool, so that it never holds up an async thread that other clients' requests
/// need.
fn blocking(
    ctx: &Arc<Context>,
    handler: impl FnOnce(&Context) -> Response + Send + 'static,
) -> ResponseFuture {
    let ctx = ctx.clone();
    Box::pin(async move {
        tokio::task::spawn_blocking(move || handler(&ctx))
            .await
            .unwrap_or_else(|e| Response::Close(format!("request handler failed: {e}")))
    })
}

fn decode<T: Decodable>(body: &mut Bytes, reply: &Reply) -> Result<T, String> {
    let req = T::decode(body, reply.version)
        .map_err(|e| format!("malformed {:?} v{} request: {e}", reply.api, reply.version))?;
    Ok(req)
}

/// How a handler runs:
/// - `now`: answers at once on the connection's task (`fn(&Context, &Reply, Req) -> Response`);
/// - `task`: returns a future of its answer (`fn(&Context, Reply, Req) -> ResponseFuture`);
/// - `blocking`: does file work, so it runs on the blocking pool (as `now`);
/// - `blocking_if(predicate)`: on the blocking pool when `predicate(&Context, &Reply, &Req)`
///   says it may do file work (create topics), else as `now`.
macro_rules! run {
    (now, $m:ident, $ctx:ident, $reply:ident, $body:ident) => {{
        let req = decode($body, &$reply)?;
        ready($m::handle($ctx, &$reply, req))
    }};
    (task, $m:ident, $ctx:ident, $reply:ident, $body:ident) => {{
        let req = decode($body, &$reply)?;
        $m::handle($ctx, $reply, req)
    }};
    (blocking, $m:ident, $ctx:ident, $reply:ident, $body:ident) => {{
        let req = decode($body, &$reply)?;
        blocking($ctx, move |ctx| $m::handle(ctx, &$reply, req))
    }};
    (blocking_if($pred:ident), $m:ident, $ctx:ident, $reply:ident, $body:ident) => {{
        let req = decode($body, &$reply)?;
        if $m::$pred($ctx, &$reply, &req) {
            blocking($ctx, move |ctx| $m::handle(ctx, &$reply, req))
        } else {
            ready($m::handle($ctx, &$reply, req))
        }
    }};
}

macro_rules! api_table {
    (
        advertised { $($a:ident => $am:ident($areq:ident), $arun:ident $(($apred:ident))?;)* }
        between_brokers { $($b:ident => $bm:ident($breq:ident), $brun:ident $(($bpred:ident))?;)* }
    ) => {
        $(pub mod $am;)*
        $(pub mod $bm;)*

        /// (API, versions) advertised to clients in ApiVersions, in this order.
        pub const ADVERTISED: &[(ApiKey, (i16, i16))] = &[$((ApiKey::$a, $am::VERSIONS),)*];

        /// APIs brokers send each other: served but not advertised to clients, as Kafka
        /// serves them on its controller listener.
        pub const BETWEEN_BROKERS: &[(ApiKey, (i16, i16))] = &[$((ApiKey::$b, $bm::VERSIONS),)*];

        /// Decodes the body of a request whose header was read and hands it to its handler.
        pub(crate) fn serve(
            ctx: &Arc<Context>,
            reply: Reply,
            body: &mut Bytes,
        ) -> Result<ResponseFuture, String> {
            Ok(match reply.api {
                $(ApiKey::$a => run!($arun $(($apred))?, $am, ctx, reply, body),)*
                $(ApiKey::$b => run!($brun $(($bpred))?, $bm, ctx, reply, body),)*
                other => return Err(format!("{other:?} is not supported")),
            })
        }

        /// Decodes a request body as its API's request type, nothing more (the fuzz target).
        pub fn decode_body(api: ApiKey, version: i16, body: &mut Bytes) -> Result<(), String> {
            match api {
                $(ApiKey::$a => kafka_protocol::messages::$areq::decode(body, version).map(|_| ()),)*
                $(ApiKey::$b => kafka_protocol::messages::$breq::decode(body, version).map(|_| ()),)*
                other => return Err(format!("{other:?} is not served")),
            }
            .map_err(|e| format!("body: {e}"))
        }
    };
}

api_table! {
    advertised {
        Produce => produce(ProduceRequest), task;
        Fetch => fetch(FetchRequest), task;
        ListOffsets => list_offsets(ListOffsetsRequest), now;
        Metadata => metadata(MetadataRequest), blocking_if(may_create_topics);
        OffsetCommit => offset_commit(OffsetCommitRequest), task;
        OffsetFetch => offset_fetch(OffsetFetchRequest), now;
        FindCoordinator => find_coordinator(FindCoordinatorRequest),
            blocking_if(may_create_internal_topic);
        JoinGroup => join_group(JoinGroupRequest), task;
        Heartbeat => heartbeat(HeartbeatRequest), now;
        LeaveGroup => leave_group(LeaveGroupRequest), now;
        SyncGroup => sync_group(SyncGroupRequest), task;
        DescribeGroups => describe_groups(DescribeGroupsRequest), now;
        ListGroups => list_groups(ListGroupsRequest), now;
        ApiVersions => api_versions(ApiVersionsRequest), now;
        CreateTopics => create_topics(CreateTopicsRequest), blocking;
        DeleteTopics => delete_topics(DeleteTopicsRequest), blocking;
        DeleteRecords => delete_records(DeleteRecordsRequest), blocking;
        InitProducerId => init_producer_id(InitProducerIdRequest), task;
        AddPartitionsToTxn => add_partitions_to_txn(AddPartitionsToTxnRequest), task;
        AddOffsetsToTxn => add_offsets_to_txn(AddOffsetsToTxnRequest), task;
        EndTxn => end_txn(EndTxnRequest), task;
        TxnOffsetCommit => txn_offset_commit(TxnOffsetCommitRequest), task;
        DescribeTransactions => describe_transactions(DescribeTransactionsRequest), now;
        ListTransactions => list_transactions(ListTransactionsRequest), now;
        DescribeProducers => describe_producers(DescribeProducersRequest), now;
        DescribeConfigs => describe_configs(DescribeConfigsRequest), now;
        AlterConfigs => alter_configs(AlterConfigsRequest), blocking;
        CreatePartitions => create_partitions(CreatePartitionsRequest), blocking;
        DeleteGroups => delete_groups(DeleteGroupsRequest), task;
        IncrementalAlterConfigs => incremental_alter_configs(IncrementalAlterConfigsRequest),
            blocking;
        OffsetDelete => offset_delete(OffsetDeleteRequest), task;
        DescribeCluster => describe_cluster(DescribeClusterRequest), now;
        OffsetForLeaderEpoch => offset_for_leader_epoch(OffsetForLeaderEpochRequest), now;
        ConsumerGroupHeartbeat => consumer_group_heartbeat(ConsumerGroupHeartbeatRequest), now;
        ConsumerGroupDescribe => consumer_group_describe(ConsumerGroupDescribeRequest), now;
        DescribeAcls => describe_acls(DescribeAclsRequest), now;
        ShareGroupHeartbeat => share_group_heartbeat(ShareGroupHeartbeatRequest), now;
        ShareGroupDescribe => share_group_describe(ShareGroupDescribeRequest), now;
        DescribeShareGroupOffsets =>
            describe_share_group_offsets(DescribeShareGroupOffsetsRequest), task;
        AlterShareGroupOffsets => alter_share_group_offsets(AlterShareGroupOffsetsRequest), task;
        DeleteShareGroupOffsets =>
            delete_share_group_offsets(DeleteShareGroupOffsetsRequest), task;
        ShareFetch => share_fetch(ShareFetchRequest), task;
        ShareAcknowledge => share_acknowledge(ShareAcknowledgeRequest), task;
        ListPartitionReassignments =>
            list_partition_reassignments(ListPartitionReassignmentsRequest), now;
        SaslHandshake => sasl_handshake(SaslHandshakeRequest), now;
        SaslAuthenticate => sasl_authenticate(SaslAuthenticateRequest), task;
        DescribeUserScramCredentials =>
            describe_user_scram_credentials(DescribeUserScramCredentialsRequest), now;
        AlterUserScramCredentials =>
            alter_user_scram_credentials(AlterUserScramCredentialsRequest), blocking;
    }
    between_brokers {
        AlterPartition => alter_partition(AlterPartitionRequest), blocking;
        AllocateProducerIds => allocate_producer_ids(AllocateProducerIdsRequest), blocking;
        WriteTxnMarkers => write_txn_markers(WriteTxnMarkersRequest), task;
        ReadShareGroupState => read_share_group_state(ReadShareGroupStateRequest), now;
        WriteShareGroupState => write_share_group_state(WriteShareGroupStateRequest), task;
    }
}

use kafka_protocol::protocol::StrBytes;

pub(crate) mod refusal;

pub fn opt_string(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// Runs a request's work as a task of its own: a client that goes away mid-request drops
/// the answer, not the work (a transaction coordinator's state change must be applied once
/// its write is done, or the transactional id would stay marked as changing).
pub async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    match tokio::spawn(work).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The error code of a transactional request's failure: PRODUCER_FENCED is
/// INVALID_PRODUCER_EPOCH below the version where the API learned it (as Kafka answers).
pub fn txn_code(e: &sluice_broker::BrokerError, version: i16, fenced_since: i16) -> i16 {
    use kafka_protocol::error::ResponseError;
    let code = crate::errors::code(e);
    if code == ResponseError::ProducerFenced.code() && version < fenced_since {
        ResponseError::InvalidProducerEpoch.code()
    } else {
        code
    }
}

pub fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Partitions grouped by topic, in first-seen order, as (topic id, name, partitions): the
/// shape every group API's assignment takes. Topics this broker does not know are left out.
pub fn by_topic<'a>(
    broker: &sluice_broker::Broker,
    partitions: impl IntoIterator<Item = (&'a String, i32)>,
) -> Vec<(uuid::Uuid, &'a str, Vec<i32>)> {
    let mut out: Vec<(uuid::Uuid, &'a str, Vec<i32>)> = Vec::new();
    for (topic, partition) in partitions {
        match out.iter_mut().find(|t| t.1 == topic.as_str()) {
            Some(t) => t.2.push(partition),
            None => {
                if let Some(t) = broker.replicas.topic(topic) {
                    out.push((t.id, topic.as_str(), vec![partition]));
                }
            }
        }
    }
    out
}

/// Kafka's marker for "authorized operations not requested".
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Authorized operations without ACLs (everything allowed), as Kafka's bit sets of
/// AclOperation codes: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
/// CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
pub const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
pub const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
