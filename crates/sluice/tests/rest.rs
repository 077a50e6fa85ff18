//! The REST API over HTTP against the real binary: topics created, listed, read and deleted,
//! records produced (to the partition Kafka's default partitioner picks, as librdkafka's
//! murmur2 partitioner does) and read back by offset, groups and lag, errors as JSON; every
//! answer is checked against `docs/openapi.json` with the jsonschema Python library.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::group::wait_until;
use common::share::holding_queue;
use common::Broker;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

/// One HTTP/1.1 request: status and body (JSON when there is one).
fn call(broker: &Broker, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", broker.http_port)).unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    // Bodies may come chunked: keep what lies between the first '{' and the last '}'.
    let json = match (rest.find('{'), rest.rfind('}')) {
        (Some(a), Some(b)) => serde_json::from_str(&rest[a..=b]).unwrap(),
        _ => Value::Null,
    };
    (status, json)
}

/// Answers to check against the OpenAPI schemas: (schema name, body).
struct Checked(Vec<(String, Value)>);

impl Checked {
    fn keep(&mut self, schema: &str, body: &Value) -> Value {
        self.0.push((schema.to_string(), body.clone()));
        body.clone()
    }

    /// Validates every kept body with jsonschema against docs/openapi.json.
    fn verify(&self) {
        let dir = tempfile::tempdir().unwrap();
        let bodies = dir.path().join("bodies.json");
        let pairs: Vec<Value> = self.0.iter().map(|(s, b)| json!([s, b])).collect();
        std::fs::write(&bodies, Value::Array(pairs).to_string()).unwrap();
        let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let script = r##"
import json, sys
from jsonschema import Draft202012Validator
spec = json.load(open(sys.argv[1]))
for name, body in json.load(open(sys.argv[2])):
    schema = {"$ref": "#/components/schemas/" + name, "components": spec["components"]}
    Draft202012Validator(schema).validate(body)
"##;
        let out = Command::new("python3")
            .args(["-c", script, spec, bodies.to_str().unwrap()])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "an answer does not match docs/openapi.json: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rest_api_manages_topics_records_and_groups_as_its_openapi_file_says() {
    let broker = Broker::start();
    let mut checked = Checked(Vec::new());
    let (status, clusters) = call(&broker, "GET", "/v3/clusters", None);
    assert_eq!(status, 200);
    checked.keep("ClusterList", &clusters);
    let id = clusters["data"][0]["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("/v3/clusters/{id}");
    let (status, c) = call(&broker, "GET", &base, None);
    assert_eq!(status, 200);
    checked.keep("Cluster", &c);

    // Topics.
    let new = json!({"topic_name": "rest", "partitions_count": 4,
                     "configs": [{"name": "retention.ms", "value": "60000"}]});
    let (status, t) = call(&broker, "POST", &format!("{base}/topics"), Some(&new));
    assert_eq!(status, 201, "{t}");
    checked.keep("Topic", &t);
    assert_eq!(t["partitions_count"], 4);
    let (status, e) = call(&broker, "POST", &format!("{base}/topics"), Some(&new));
    assert_eq!(
        (status, e["error_code"].as_i64()),
        (400, Some(40002)),
        "{e}"
    );
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("TOPIC_ALREADY_EXISTS"));
    checked.keep("Error", &e);
    let (status, list) = call(&broker, "GET", &format!("{base}/topics"), None);
    assert_eq!(status, 200);
    checked.keep("TopicList", &list);
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["topic_name"] == "rest"));
    let (status, e) = call(&broker, "GET", &format!("{base}/topics/nope"), None);
    assert_eq!((status, e["error_code"].as_i64()), (404, Some(40403)));
    let (status, e) = call(&broker, "GET", "/v3/clusters/other/topics", None);
    assert_eq!((status, e["error_code"].as_i64()), (404, Some(40401)));
    let (status, e) = call(
        &broker,
        "POST",
        &format!("{base}/topics"),
        Some(&json!({"partitions_count": 1})),
    );
    assert_eq!(
        (status, e["error_code"].as_i64()),
        (400, Some(40001)),
        "{e}"
    );

    // Records: keyed ones land where librdkafka's murmur2 partitioner puts the same keys.
    let producer = broker.producer(&[("partitioner", "murmur2_random")]);
    for key in ["alpha", "beta", "gamma", "delta"] {
        let body = json!({"key": {"type": "STRING", "data": key},
                          "value": {"type": "JSON", "data": {"n": 1}},
                          "headers": [{"name": "source", "value": "cmVzdA=="}]});
        let (status, r) = call(
            &broker,
            "POST",
            &format!("{base}/topics/rest/records"),
            Some(&body),
        );
        assert_eq!(status, 200, "{r}");
        checked.keep("ProduceResponse", &r);
        let partition = producer
            .send(
                FutureRecord::to("rest").key(key).payload("x"),
                Duration::from_secs(10),
            )
            .await
            .unwrap()
            .partition;
        assert_eq!(r["partition_id"], partition, "key {key}");
    }
    let binary = json!({"partition_id": 0, "value": {"type": "BINARY", "data": "AAEC/w=="}});
    let (status, r) = call(
        &broker,
        "POST",
        &format!("{base}/topics/rest/records"),
        Some(&binary),
    );
    assert_eq!(status, 200);
    let offset = r["offset"].as_i64().unwrap();
    let (status, read) = call(
        &broker,
        "GET",
        &format!("{base}/topics/rest/partitions/0/records?offset={offset}&max_records=10"),
        None,
    );
    assert_eq!(status, 200);
    checked.keep("RecordList", &read);
    assert_eq!(
        read["data"][0]["value"],
        json!({"type": "BINARY", "data": "AAEC/w=="})
    );
    assert_eq!(read["next_offset"], offset + 1);
    // A whole partition from its start: the REST records (with their header) then librdkafka's.
    let (_, keyed) = call(
        &broker,
        "POST",
        &format!("{base}/topics/rest/records"),
        Some(
            &json!({"partition_id": 1, "key": {"type": "STRING", "data": "k"},
                     "value": {"type": "STRING", "data": "v"},
                     "headers": [{"name": "h", "value": "aGk="}]}),
        ),
    );
    let (_, read) = call(
        &broker,
        "GET",
        &format!("{base}/topics/rest/partitions/1/records"),
        None,
    );
    let last = read["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["offset"], keyed["offset"]);
    assert_eq!(last["key"], json!({"type": "STRING", "data": "k"}));
    assert_eq!(last["headers"], json!([{"name": "h", "value": "aGk="}]));
    let (status, e) = call(
        &broker,
        "POST",
        &format!("{base}/topics/rest/records"),
        Some(&json!({"value": {"type": "BINARY", "data": "not base64!"}})),
    );
    assert_eq!((status, e["error_code"].as_i64()), (400, Some(40001)));

    // Brokers, and a topic's partitions with their offsets.
    let (status, brokers) = call(&broker, "GET", &format!("{base}/brokers"), None);
    assert_eq!(status, 200);
    checked.keep("BrokerList", &brokers);
    assert_eq!(brokers["data"][0]["broker_id"], 1);
    assert_eq!(brokers["data"][0]["is_controller"], true);
    let (status, parts) = call(
        &broker,
        "GET",
        &format!("{base}/topics/rest/partitions"),
        None,
    );
    assert_eq!(status, 200);
    checked.keep("PartitionList", &parts);
    assert_eq!(parts["data"].as_array().unwrap().len(), 4);
    assert_eq!(parts["configs"]["retention.ms"], "60000");
    assert_eq!(parts["data"][0]["end_offset"], offset + 1);

    // Groups and lag.
    let consumer = broker.consumer(&[("group.id", "rest-readers")]);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("rest", 0, Offset::Offset(offset))
        .unwrap();
    consumer.commit(&commit, CommitMode::Sync).unwrap();
    let (status, groups) = call(&broker, "GET", &format!("{base}/consumer-groups"), None);
    assert_eq!(status, 200);
    checked.keep("ConsumerGroupList", &groups);
    assert!(groups["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["consumer_group_id"] == "rest-readers"));
    let (status, lags) = call(
        &broker,
        "GET",
        &format!("{base}/consumer-groups/rest-readers/lags"),
        None,
    );
    assert_eq!(status, 200);
    checked.keep("ConsumerLagList", &lags);
    assert_eq!(lags["data"][0]["current_offset"], offset);
    assert_eq!(lags["data"][0]["lag"], 1);
    let (status, e) = call(
        &broker,
        "GET",
        &format!("{base}/consumer-groups/nobody/lags"),
        None,
    );
    assert_eq!((status, e["error_code"].as_i64()), (404, Some(40404)));

    // A queue (share group) with a member holding its records.
    let _holder = holding_queue(&broker, "jobs", "workers", 5).await;
    let (status, queues) = call(&broker, "GET", &format!("{base}/share-groups"), None);
    assert_eq!(status, 200);
    checked.keep("ShareGroupList", &queues);
    assert!(
        queues["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["share_group_id"] == "workers"),
        "{queues}"
    );
    wait_until(10, "the queue shows 5 acquired", || {
        let (_, q) = call(
            &broker,
            "GET",
            &format!("{base}/share-groups/workers"),
            None,
        );
        q["partitions"][0]["acquired"] == 5
    });
    let (_, queue) = call(
        &broker,
        "GET",
        &format!("{base}/share-groups/workers"),
        None,
    );
    checked.keep("ShareGroup", &queue);
    assert_eq!(queue["members"].as_array().unwrap().len(), 1);
    let (status, e) = call(&broker, "GET", &format!("{base}/share-groups/nobody"), None);
    assert_eq!((status, e["error_code"].as_i64()), (404, Some(40404)));

    // Transactions: one committed, one open.
    let done = common::txn::txn_producer(broker.config(), "rest-done", &[]);
    done.begin_transaction().unwrap();
    common::txn::send(&done, "jobs", 0, "t");
    done.commit_transaction(common::txn::TIMEOUT).unwrap();
    let open = common::txn::txn_producer(broker.config(), "rest-open", &[]);
    open.begin_transaction().unwrap();
    common::txn::send(&open, "jobs", 0, "u");
    open.flush(common::txn::TIMEOUT).unwrap();
    let (status, txns) = call(&broker, "GET", &format!("{base}/transactions"), None);
    assert_eq!(status, 200);
    checked.keep("TransactionList", &txns);
    let states: Vec<(String, String)> = txns["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["transactional_id"].as_str().unwrap().to_string(),
                t["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("rest-done".to_string(), "CompleteCommit".to_string()),
            ("rest-open".to_string(), "Ongoing".to_string())
        ]
    );
    open.abort_transaction(common::txn::TIMEOUT).unwrap();

    let (status, _) = call(&broker, "DELETE", &format!("{base}/topics/rest"), None);
    assert_eq!(status, 204);
    let (status, _) = call(&broker, "DELETE", &format!("{base}/topics/rest"), None);
    assert_eq!(status, 404);
    checked.verify();
}
