//! Thousands of idle client connections: all are served, and the broker still serves others.
//! (More than the usual soft limit of 1024 descriptors: the broker raises its own limit.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Broker;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

/// ApiVersions v0 with correlation id `id`, framed.
fn api_versions(id: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(&4i16.to_be_bytes());
    body.extend_from_slice(b"idle");
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn read_correlation(s: &mut TcpStream) -> i32 {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    i32::from_be_bytes(body[..4].try_into().unwrap())
}

/// Raises this process's descriptor limit to its hard limit; returns the new limit.
fn raise_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    l.rlim_cur
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_idle_connections_are_served() {
    // Started before this process raises its own limit: the broker must raise its own.
    let broker = Broker::start();
    let limit = raise_limit();
    let n = 3000.min(limit.saturating_sub(200) as usize);
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", broker.port))
            .unwrap_or_else(|e| panic!("connection {i} of {n}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(&api_versions(i as i32)).unwrap();
        conns.push(s);
    }
    for (i, s) in conns.iter_mut().enumerate() {
        assert_eq!(read_correlation(s), i as i32);
    }
    // With all of them open and idle, another client produces and consumes as usual.
    broker.create_topic("busy", 1, &[]).await;
    let producer = broker.producer(&[]);
    producer
        .send(
            FutureRecord::<(), _>::to("busy").payload("still here"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let consumer = broker.consumer(&[]);
    let mut got = Vec::new();
    common::consume(&consumer, "busy", &[0], Offset::Beginning, 1, |m| {
        got.push(common::payload(m))
    });
    assert_eq!(got, vec![b"still here".to_vec()]);
    // And the idle connections are still live.
    for i in [0, n - 1] {
        conns[i].write_all(&api_versions(7)).unwrap();
        assert_eq!(read_correlation(&mut conns[i]), 7);
    }
}
