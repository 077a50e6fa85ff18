//! Unit tests of `partition`.

use super::*;

const LIMITS: Limits = Limits {
    lock_duration_ms: 1000,
    delivery_count_limit: 3,
    max_in_flight: 100,
};

fn member(name: &str) -> Arc<str> {
    Arc::from(name)
}

/// Redelivers to `m` what is available first, as a share fetch would.
fn redeliver(sp: &mut SharePartition, m: &Arc<str>, max: usize, now: i64) -> Vec<Acquired> {
    match sp.first_available(now) {
        Some(from) => sp.acquire_available(m, from, i64::MAX, max, now, &LIMITS, &Delays::new()),
        None => Vec::new(),
    }
}

fn run(first: i64, last: i64, delivery_count: i16) -> Vec<Acquired> {
    vec![Acquired {
        first_offset: first,
        last_offset: last,
        delivery_count,
    }]
}

#[test]
fn accepted_records_advance_the_start_and_are_never_redelivered() {
    let (a, b) = (member("a"), member("b"));
    let mut sp = SharePartition::new(10);
    assert_eq!(
        sp.acquire_new(&a, 10, 14, 0, &LIMITS, &Delays::new()),
        run(10, 14, 1)
    );
    assert_eq!(
        sp.acquire_new(&b, 15, 16, 0, &LIMITS, &Delays::new()),
        run(15, 16, 1)
    );
    assert!(redeliver(&mut sp, &b, 10, 0).is_empty());
    sp.acknowledge("a", 10, 14, &[AckType::Accept], &LIMITS, 0)
        .unwrap();
    assert_eq!(sp.start_offset(), 15);
    sp.acknowledge("b", 15, 16, &[AckType::Accept], &LIMITS, 0)
        .unwrap();
    assert_eq!((sp.start_offset(), sp.end_offset()), (17, 17));
    sp.expire_locks(10_000, &LIMITS);
    assert!(redeliver(&mut sp, &a, 10, 10_000).is_empty());
}

#[test]
fn released_and_expired_records_come_back_with_a_higher_count() {
    let (a, b) = (member("a"), member("b"));
    let mut sp = SharePartition::new(0);
    sp.acquire_new(&a, 0, 3, 0, &LIMITS, &Delays::new());
    let types = [
        AckType::Accept,
        AckType::Release,
        AckType::Accept,
        AckType::Accept,
    ];
    sp.acknowledge("a", 0, 3, &types, &LIMITS, 0).unwrap();
    assert_eq!(sp.start_offset(), 1);
    assert_eq!(redeliver(&mut sp, &b, 10, 5), run(1, 1, 2));
    // b never acknowledges: its lock runs out and a gets it.
    sp.expire_locks(999, &LIMITS);
    assert!(redeliver(&mut sp, &a, 10, 999).is_empty());
    sp.expire_locks(1005, &LIMITS);
    assert_eq!(redeliver(&mut sp, &a, 10, 1005), run(1, 1, 3));
    // The third delivery was the last: released again, it is archived (done once its
    // dead letter is written).
    sp.acknowledge("a", 1, 1, &[AckType::Release], &LIMITS, 0)
        .unwrap();
    assert_eq!(sp.start_offset(), 1);
    let archived = sp.take_archived();
    sp.letters_written(&archived);
    assert_eq!((sp.start_offset(), sp.end_offset()), (4, 4));
}

#[test]
fn acknowledgements_of_records_not_held_change_nothing() {
    let (a, b) = (member("a"), member("b"));
    let mut sp = SharePartition::new(0);
    sp.acquire_new(&a, 0, 1, 0, &LIMITS, &Delays::new());
    sp.acquire_new(&b, 2, 2, 0, &LIMITS, &Delays::new());
    assert!(sp
        .acknowledge("a", 1, 2, &[AckType::Accept], &LIMITS, 0)
        .is_err());
    assert!(sp
        .acknowledge("a", 5, 6, &[AckType::Accept], &LIMITS, 0)
        .is_err());
    assert!(sp
        .acknowledge(
            "a",
            0,
            1,
            &[AckType::Accept, AckType::Accept, AckType::Accept],
            &LIMITS,
            0
        )
        .is_err());
    assert_eq!(sp.counts().acquired, 3, "nothing changed");
    // Rejected records are finished for good.
    sp.acknowledge("b", 2, 2, &[AckType::Reject], &LIMITS, 0)
        .unwrap();
    sp.release_member("a", &LIMITS);
    assert_eq!(
        sp.counts(),
        Counts {
            available: 2,
            archived: 1,
            ..Counts::default()
        }
    );
    assert_eq!(redeliver(&mut sp, &b, 1, 0), run(0, 0, 2));
}

