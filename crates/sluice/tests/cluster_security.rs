//! A secured three-broker cluster: brokers reach each other only over their inter-broker
//! listener, SASL_SSL (SCRAM-SHA-512) or SSL with client certificates mapped to a principal
//! by ssl.principal.mapping.rules (in super.users either way); clients use a SASL_SSL listener
//! of their own (rdkafka with OpenSSL, SCRAM-SHA-256), and etcd requires TLS client
//! certificates. Replication, transactions and a leader's SIGKILL work as on PLAINTEXT, and
//! a client cannot send the brokers' AlterPartition.

mod common;

use std::time::Duration;

use common::cluster::{isr_of, leaders, metadata, wait_until};
use common::raw::Raw;
use common::secure::{Ca, Files};
use common::Broker;
use kafka_protocol::messages::alter_partition_request::{PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, ApiKey, BrokerId};
use rcgen::{DnType, ExtendedKeyUsagePurpose};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

/// One member: its PLAINTEXT port (the harness's), and its client and broker listeners.
struct Member {
    broker: Broker,
    client_port: u16,
}

/// How the brokers know each other on their inter-broker listener.
#[derive(Clone, Copy)]
enum InterBroker {
    /// SASL_SSL, logged in as `broker` with SCRAM-SHA-512.
    Scram,
    /// SSL with client certificates (CN=broker-N,O=Sluice), mapped to `broker` by
    /// ssl.principal.mapping.rules.
    MutualTls,
}

fn member(
    id: i32,
    etcd: &common::cluster::Etcd,
    etcd_flags: &[String],
    files: &Files,
    inter: InterBroker,
) -> Member {
    let (client_port, broker_port) = (common::free_port(), common::free_port());
    let keystore = files.path(&format!("broker-{id}.pem"));
    let truststore = files.path("ca.pem");
    let mut args = vec![
        "--node-id".to_string(),
        id.to_string(),
        "--etcd".to_string(),
        etcd.url(),
        "--cluster-name".to_string(),
        "secured".to_string(),
    ];
    args.extend(etcd_flags.iter().cloned());
    let inter_settings = match inter {
        InterBroker::Scram => "\"listener.security.protocol.map\" = \"PLAINTEXT:PLAINTEXT,CLIENT:SASL_SSL,BROKER:SASL_SSL\"\n\
             \"sasl.mechanism.inter.broker.protocol\" = \"SCRAM-SHA-512\"\n\
             \"sasl.jaas.config\" = 'org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"broker-pw\";'\n",
        // Requested, not required: the SASL_SSL client listener shares the setting.
        InterBroker::MutualTls => "\"listener.security.protocol.map\" = \"PLAINTEXT:PLAINTEXT,CLIENT:SASL_SSL,BROKER:SSL\"\n\
             \"ssl.client.auth\" = \"requested\"\n\
             \"ssl.principal.mapping.rules\" = \"RULE:^CN=broker-[0-9]+,O=Sluice$/broker/,DEFAULT\"\n",
    };
    let broker = Broker::unstarted_naming_port(
        |port| {
            format!(
                "listeners = \"PLAINTEXT://127.0.0.1:{port},CLIENT://127.0.0.1:{client_port},BROKER://127.0.0.1:{broker_port}\"\n\
                 \"inter.broker.listener.name\" = \"BROKER\"\n\
                 \"ssl.keystore.location\" = \"{keystore}\"\n\
                 \"ssl.truststore.location\" = \"{truststore}\"\n\
                 \"super.users\" = \"User:broker\"\n\
                 \"broker.session.timeout.ms\" = 3000\n\
                 \"replica.lag.time.max.ms\" = 3000\n\
                 \"min.insync.replicas\" = 2\n{inter_settings}"
            )
        },
        args,
    );
    Member {
        broker,
        client_port,
    }
}

/// librdkafka on a member's SASL_SSL client listener, as alice.
fn client(m: &Member, files: &Files) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", format!("127.0.0.1:{}", m.client_port))
        .set("security.protocol", "sasl_ssl")
        .set("sasl.mechanism", "SCRAM-SHA-256")
        .set("sasl.username", "alice")
        .set("sasl.password", "alice-pw")
        .set("ssl.ca.location", files.path("ca.pem"));
    c
}

