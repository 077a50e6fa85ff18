//! The group APIs over raw requests: the error codes clients act on, and bad input.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::raw::Raw;
use common::Broker;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join(
    raw: &mut Raw,
    group: &str,
    member: &str,
    protocol_type: &str,
    session_ms: i32,
    rebalance_ms: i32,
) -> JoinGroupResponse {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(rebalance_ms)
        .with_member_id(s(member))
        .with_protocol_type(s(protocol_type))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"meta"))]);
    let c = raw.send(ApiKey::JoinGroup, 5, &req);
    raw.receive_response(ApiKey::JoinGroup, 5, c)
}

/// Joins a fresh member through the MEMBER_ID_REQUIRED round trip.
fn join_new(raw: &mut Raw, group: &str, session_ms: i32, rebalance_ms: i32) -> JoinGroupResponse {
    let first = join(raw, group, "", "consumer", session_ms, rebalance_ms);
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED on a first join");
    assert!(!first.member_id.is_empty());
    join(
        raw,
        group,
        &first.member_id,
        "consumer",
        session_ms,
        rebalance_ms,
    )
}

fn sync(
    raw: &mut Raw,
    group: &str,
    generation: i32,
    member: &str,
    assignments: Vec<(&str, &[u8])>,
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        );
    let c = raw.send(ApiKey::SyncGroup, 3, &req);
    raw.receive_response(ApiKey::SyncGroup, 3, c)
}

fn heartbeat(raw: &mut Raw, group: &str, generation: i32, member: &str) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member));
    let c = raw.send(ApiKey::Heartbeat, 3, &req);
    raw.receive_response::<HeartbeatResponse>(ApiKey::Heartbeat, 3, c)
        .error_code
}

/// (group, generation, member id) of a commit.
type Committer<'a> = (&'a str, i32, &'a str);

fn commit(
    raw: &mut Raw,
    (group, generation, member): Committer<'_>,
    topic: &str,
    partition: i32,
    offset: i64,
    metadata: &str,
) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(7)
                .with_committed_metadata(Some(s(metadata)))])]);
    let c = raw.send(ApiKey::OffsetCommit, 8, &req);
    let r: OffsetCommitResponse = raw.receive_response(ApiKey::OffsetCommit, 8, c);
    r.topics[0].partitions[0].error_code
}

