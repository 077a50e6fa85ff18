//! Listeners as Kafka names them: `listeners` (`NAME://host:port,...`), `advertised.listeners`,
//! `listener.security.protocol.map` (a listener's name to its security protocol) and
//! `inter.broker.listener.name` (the one brokers use to reach each other). `--listen` and
//! `--advertised` are the one-listener shorthand: a PLAINTEXT listener named PLAINTEXT.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

/// Kafka's security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        Some(match s {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections are encrypted with TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients authenticate with SASL.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// Kafka's default `listener.security.protocol.map`: each protocol's name is a listener name.
pub const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// One listener: where it binds, what it tells clients, and how connections to it are secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    pub advertised: (String, u16),
}

impl Listener {
    /// Whether it takes clients from the network without knowing who they are: bound beyond
    /// loopback, and neither SASL nor TLS with required client certificates
    /// (`client_auth` is `ssl.client.auth`).
    pub fn open_to_anyone(&self, client_auth: &str) -> bool {
        let authenticated =
            self.protocol.sasl() || (self.protocol.tls() && client_auth == "required");
        !self.bind.ip().is_loopback() && !authenticated
    }
}

/// The settings that describe listeners, by their Kafka names (empty: not set).
pub struct ListenerSettings<'a> {
    pub listeners: &'a str,
    pub advertised_listeners: &'a str,
    pub protocol_map: &'a str,
    pub inter_broker: &'a str,
}

/// The listeners, and the index of the inter-broker one. Without `listeners` the shorthand
/// (`bind`, `advertised`) is one PLAINTEXT listener named PLAINTEXT.
pub fn parse(
    s: &ListenerSettings<'_>,
    bind: SocketAddr,
    advertised: (String, u16),
) -> Result<(Vec<Listener>, usize), String> {
    let map = protocol_map(s.protocol_map)?;
    let listeners = if s.listeners.trim().is_empty() {
        vec![Listener {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            bind,
            advertised,
        }]
    } else {
        let advertised = endpoints(s.advertised_listeners, "advertised.listeners")?;
        let mut out: Vec<Listener> = Vec::new();
        for (name, host, port) in endpoints(s.listeners, "listeners")? {
            let protocol = *map.get(&name).ok_or_else(|| {
                format!(
                    "listener {name} has no security protocol in listener.security.protocol.map"
                )
            })?;
            let bind = (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| format!("listeners: {name}://{host}:{port}: {e}"))?
                .next()
                .ok_or_else(|| format!("listeners: {host} resolves to no address"))?;
            if out.iter().any(|l| l.name == name) {
                return Err(format!("listeners: {name} is named twice"));
            }
            let told = match advertised.iter().find(|(n, _, _)| *n == name) {
                Some((_, h, p)) => (h.clone(), *p),
                None if bind.ip().is_unspecified() => ("localhost".to_string(), port),
                None => (bind.ip().to_string(), port),
            };
            out.push(Listener {
                name,
                protocol,
                bind,
                advertised: told,
            });
        }
        if let Some((n, _, _)) = advertised
            .iter()
            .find(|(n, _, _)| !out.iter().any(|l| l.name == *n))
        {
            return Err(format!(
                "advertised.listeners names {n}, which listeners does not"
            ));
        }
        out
    };
    let inter = if s.inter_broker.trim().is_empty() {
        // Kafka's default: security.inter.broker.protocol=PLAINTEXT, the listener of that name;
        // with one listener, that one.
        match listeners.iter().position(|l| l.name == "PLAINTEXT") {
            Some(i) => i,
            None if listeners.len() == 1 => 0,
            None => {
                return Err(
                    "inter.broker.listener.name must name one of the listeners (none is named PLAINTEXT)"
                        .into(),
                )
            }
        }
    } else {
        listeners
            .iter()
            .position(|l| l.name == s.inter_broker.trim())
            .ok_or_else(|| {
                format!(
                    "inter.broker.listener.name {} is not one of the listeners",
                    s.inter_broker.trim()
                )
            })?
    };
    Ok((listeners, inter))
}