/// Every record of partition 0 of `topic`, read_committed, through `m`'s client listener.
fn read_all(m: &Member, files: &Files, topic: &str, expected: usize) -> Vec<String> {
    let consumer: BaseConsumer = client(m, files)
        .set("group.id", "checker")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < expected && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn brokers_that_talk_over_sasl_ssl_replicate_commit_transactions_and_fail_over() {
    secured_cluster_replicates_commits_and_fails_over(InterBroker::Scram).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn brokers_known_by_their_certificates_replicate_commit_transactions_and_fail_over() {
    secured_cluster_replicates_commits_and_fails_over(InterBroker::MutualTls).await;
}

async fn secured_cluster_replicates_commits_and_fails_over(inter: InterBroker) {
    let ca = Ca::new("Sluice cluster CA");
    let files = Files::new();
    for id in 1..=3 {
        // Server and client: a broker presents it to the brokers it connects to (mTLS).
        let (cert, key) = ca.sign_as(
            &[
                (DnType::OrganizationName, "Sluice"),
                (DnType::CommonName, &format!("broker-{id}")),
            ],
            &["localhost", "127.0.0.1"],
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        files.write(&format!("broker-{id}.pem"), &format!("{cert}{key}"));
    }
    files.write("ca.pem", &ca.pem());
    let (etcd, etcd_flags) = common::secure::etcd_requiring_client_certificates(&ca, &files);
    let mut members: Vec<Member> = (1..=3)
        .map(|id| member(id, &etcd, &etcd_flags, &files, inter))
        .collect();
    for m in &mut members {
        m.broker.restart();
    }
    for m in &members {
        wait_until("every broker sees the others", || {
            metadata(&m.broker).brokers.len() == 3
        });
    }
    // The brokers' own user first (made at the controller, which needs no other broker),
    // then a client's.
    for (user, mechanism, password) in [
        ("broker", "SCRAM-SHA-512", "broker-pw"),
        ("alice", "SCRAM-SHA-256", "alice-pw"),
    ] {
        let (code, out, err) = common::sluice_at(
            &members[0].broker,
            "user",
            &[
                "create",
                user,
                "--mechanism",
                mechanism,
                "--password",
                password,
            ],
        );
        assert_eq!(code, 0, "{out}{err}");
    }

    let admin: AdminClient<DefaultClientContext> = client(&members[1], &files).create().unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new("secured", 1, TopicReplication::Fixed(3))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let b1 = &members[0].broker;
    wait_until("the topic has a leader", || {
        leaders(b1, "secured").first().is_some_and(|l| *l > 0)
    });

    // acks=all with min.insync.replicas=2: acknowledged only once followers fetched it,
    // over the SASL_SSL inter-broker listener.
    let producer: FutureProducer = client(&members[0], &files)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    for i in 0..100 {
        let value = format!("plain-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to("secured").payload(&value),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("record {i} not acknowledged: {e}"));
    }
    wait_until("every replica is in sync", || {
        isr_of(b1, "secured", 0).len() == 3
    });

    // A transaction: markers go from the coordinator to the leader between brokers.
    let txn: FutureProducer = client(&members[2], &files)
        .set("transactional.id", "secured-txn")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    txn.init_transactions(Duration::from_secs(30)).unwrap();
    txn.begin_transaction().unwrap();
    for i in 0..10 {
        let value = format!("txn-{i}");
        txn.send(
            FutureRecord::<(), _>::to("secured").payload(&value),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("transactional record {i}: {e}"));
    }
    txn.commit_transaction(Duration::from_secs(30)).unwrap();
    assert_eq!(read_all(&members[0], &files, "secured", 110).len(), 110);

    // SIGKILL the leader: a follower takes over with every acknowledged record.
    let leader = leaders(b1, "secured")[0];
    members[(leader - 1) as usize].broker.kill();
    let survivor = members.iter().find(|m| m.broker.child.is_some()).unwrap();
    wait_until("another broker leads", || {
        leaders(&survivor.broker, "secured")
            .first()
            .is_some_and(|l| *l > 0 && *l != leader)
    });
    let got = read_all(survivor, &files, "secured", 110);
    assert_eq!(got.len(), 110, "after the failover: {got:?}");
    assert!(got.contains(&"plain-99".to_string()) && got.contains(&"txn-9".to_string()));

    // A client (the PLAINTEXT listener is not the inter-broker one) cannot shrink an ISR.
    let mut raw = Raw::connect(&survivor.broker);
    let request = AlterPartitionRequest::default()
        .with_broker_id(BrokerId(leader))
        .with_topics(vec![TopicData::default()
            .with_topic_id(metadata(&survivor.broker).topics[0].topic_id)
            .with_partitions(vec![PartitionData::default()
                .with_partition_index(0)
                .with_new_isr(vec![BrokerId(leader)])])]);
    let c = raw.send(ApiKey::AlterPartition, 2, &request);
    let r: AlterPartitionResponse = raw.receive_response(ApiKey::AlterPartition, 2, c);
    assert_eq!(r.error_code, CLUSTER_AUTHORIZATION_FAILED);
}