fn describe_state(raw: &mut Raw, group: &str) -> (String, usize) {
    let c = raw.send(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
    );
    let r: DescribeGroupsResponse = raw.receive_response(ApiKey::DescribeGroups, 5, c);
    (
        r.groups[0].group_state.to_string(),
        r.groups[0].members.len(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn join_sync_heartbeat_and_their_errors() {
    let broker = Broker::start_with_config("group.min.session.timeout.ms = 500\n");
    let mut raw = Raw::connect(&broker);

    assert_eq!(
        join(&mut raw, "", "", "consumer", 10_000, 10_000).error_code,
        24,
        "INVALID_GROUP_ID"
    );
    assert_eq!(
        join(&mut raw, "g", "", "consumer", 100, 10_000).error_code,
        26,
        "INVALID_SESSION_TIMEOUT"
    );
    assert_eq!(
        join(&mut raw, "g", "stranger", "consumer", 10_000, 10_000).error_code,
        25,
        "UNKNOWN_MEMBER_ID"
    );

    let joined = join_new(&mut raw, "g", 10_000, 10_000);
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    let me = joined.member_id.to_string();

    let mut other = Raw::connect(&broker);
    let first = join(&mut other, "g", "", "connect", 10_000, 10_000);
    assert_eq!(
        first.error_code, 23,
        "INCONSISTENT_GROUP_PROTOCOL for another protocol type"
    );

    assert_eq!(
        sync(&mut raw, "g", 99, &me, vec![]).error_code,
        22,
        "ILLEGAL_GENERATION"
    );
    assert_eq!(
        sync(&mut raw, "g", 1, "nobody", vec![]).error_code,
        25,
        "UNKNOWN_MEMBER_ID"
    );
    let synced = sync(&mut raw, "g", 1, &me, vec![(&me, b"my-assignment")]);
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"my-assignment");
    assert_eq!(describe_state(&mut raw, "g"), ("Stable".into(), 1));

    assert_eq!(heartbeat(&mut raw, "g", 1, &me), 0);
    assert_eq!(heartbeat(&mut raw, "g", 2, &me), 22, "ILLEGAL_GENERATION");
    assert_eq!(
        heartbeat(&mut raw, "g", 1, "nobody"),
        25,
        "UNKNOWN_MEMBER_ID"
    );
    assert_eq!(heartbeat(&mut raw, "unknown-group", 1, &me), 25);

    // LeaveGroup (v3 batch form) empties the group.
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(s(&me))
        ]);
    let c = raw.send(ApiKey::LeaveGroup, 3, &req);
    let r: LeaveGroupResponse = raw.receive_response(ApiKey::LeaveGroup, 3, c);
    assert_eq!((r.error_code, r.members[0].error_code), (0, 0));
    assert_eq!(describe_state(&mut raw, "g"), ("Empty".into(), 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_never_syncs_is_removed_and_the_group_goes_on() {
    let broker = Broker::start_with_config("group.min.session.timeout.ms = 500\n");
    let mut raw = Raw::connect(&broker);
    let joined = join_new(&mut raw, "silent", 10_000, 800);
    assert_eq!(joined.error_code, 0);
    assert_eq!(describe_state(&mut raw, "silent").0, "CompletingRebalance");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        describe_state(&mut raw, "silent"),
        ("Empty".into(), 0),
        "removed after the rebalance timeout"
    );
    let next = join_new(&mut raw, "silent", 10_000, 800);
    assert_eq!(next.error_code, 0);
    assert_eq!(
        next.generation_id,
        joined.generation_id + 2,
        "one generation to empty, one for the newcomer"
    );
    assert_eq!(
        sync(
            &mut raw,
            "silent",
            next.generation_id,
            &next.member_id,
            vec![]
        )
        .error_code,
        0
    );
    assert_eq!(describe_state(&mut raw, "silent").0, "Stable");
}

#[tokio::test(flavor = "multi_thread")]
async fn offset_commits_validate_and_round_trip() {
    let broker = Broker::start_with_config("group.min.session.timeout.ms = 500\n");
    broker.create_topic("committed", 2, &[]).await;
    let mut raw = Raw::connect(&broker);
    // A standalone consumer (no generation, no member) may commit to an empty group.
    assert_eq!(
        commit(&mut raw, ("solo", -1, ""), "committed", 0, 42, "note"),
        0
    );
    assert_eq!(
        commit(&mut raw, ("solo", -1, ""), "nope", 0, 1, ""),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(
        commit(&mut raw, ("solo", -1, ""), "committed", 9, 1, ""),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(
        commit(
            &mut raw,
            ("solo", -1, ""),
            "committed",
            1,
            1,
            &"m".repeat(5000)
        ),
        12,
        "OFFSET_METADATA_TOO_LARGE"
    );

    let joined = join_new(&mut raw, "member", 10_000, 10_000);
    let me = joined.member_id.to_string();
    assert_eq!(
        commit(
            &mut raw,
            ("member", joined.generation_id, &me),
            "committed",
            0,
            5,
            ""
        ),
        27,
        "REBALANCE_IN_PROGRESS before sync"
    );
    sync(&mut raw, "member", joined.generation_id, &me, vec![]);
    assert_eq!(
        commit(
            &mut raw,
            ("member", joined.generation_id + 1, &me),
            "committed",
            0,
            5,
            ""
        ),
        22,
        "ILLEGAL_GENERATION"
    );
    assert_eq!(
        commit(
            &mut raw,
            ("member", joined.generation_id, "other"),
            "committed",
            0,
            5,
            ""
        ),
        25,
        "UNKNOWN_MEMBER_ID"
    );
    assert_eq!(
        commit(
            &mut raw,
            ("member", joined.generation_id, &me),
            "committed",
            1,
            77,
            "m"
        ),
        0
    );

    // OffsetFetch v8, two groups at once; unknown partitions come back as -1.
    let topics = Some(vec![OffsetFetchRequestTopics::default()
        .with_name(TopicName(s("committed")))
        .with_partition_indexes(vec![0, 1])]);
    let req = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("solo")))
            .with_topics(topics.clone()),
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("member")))
            .with_topics(topics),
    ]);
    let c = raw.send(ApiKey::OffsetFetch, 8, &req);
    let r: OffsetFetchResponse = raw.receive_response(ApiKey::OffsetFetch, 8, c);
    let solo = &r.groups[0].topics[0].partitions;
    assert_eq!(
        (
            solo[0].committed_offset,
            solo[0].committed_leader_epoch,
            solo[0].metadata.as_deref()
        ),
        (42, 7, Some("note"))
    );
    assert_eq!(solo[1].committed_offset, -1);
    let member = &r.groups[1].topics[0].partitions;
    assert_eq!(
        (member[0].committed_offset, member[1].committed_offset),
        (-1, 77)
    );

    // DeleteGroups: unknown and non-empty groups are refused.
    let req = DeleteGroupsRequest::default().with_groups_names(vec![
        GroupId(s("ghost")),
        GroupId(s("member")),
        GroupId(s("solo")),
    ]);
    let c = raw.send(ApiKey::DeleteGroups, 2, &req);
    let r: DeleteGroupsResponse = raw.receive_response(ApiKey::DeleteGroups, 2, c);
    let codes: Vec<i16> = r.results.iter().map(|g| g.error_code).collect();
    assert_eq!(
        codes,
        vec![69, 68, 0],
        "GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, deleted"
    );

    // ListGroups with a state filter.
    let c = raw.send(
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest::default().with_states_filter(vec![s("Stable")]),
    );
    let r: ListGroupsResponse = raw.receive_response(ApiKey::ListGroups, 4, c);
    let names: Vec<String> = r.groups.iter().map(|g| g.group_id.to_string()).collect();
    assert_eq!(names, vec!["member"]);
}
