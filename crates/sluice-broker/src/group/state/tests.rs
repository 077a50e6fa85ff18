//! Unit tests of `state`.

use super::*;

const SECOND: Duration = Duration::from_secs(1);

/// A member of `id` offering `protocols` (first preferred), with the answer its JoinGroup
/// waits for.
fn joining(
    id: &str,
    instance: Option<&str>,
    protocols: &[&str],
) -> (Member, oneshot::Receiver<JoinOutcome>) {
    let (tx, rx) = oneshot::channel();
    let member = Member {
        member_id: id.into(),
        group_instance_id: instance.map(str::to_string),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: 10 * SECOND,
        rebalance_timeout: 30 * SECOND,
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("{id}:{p}"))))
            .collect(),
        assignment: Bytes::new(),
        join_waiter: Some(tx),
        sync_waiter: None,
        session_deadline: Instant::now(),
        joined_seq: 0,
    };
    (member, rx)
}

fn answer(mut rx: oneshot::Receiver<JoinOutcome>) -> JoinResult {
    rx.try_recv().expect("answered").expect("joined")
}

/// A group of `ids` (all offering "range") through its first join phase.
fn joined_group(ids: &[&str], now: Instant) -> (Group, Vec<JoinResult>) {
    let mut g = Group::new("g");
    g.protocol_type = Some("consumer".into());
    let mut waiting = Vec::new();
    for id in ids {
        let (m, rx) = joining(id, None, &["range"]);
        g.add_member(m, now);
        waiting.push(rx);
    }
    g.prepare_rebalance(now);
    assert!(g.maybe_complete_join(now));
    (g, waiting.into_iter().map(answer).collect())
}

#[test]
fn a_join_phase_makes_a_generation_with_the_first_member_as_leader() {
    let now = Instant::now();
    let (g, answers) = joined_group(&["a", "b"], now);
    assert_eq!(g.state, GroupState::CompletingRebalance);
    assert_eq!(g.generation, 1);
    assert_eq!(g.leader.as_deref(), Some("a"));
    assert_eq!(g.protocol.as_deref(), Some("range"));
    let (leader, follower) = (&answers[0], &answers[1]);
    assert_eq!((leader.generation, follower.generation), (1, 1));
    assert_eq!(
        (leader.leader.as_str(), follower.leader.as_str()),
        ("a", "a")
    );
    let listed: Vec<_> = leader
        .members
        .iter()
        .map(|(id, _, m)| (id.as_str(), m.clone()))
        .collect();
    assert_eq!(
        listed,
        [("a", Bytes::from("a:range")), ("b", Bytes::from("b:range"))],
        "the leader gets every member's metadata for the chosen protocol"
    );
    assert!(follower.members.is_empty(), "only the leader assigns");
    assert_eq!(
        g.rebalance_deadline,
        Some(now + 30 * SECOND),
        "sync within the rebalance timeout"
    );
}

#[test]
fn the_leaders_sync_makes_the_group_stable_and_answers_every_member() {
    let now = Instant::now();
    let (mut g, _) = joined_group(&["a", "b"], now);
    let (tx, mut waiting_b) = oneshot::channel();
    g.members.get_mut("b").unwrap().sync_waiter = Some(tx);
    g.complete_sync(HashMap::from([
        ("a".to_string(), Bytes::from("pa")),
        ("b".to_string(), Bytes::from("pb")),
    ]));
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(g.rebalance_deadline, None);
    let (pt, pn, assignment) = waiting_b.try_recv().unwrap().unwrap();
    assert_eq!(
        (pt.as_deref(), pn.as_deref()),
        (Some("consumer"), Some("range"))
    );
    assert_eq!(assignment, Bytes::from("pb"));
    assert_eq!(g.members["a"].assignment, Bytes::from("pa"));
}

#[test]
fn a_rebalance_refuses_pending_syncs_and_drops_members_that_do_not_rejoin() {
    let now = Instant::now();
    let (mut g, _) = joined_group(&["a", "b"], now);
    let (tx, mut sync_b) = oneshot::channel();
    g.members.get_mut("b").unwrap().sync_waiter = Some(tx);
    // "c" joins while b waits for its assignment: everyone must rejoin.
    let (c, c_joined) = joining("c", None, &["range"]);
    g.add_member(c, now);
    g.prepare_rebalance(now);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert!(matches!(
        sync_b.try_recv(),
        Ok(Err(BrokerError::RebalanceInProgress))
    ));
    // Only b and c rejoin; the phase cannot end by itself while a is awaited.
    let (b_again, b_joined) = joining("b", None, &["range"]);
    g.members.get_mut("b").unwrap().join_waiter = b_again.join_waiter;
    assert!(!g.maybe_complete_join(now), "a has not rejoined");
    // The rebalance deadline passes: the coordinator completes the join without a.
    g.complete_join(now + 31 * SECOND);
    assert!(!g.members.contains_key("a"));
    assert_eq!(g.generation, 2);
    assert_eq!(
        g.leader.as_deref(),
        Some("b"),
        "the earliest member left leads"
    );
    assert_eq!(answer(b_joined).members.len(), 2);
    assert!(answer(c_joined).members.is_empty());
}

#[test]
fn the_protocol_is_the_common_one_most_members_prefer() {
    let now = Instant::now();
    let mut g = Group::new("g");
    g.protocol_type = Some("consumer".into());
    for (id, protocols) in [
        ("a", &["roundrobin", "range", "sticky"][..]),
        ("b", &["range", "roundrobin"][..]),
        ("c", &["range", "roundrobin"][..]),
    ] {
        g.add_member(joining(id, None, protocols).0, now);
    }
    g.prepare_rebalance(now);
    g.maybe_complete_join(now);
    assert_eq!(
        g.protocol.as_deref(),
        Some("range"),
        "two of three prefer range"
    );
    assert!(g.supports("consumer", &[("roundrobin".into(), Bytes::new())]));
    assert!(
        !g.supports("consumer", &[("sticky".into(), Bytes::new())]),
        "b and c do not speak sticky"
    );
    assert!(!g.supports("connect", &[("range".into(), Bytes::new())]));
}

