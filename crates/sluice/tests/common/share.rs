//! Share group (queue) members in their own processes (tests/python/share_member.py, on
//! confluent-kafka's ShareConsumer), and group settings for them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::raw::Raw;
use super::Broker;

/// One record as a member got it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
    pub delivery_count: i64,
    pub value: String,
    /// The record's timestamp, and when the member got it (epoch ms).
    pub timestamp: i64,
    pub received_at: i64,
}

pub struct ShareMember {
    child: Child,
    got: Arc<Mutex<Vec<Delivery>>>,
    errors: Arc<Mutex<Vec<String>>>,
    closed: Arc<Mutex<bool>>,
    holding: Arc<Mutex<bool>>,
    /// What librdkafka logged (the member's stderr).
    log: Arc<Mutex<Vec<String>>>,
}

impl ShareMember {
    /// Starts a member of `group` on `topic` doing `action` with each record (see the
    /// script), closing after `limit` records if given.
    pub fn spawn(
        bootstrap: &str,
        group: &str,
        topic: &str,
        action: &str,
        limit: Option<usize>,
    ) -> ShareMember {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/share_member.py");
        let mut args = vec![
            script.to_string(),
            bootstrap.to_string(),
            group.to_string(),
            topic.to_string(),
            action.to_string(),
        ];
        args.extend(limit.map(|l| l.to_string()));
        let mut child = Command::new("python3")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().expect("piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped");
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                l.lock().unwrap().push(line);
            }
        });
        let got = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(Mutex::new(false));
        let holding = Arc::new(Mutex::new(false));
        let (g, e, c, h) = (got.clone(), errors.clone(), closed.clone(), holding.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let v: serde_json::Value = match serde_json::from_str(&line) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                if let Some(err) = v.get("error") {
                    e.lock().unwrap().push(err.to_string());
                } else if v.get("closed").is_some() {
                    *c.lock().unwrap() = true;
                } else if v.get("holding").is_some() {
                    *h.lock().unwrap() = true;
                } else {
                    g.lock().unwrap().push(Delivery {
                        partition: v["p"].as_i64().unwrap() as i32,
                        offset: v["o"].as_i64().unwrap(),
                        delivery_count: v["d"].as_i64().unwrap(),
                        value: v["v"].as_str().unwrap().to_string(),
                        timestamp: v["ts"].as_i64().unwrap_or(-1),
                        received_at: v["at"].as_i64().unwrap_or(-1),
                    });
                }
            }
        });
        ShareMember {
            child,
            got,
            errors,
            closed,
            holding,
            log,
        }
    }

    /// Every record this member got, in order.
    pub fn got(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    /// librdkafka's log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// True once the member closed after its limit.
    pub fn closed(&self) -> bool {
        *self.closed.lock().unwrap()
    }

    /// True once a `hold` member has printed every record it holds.
    pub fn holding(&self) -> bool {
        *self.holding.lock().unwrap()
    }

    /// SIGKILL: no acknowledgement, no leaving.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ShareMember {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sets group configs (IncrementalAlterConfigs on the GROUP resource).
pub fn set_group_configs(broker: &Broker, group: &str, configs: &[(&str, &str)]) {
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(s(group))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(0)
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            ),
    ]);
    let mut raw = Raw::connect(broker);
    let c = raw.send(ApiKey::IncrementalAlterConfigs, 1, &req);
    let r: IncrementalAlterConfigsResponse =
        raw.receive_response(ApiKey::IncrementalAlterConfigs, 1, c);
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
}

/// A queue: `topic` (one partition) with `count` records, read from its start by `group`,
/// whose one member holds every record (acquired, never acknowledged).
pub async fn holding_queue(broker: &Broker, topic: &str, group: &str, count: usize) -> ShareMember {
    broker.create_topic(topic, 1, &[]).await;
    set_group_configs(broker, group, &[("share.auto.offset.reset", "earliest")]);
    super::group::produce(broker, topic, 1, count, "job").await;
    let holder = ShareMember::spawn(&broker.bootstrap(), group, topic, "hold", None);
    super::group::wait_until(30, "the member holds every record", || {
        holder.got().len() == count
    });
    holder
}
