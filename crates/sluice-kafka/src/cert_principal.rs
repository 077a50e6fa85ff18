//! The principal of a client certificate, as Kafka derives it on SSL listeners: the
//! subject's distinguished name in RFC 2253 form (`CN=alice,OU=eng,O=Example`), rewritten by
//! `ssl.principal.mapping.rules` (`RULE:^CN=(.*?),O=Example$/$1/L,DEFAULT`): the first rule
//! whose pattern matches the whole name gives it; DEFAULT keeps the name as it is.

use regex::Regex;
use x509_parser::prelude::{FromDer, X509Certificate};

/// `ssl.principal.mapping.rules`, parsed.
#[derive(Debug)]
pub struct PrincipalRules(Vec<Rule>);

#[derive(Debug)]
enum Rule {
    Default,
    Pattern {
        regex: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Keep,
    Lower,
    Upper,
}

impl PrincipalRules {
    /// Kafka's syntax: rules separated by commas, each `DEFAULT` or
    /// `RULE:pattern/replacement/` with an optional `L` or `U` after it.
    pub fn parse(text: &str) -> Result<PrincipalRules, String> {
        let named = |why: &str| format!("ssl.principal.mapping.rules {text:?}: {why}");
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| named("a RULE without its / after the pattern"))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| named("a RULE without its / after the replacement"))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let regex = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| named(&format!("pattern {pattern:?}: {e}")))?;
                rules.push(Rule::Pattern {
                    regex,
                    replacement,
                    case,
                });
                rest = after;
            } else {
                return Err(named(
                    "each rule is DEFAULT or RULE:pattern/replacement/[LU]",
                ));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(named("rules are separated by commas")),
            }
        }
        if rules.is_empty() {
            return Err(named("no rule"));
        }
        Ok(PrincipalRules(rules))
    }

    /// The name `dn` maps to; None when no rule applies (the connection gets no principal).
    pub fn apply(&self, dn: &str) -> Option<String> {
        for rule in &self.0 {
            match rule {
                Rule::Default => return Some(dn.to_string()),
                Rule::Pattern {
                    regex,
                    replacement,
                    case,
                } if regex.is_match(dn) => {
                    let name = regex.replace(dn, replacement.as_str()).into_owned();
                    return Some(match case {
                        Case::Keep => name,
                        Case::Lower => name.to_lowercase(),
                        Case::Upper => name.to_uppercase(),
                    });
                }
                Rule::Pattern { .. } => {}
            }
        }
        None
    }
}

/// Text up to the next `/` not escaped as `\/` (unescaped), and what follows that `/`.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if text[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &text[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// The subject of a DER certificate in RFC 2253 form, as Java's
/// `X500Principal.getName()` gives it: the last RDN first, comma-separated, the attribute
/// types Java names by keyword (others by OID).
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut rdns: Vec<String> = cert
        .subject()
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let value = atv.as_str().unwrap_or_default();
                    format!("{}={}", keyword(&oid).unwrap_or(&oid), escape(value))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.reverse();
    Some(rdns.join(","))
}

/// RFC 2253's keywords (what Java prints by name).
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// An attribute value with RFC 2253's special characters escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_map_names_as_kafka_documents_them() {
        let rules = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$2/L, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            rules
                .apply("CN=kafka-broker,OU=ServiceUsers,O=Example")
                .as_deref(),
            Some("kafka-broker")
        );
        assert_eq!(
            rules.apply("CN=Duke,OU=JavaSoft,O=Sun").as_deref(),
            Some("duke@javasoft")
        );
        assert_eq!(rules.apply("CN=other").as_deref(), Some("CN=other"));
        let strict = PrincipalRules::parse("RULE:^CN=([a-z]+)$/$1/U").unwrap();
        assert_eq!(strict.apply("CN=bob").as_deref(), Some("BOB"));
        assert_eq!(strict.apply("CN=bob,O=x"), None, "no rule applies");
        let slashes = PrincipalRules::parse(r"RULE:^CN=a\/b$/x\/y/").unwrap();
        assert_eq!(slashes.apply("CN=a/b").as_deref(), Some("x/y"));
    }

    #[test]
    fn bad_rules_are_named() {
        for bad in ["", "RULE:^CN=.*$", "NOPE", "DEFAULT DEFAULT", "RULE:([/x/"] {
            let e = PrincipalRules::parse(bad).unwrap_err();
            assert!(e.contains("ssl.principal.mapping.rules"), "{bad}: {e}");
        }
    }

    #[test]
    fn values_are_escaped() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" lead"), "\\ lead");
    }
}