#[test]
fn the_first_join_waits_for_the_initial_delay_but_never_past_the_rebalance_timeout() {
    let now = Instant::now();
    let mut g = Group::new("g");
    g.protocol_type = Some("consumer".into());
    let (a, _a_joined) = joining("a", None, &["range"]);
    g.add_member(a, now);
    g.prepare_rebalance_with_delay(now, 3 * SECOND);
    assert!(
        !g.maybe_complete_join(now + 2 * SECOND),
        "inside the initial delay"
    );
    // A second member extends the wait by the delay again.
    let (b, _b_joined) = joining("b", None, &["range"]);
    g.add_member(b, now + 2 * SECOND);
    g.prepare_rebalance_with_delay(now + 2 * SECOND, 3 * SECOND);
    assert!(
        !g.maybe_complete_join(now + 4 * SECOND),
        "extended by b's join"
    );
    assert!(g.maybe_complete_join(now + 5 * SECOND));
    assert_eq!(g.members.len(), 2, "one rebalance for both");

    let mut slow = Group::new("slow");
    slow.protocol_type = Some("consumer".into());
    let (m, _) = joining("a", None, &["range"]);
    slow.add_member(m, now);
    slow.prepare_rebalance_with_delay(now, 100 * SECOND);
    assert!(
        slow.maybe_complete_join(now + 30 * SECOND),
        "the rebalance timeout bounds the delay"
    );
}

#[test]
fn a_static_member_that_rejoins_with_a_new_id_fences_the_old_one_and_keeps_leading() {
    let now = Instant::now();
    let mut g = Group::new("g");
    g.protocol_type = Some("consumer".into());
    let (a, _) = joining("a-1", Some("host-a"), &["range"]);
    g.add_member(a, now);
    g.prepare_rebalance(now);
    g.maybe_complete_join(now);
    g.complete_sync(HashMap::from([("a-1".to_string(), Bytes::from("pa"))]));
    let (tx, mut old_sync) = oneshot::channel();
    g.members.get_mut("a-1").unwrap().sync_waiter = Some(tx);

    g.replace_static_member("a-1", "a-2");
    assert!(matches!(
        old_sync.try_recv(),
        Ok(Err(BrokerError::FencedInstanceId))
    ));
    assert_eq!(g.leader.as_deref(), Some("a-2"));
    assert_eq!(
        g.members["a-2"].assignment,
        Bytes::from("pa"),
        "its assignment stays"
    );
    assert!(matches!(
        g.check_member("a-1", Some("host-a")),
        Err(BrokerError::FencedInstanceId)
    ));
    assert!(g.check_member("a-2", Some("host-a")).is_ok());
    assert!(matches!(
        g.check_member("x", None),
        Err(BrokerError::UnknownMemberId)
    ));
}

#[test]
fn the_last_member_leaving_empties_the_group_in_a_new_generation() {
    let now = Instant::now();
    let (mut g, _) = joined_group(&["a"], now);
    g.complete_sync(HashMap::new());
    let (tx, mut sync_a) = oneshot::channel();
    g.members.get_mut("a").unwrap().sync_waiter = Some(tx);
    g.remove_member("a");
    assert!(matches!(
        sync_a.try_recv(),
        Ok(Err(BrokerError::UnknownMemberId))
    ));
    g.on_members_removed(now);
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(g.generation, 2);
    assert_eq!((g.leader.clone(), g.protocol.clone()), (None, None));
    assert!(g.is_empty());
}

#[test]
fn a_stored_group_comes_back_stable_with_its_members_and_assignments() {
    let now = Instant::now();
    let (mut g, _) = joined_group(&["a", "b"], now);
    g.complete_sync(HashMap::from([("b".to_string(), Bytes::from("pb"))]));
    let mut back = Group::new("g");
    back.restore(g.to_stored(), now);
    assert_eq!(back.state, GroupState::Stable);
    assert_eq!((back.generation, back.leader.as_deref()), (1, Some("a")));
    assert_eq!(back.protocol.as_deref(), Some("range"));
    assert_eq!(back.members["b"].assignment, Bytes::from("pb"));
    assert_eq!(
        back.members["b"].metadata_for("range"),
        Bytes::from("b:range")
    );
    assert_eq!(
        back.members["a"].session_deadline,
        now + 10 * SECOND,
        "a fresh session"
    );

    let mut empty = Group::new("e");
    empty.restore(Group::new("e").to_stored(), now);
    assert_eq!(empty.state, GroupState::Empty);
}

#[test]
fn transactional_offsets_count_on_commit_and_vanish_on_abort() {
    let mut g = Group::new("g");
    let offset = |o| CommittedOffset {
        offset: o,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: 0,
    };
    g.pending_txn_offsets
        .entry(7)
        .or_default()
        .insert(("t".into(), 0), offset(10));
    g.pending_txn_offsets
        .entry(8)
        .or_default()
        .insert(("t".into(), 1), offset(20));
    assert!(g.has_unstable_offset("t", 0));
    g.complete_txn_offsets(7, true);
    g.complete_txn_offsets(8, false);
    assert_eq!(g.offsets[&("t".to_string(), 0)].offset, 10);
    assert!(!g.offsets.contains_key(&("t".to_string(), 1)));
    assert!(!g.has_unstable_offset("t", 0) && !g.has_unstable_offset("t", 1));
}
