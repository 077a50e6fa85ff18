//! The etcd keys of one cluster, all under `/sluice/<cluster name>/`.

use serde_json::Value;
use sluice_cluster::CoordinatorError;

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// What a key under the prefix names.
pub enum Key<'a> {
    Broker(i32),
    Controller,
    Topic(&'a str),
    GroupConfigs(&'a str),
    ScramUser(&'a str),
    Other,
}

impl Keys {
    pub fn new(cluster_name: &str) -> Keys {
        Keys {
            prefix: format!("/sluice/{cluster_name}/"),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn cluster_id(&self) -> String {
        format!("{}cluster-id", self.prefix)
    }

    pub fn broker(&self, node_id: i32) -> String {
        format!("{}brokers/{node_id}", self.prefix)
    }

    pub fn controller(&self) -> String {
        format!("{}controller", self.prefix)
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}topics/{name}", self.prefix)
    }

    pub fn group_configs(&self, group: &str) -> String {
        format!("{}group-configs/{group}", self.prefix)
    }

    /// A user's SCRAM credentials (salted and hashed).
    pub fn scram_user(&self, user: &str) -> String {
        format!("{}scram-users/{user}", self.prefix)
    }

    pub fn producer_ids(&self) -> String {
        format!("{}producer-ids", self.prefix)
    }

    pub fn parse<'a>(&self, key: &'a str) -> Key<'a> {
        let Some(rest) = key.strip_prefix(self.prefix.as_str()) else {
            return Key::Other;
        };
        if rest == "controller" {
            return Key::Controller;
        }
        if let Some(id) = rest.strip_prefix("brokers/") {
            return id.parse().map_or(Key::Other, Key::Broker);
        }
        if let Some(name) = rest.strip_prefix("topics/") {
            return Key::Topic(name);
        }
        if let Some(group) = rest.strip_prefix("group-configs/") {
            return Key::GroupConfigs(group);
        }
        if let Some(user) = rest.strip_prefix("scram-users/") {
            return Key::ScramUser(user);
        }
        Key::Other
    }
}

pub fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, CoordinatorError> {
    serde_json::to_vec(value).map_err(|e| CoordinatorError::Storage(e.to_string()))
}

/// Reads a JSON record; a record this version cannot read is reported, not fatal.
pub fn parse<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            let shown = serde_json::from_slice::<Value>(bytes).map_or_else(
                |_| String::from_utf8_lossy(bytes).into_owned(),
                |v| v.to_string(),
            );
            tracing::warn!(%key, error = %e, record = %shown, "ignoring an unreadable metadata record");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_layout_parses_back_to_what_it_names() {
        let keys = Keys::new("prod");
        assert_eq!(keys.prefix(), "/sluice/prod/");
        assert!(matches!(keys.parse(&keys.broker(3)), Key::Broker(3)));
        assert!(matches!(keys.parse(&keys.controller()), Key::Controller));
        assert!(matches!(
            keys.parse(&keys.topic("a.b-c")),
            Key::Topic("a.b-c")
        ));
        assert!(matches!(
            keys.parse(&keys.group_configs("g")),
            Key::GroupConfigs("g")
        ));
        for other in [keys.cluster_id(), keys.producer_ids()] {
            assert!(matches!(keys.parse(&other), Key::Other), "{other}");
        }
    }

    #[test]
    fn keys_of_another_cluster_or_malformed_ones_name_nothing() {
        let keys = Keys::new("prod");
        for key in [
            "/sluice/prod-2/brokers/1",
            "/sluice/other/topics/t",
            "/sluice/prod/brokers/one",
            "/sluice/prod/brokers/",
            "/sluice/prod/controllers",
            "/sluice/prod",
            "sluice/prod/topics/t",
        ] {
            assert!(matches!(keys.parse(key), Key::Other), "{key}");
        }
    }

    #[test]
    fn an_unreadable_record_is_skipped_not_fatal() {
        assert_eq!(parse::<Vec<i32>>("k", b"[1,2]"), Some(vec![1, 2]));
        assert_eq!(parse::<Vec<i32>>("k", b"{\"not\": \"a list\"}"), None);
        assert_eq!(parse::<Vec<i32>>("k", b"\xff garbage"), None);
    }
}