#[test]
fn the_persisted_state_keeps_what_was_finished_and_frees_what_was_held() {
    let (a, b) = (member("a"), member("b"));
    let mut sp = SharePartition::new(100);
    sp.acquire_new(&a, 100, 104, 0, &LIMITS, &Delays::new());
    sp.acquire_new(&b, 105, 107, 0, &LIMITS, &Delays::new());
    let types = [
        AckType::Release,
        AckType::Accept,
        AckType::Reject,
        AckType::Accept,
        AckType::Release,
    ];
    sp.acknowledge("a", 100, 104, &types, &LIMITS, 0).unwrap();
    // The rejected record counts as done only once its dead letter is written.
    let pending = sp.to_persisted();
    assert!(pending
        .batches
        .iter()
        .any(|b| b.first_offset <= 102 && b.last_offset >= 102 && b.state == STATE_AVAILABLE));
    let archived = sp.take_archived();
    sp.letters_written(&archived);
    let stored = sp.to_persisted();
    let mut back = SharePartition::from_persisted(&stored);
    assert_eq!((back.start_offset(), back.end_offset()), (100, 108));
    // What b holds is stored as acquired and read back as available.
    let mut freed = stored.clone();
    freed.batches.clear();
    for b in &stored.batches {
        let state = match b.state {
            STATE_ACQUIRED => STATE_AVAILABLE,
            s => s,
        };
        match freed.batches.last_mut() {
            Some(p) if p.state == state && p.delivery_count == b.delivery_count => {
                p.last_offset = b.last_offset
            }
            _ => freed.batches.push(StateBatch { state, ..*b }),
        }
    }
    assert!(stored.batches.iter().any(|b| b.state == STATE_ACQUIRED));
    assert_eq!(back.to_persisted(), freed);
    // What b held is available again with its count; finished records never come back.
    let c = member("c");
    let mut offered = Vec::new();
    while let Some(from) = back.first_available(0) {
        offered.extend(back.acquire_available(&c, from, i64::MAX, 100, 0, &LIMITS, &Delays::new()));
    }
    assert_eq!(
        offered,
        vec![
            Acquired {
                first_offset: 100,
                last_offset: 100,
                delivery_count: 2
            },
            Acquired {
                first_offset: 104,
                last_offset: 107,
                delivery_count: 2
            },
        ]
    );
}

#[test]
fn delayed_records_wait_without_holding_up_the_ones_behind() {
    let a = member("a");
    let mut sp = SharePartition::new(0);
    let delays = Delays::from([(1, 5000), (2, 9000)]);
    // 1 and 2 wait; 0 and 3 go now.
    assert_eq!(
        sp.acquire_new(&a, 0, 3, 1000, &LIMITS, &delays),
        vec![
            Acquired {
                first_offset: 0,
                last_offset: 0,
                delivery_count: 1
            },
            Acquired {
                first_offset: 3,
                last_offset: 3,
                delivery_count: 1
            },
        ]
    );
    sp.acknowledge("a", 0, 0, &[AckType::Accept], &LIMITS, 0)
        .unwrap();
    sp.acknowledge("a", 3, 3, &[AckType::Accept], &LIMITS, 0)
        .unwrap();
    assert_eq!(sp.first_available(4999), None);
    assert_eq!(sp.first_available(5000), Some(1));
    assert_eq!(take_first(&mut sp, &a, 5000, &delays), run(1, 1, 1));
    assert_eq!(sp.first_available(8000), None);
    assert_eq!(take_first(&mut sp, &a, 9000, &delays), run(2, 2, 1));
    assert_eq!(sp.start_offset(), 1, "in flight until acknowledged");
}

/// What a share fetch at `now` acquires first for `m`.
fn take_first(sp: &mut SharePartition, m: &Arc<str>, now: i64, delays: &Delays) -> Vec<Acquired> {
    match sp.first_available(now) {
        Some(from) => sp.acquire_available(m, from, i64::MAX, 100, now, &LIMITS, delays),
        None => Vec::new(),
    }
}

#[test]
fn rejected_and_exhausted_records_are_reported_as_archived() {
    let a = member("a");
    let limits = Limits {
        delivery_count_limit: 2,
        ..LIMITS
    };
    let mut sp = SharePartition::new(0);
    sp.acquire_new(&a, 0, 1, 0, &limits, &Delays::new());
    sp.acknowledge("a", 0, 1, &[AckType::Reject, AckType::Release], &limits, 0)
        .unwrap();
    let rejected = sp.take_archived();
    assert_eq!(
        rejected,
        vec![ArchivedRecord {
            offset: 0,
            delivery_count: 1,
            reason: ArchiveReason::Rejected
        }]
    );
    assert_eq!(
        sp.start_offset(),
        0,
        "in flight until its dead letter is written"
    );
    sp.letters_written(&rejected);
    assert_eq!(sp.start_offset(), 1);
    let from = sp.first_available(0).unwrap();
    sp.acquire_available(&a, from, i64::MAX, 10, 0, &limits, &Delays::new());
    sp.expire_locks(LIMITS.lock_duration_ms, &limits);
    assert_eq!(
        sp.take_archived(),
        vec![ArchivedRecord {
            offset: 1,
            delivery_count: 2,
            reason: ArchiveReason::DeliveryLimit
        }]
    );
    assert!(sp.take_archived().is_empty());
}