/// `NAME:PROTOCOL,...`.
fn protocol_map(text: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    let text = if text.trim().is_empty() {
        DEFAULT_PROTOCOL_MAP
    } else {
        text
    };
    let mut out = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| {
            format!("listener.security.protocol.map: {entry:?} is not NAME:PROTOCOL")
        })?;
        let protocol = SecurityProtocol::parse(protocol.trim()).ok_or_else(|| {
            format!(
                "listener.security.protocol.map: {protocol:?} is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            )
        })?;
        out.insert(name.trim().to_string(), protocol);
    }
    Ok(out)
}

/// `NAME://host:port,...` (an IPv6 host in brackets; an empty host binds every address).
fn endpoints(text: &str, setting: &str) -> Result<Vec<(String, String, u16)>, String> {
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || format!("{setting}: {entry:?} is not NAME://HOST:PORT");
        let (name, rest) = entry.split_once("://").ok_or_else(bad)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(format!(
                "{setting}: listener name {name:?}: upper-case letters, digits, '_' and '-'"
            ));
        }
        out.push((name.to_string(), host.to_string(), port));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(
        listeners: &'a str,
        advertised: &'a str,
        map: &'a str,
        inter: &'a str,
    ) -> ListenerSettings<'a> {
        ListenerSettings {
            listeners,
            advertised_listeners: advertised,
            protocol_map: map,
            inter_broker: inter,
        }
    }

    fn shorthand() -> (SocketAddr, (String, u16)) {
        (
            "127.0.0.1:9092".parse().unwrap(),
            ("127.0.0.1".into(), 9092),
        )
    }

    #[test]
    fn the_shorthand_is_one_plaintext_listener() {
        let (bind, adv) = shorthand();
        let (ls, inter) = parse(&settings("", "", "", ""), bind, adv.clone()).unwrap();
        assert_eq!(ls.len(), 1);
        assert_eq!(
            (
                ls[0].name.as_str(),
                ls[0].protocol,
                ls[0].bind,
                &ls[0].advertised
            ),
            ("PLAINTEXT", SecurityProtocol::Plaintext, bind, &adv)
        );
        assert_eq!(inter, 0);
    }

    #[test]
    fn listeners_side_by_side_with_their_protocols_and_advertised_addresses() {
        let (bind, adv) = shorthand();
        let s = settings(
            "PLAINTEXT://127.0.0.1:9092,SSL://0.0.0.0:9093,BROKER://[::1]:9094",
            "SSL://kafka.example.com:19093",
            "BROKER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL",
            "BROKER",
        );
        let (ls, inter) = parse(&s, bind, adv).unwrap();
        let names: Vec<&str> = ls.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["PLAINTEXT", "SSL", "BROKER"]);
        assert_eq!(ls[1].protocol, SecurityProtocol::Ssl);
        assert_eq!(ls[1].advertised, ("kafka.example.com".to_string(), 19093));
        assert_eq!(ls[0].advertised, ("127.0.0.1".to_string(), 9092));
        assert_eq!(ls[2].bind, "[::1]:9094".parse().unwrap());
        assert_eq!(inter, 2);
    }

    #[test]
    fn mistakes_are_named() {
        let (bind, adv) = shorthand();
        let err = |l, a, m, i| parse(&settings(l, a, m, i), bind, adv.clone()).unwrap_err();
        assert!(err("FOO://:9092", "", "", "").contains("FOO"));
        assert!(err("PLAINTEXT://:9092", "SSL://h:1", "", "").contains("advertised.listeners"));
        assert!(err("PLAINTEXT://:9092", "", "", "BROKER").contains("inter.broker.listener.name"));
        assert!(err("PLAINTEXT://:x", "", "", "").contains("NAME://HOST:PORT"));
        assert!(err("PLAINTEXT://:1", "", "PLAINTEXT:TLS", "").contains("TLS"));
        assert!(
            err("SSL://:9093,SASL_SSL://:9094", "", "", "").contains("inter.broker.listener.name")
        );
    }
}