#[test]
fn a_batch_is_one_run_split_only_where_its_records_differ() {
    let (a, b) = (member("a"), member("b"));
    let limits = Limits {
        max_in_flight: 1_000_000,
        ..LIMITS
    };
    let mut sp = SharePartition::new(0);
    assert_eq!(
        sp.acquire_new(&a, 0, 99_999, 0, &limits, &Delays::new()),
        run(0, 99_999, 1)
    );
    assert_eq!(sp.runs.len(), 1);
    // Release one record in the middle: three runs; a takes it back: one owner again.
    let mut types = vec![AckType::Accept; 3];
    types[1] = AckType::Release;
    sp.acknowledge("a", 500, 502, &types, &limits, 0).unwrap();
    assert_eq!(
        sp.runs.len(),
        5,
        "0..500 held, 500 done, 501 free, 502 done, rest held"
    );
    assert_eq!(
        sp.acquire_available(&b, 501, i64::MAX, 10, 0, &limits, &Delays::new()),
        run(501, 501, 2)
    );
    sp.acknowledge("a", 0, 499, &[AckType::Accept], &limits, 0)
        .unwrap();
    sp.acknowledge("b", 501, 501, &[AckType::Accept], &limits, 0)
        .unwrap();
    assert_eq!(sp.start_offset(), 503);
    assert_eq!(sp.runs.len(), 1, "the rest of the batch, held by a");
    // A fetch asking for fewer records than a run holds takes the front of it.
    sp.release_member("a", &limits);
    assert_eq!(
        sp.acquire_available(&b, 503, i64::MAX, 7, 0, &limits, &Delays::new()),
        run(503, 509, 2)
    );
    assert_eq!(sp.counts().available, 99_999 - 509);
}

#[test]
fn a_renewed_lock_runs_from_the_renewal() {
    let a = member("a");
    let mut sp = SharePartition::new(0);
    sp.acquire_new(&a, 0, 4, 0, &LIMITS, &Delays::new());
    // Renew two of five at 800 ms: they stay acquired, with the same count, until 1800.
    sp.acknowledge("a", 1, 2, &[AckType::Renew], &LIMITS, 800)
        .unwrap();
    sp.expire_locks(1000, &LIMITS);
    assert_eq!(redeliver(&mut sp, &a, 10, 1000), run(0, 0, 2));
    assert_eq!(sp.counts().available, 2, "3 and 4 ran out; 1 and 2 did not");
    sp.expire_locks(1800, &LIMITS);
    assert_eq!(redeliver(&mut sp, &a, 1, 1800), run(1, 1, 2));
    assert!(sp
        .acknowledge("b", 3, 3, &[AckType::Renew], &LIMITS, 1800)
        .is_err());
}

#[test]
fn a_persisted_state_is_rebuilt_by_runs_not_by_records() {
    let stored = PersistedState {
        state_epoch: 3,
        start_offset: 0,
        batches: vec![
            StateBatch {
                first_offset: 0,
                last_offset: 1 << 40,
                state: STATE_AVAILABLE,
                delivery_count: 1,
            },
            StateBatch {
                first_offset: 10,
                last_offset: 19,
                state: STATE_ACKNOWLEDGED,
                delivery_count: 1,
            },
        ],
    };
    let sp = SharePartition::from_persisted(&stored);
    assert_eq!(sp.runs.len(), 3);
    assert_eq!((sp.start_offset(), sp.end_offset()), (0, (1 << 40) + 1));
    assert_eq!(sp.counts().acknowledged, 10);
}

#[test]
fn new_records_are_taken_only_at_the_end_and_within_the_bound() {
    let a = member("a");
    let limits = Limits {
        max_in_flight: 4,
        ..LIMITS
    };
    let mut sp = SharePartition::new(0);
    assert!(
        sp.acquire_new(&a, 1, 3, 0, &limits, &Delays::new())
            .is_empty(),
        "not the end"
    );
    sp.acquire_new(&a, 0, 2, 0, &limits, &Delays::new());
    assert_eq!(sp.room(&limits), 1);
    assert!(
        sp.acquire_new(&a, 0, 2, 0, &limits, &Delays::new())
            .is_empty(),
        "taken already"
    );
}
