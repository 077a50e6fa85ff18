//! `sluice user create|list|delete`: SCRAM users, as Kafka's `kafka-configs.sh --alter
//! --add-config 'SCRAM-SHA-256=[password=...]' --entity-type users` makes them. The password
//! is salted and hashed here (AlterUserScramCredentials carries the salted password, never
//! the password); the broker keeps only the keys derived from it.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use sluice_broker::auth::Hash;
use sluice_broker::scram_users::{mechanism_number, MAX_ITERATIONS, MIN_ITERATIONS};

use crate::admin_client::AdminClient;
use crate::cli::{self, s, Common, Output, Status};

#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user (or set its password) for SCRAM and PLAIN logins.
    Create(CreateArgs),
    /// List users and the SCRAM mechanisms they have credentials for.
    List(ListArgs),
    /// Delete a user's credentials: its next login is refused.
    Delete(DeleteArgs),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub common: Common,
    pub user: String,
    /// The password (or set SLUICE_USER_PASSWORD, which keeps it out of the process list).
    #[arg(long, env = "SLUICE_USER_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// SCRAM-SHA-256, SCRAM-SHA-512, or both (the default).
    #[arg(long = "mechanism")]
    pub mechanisms: Vec<String>,
    #[arg(long, default_value_t = 8192)]
    pub iterations: i32,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub common: Common,
    pub user: String,
    /// Only this mechanism's credential (default: every one the user has).
    #[arg(long = "mechanism")]
    pub mechanisms: Vec<String>,
}

pub fn run(command: UserCommand) -> anyhow::Result<Status> {
    cli::block_on(async move {
        match command {
            UserCommand::Create(a) => create(&a).await,
            UserCommand::List(a) => list(&a).await,
            UserCommand::Delete(a) => delete(&a).await,
        }
    })
}

fn hashes(mechanisms: &[String]) -> anyhow::Result<Vec<Hash>> {
    if mechanisms.is_empty() {
        return Ok(vec![Hash::Sha256, Hash::Sha512]);
    }
    mechanisms
        .iter()
        .map(|m| match m.as_str() {
            "SCRAM-SHA-256" => Ok(Hash::Sha256),
            "SCRAM-SHA-512" => Ok(Hash::Sha512),
            other => anyhow::bail!("--mechanism {other}: SCRAM-SHA-256 or SCRAM-SHA-512"),
        })
        .collect()
}

async fn alter(
    common: &Common,
    what: &str,
    request: AlterUserScramCredentialsRequest,
) -> anyhow::Result<Status> {
    // Sent to the controller itself (as Kafka's admin clients did before KIP-590): a user
    // that brokers need to reach each other can be made before they can.
    let admin = AdminClient::connect(&common.target()?).await?;
    let controller = admin.metadata.controller_id.0;
    let conn = if controller >= 0 {
        admin.brokers.conn(controller).await?
    } else {
        admin.via.clone()
    };
    let r: AlterUserScramCredentialsResponse = conn
        .call_at(ApiKey::AlterUserScramCredentials, 0, &request)
        .await?;
    if let Some(failed) = r.results.iter().find(|r| r.error_code != 0) {
        return Ok(cli::refused(
            what,
            failed.error_code,
            failed.error_message.as_deref(),
        ));
    }
    Ok(0)
}

async fn create(a: &CreateArgs) -> anyhow::Result<Status> {
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&a.iterations) {
        anyhow::bail!(
            "--iterations {}: between {MIN_ITERATIONS} and {MAX_ITERATIONS}",
            a.iterations
        );
    }
    let mut upsertions = Vec::new();
    for hash in hashes(&a.mechanisms)? {
        let mut salt = [0u8; 32];
        getrandom::getrandom(&mut salt)
            .map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
        let salted = hash.salted_password(a.password.as_bytes(), &salt, a.iterations as u32);
        upsertions.push(
            ScramCredentialUpsertion::default()
                .with_name(s(&a.user))
                .with_mechanism(mechanism_number(hash.mechanism()))
                .with_iterations(a.iterations)
                .with_salt(salt.to_vec().into())
                .with_salted_password(salted.into()),
        );
    }
    let status = alter(
        &a.common,
        &format!("creating user {:?}", a.user),
        AlterUserScramCredentialsRequest::default().with_upsertions(upsertions),
    )
    .await?;
    if status == 0 && a.common.output == Output::Text {
        println!("user {} created", a.user);
    }
    Ok(status)
}

async fn delete(a: &DeleteArgs) -> anyhow::Result<Status> {
    let conn = cli::connect(&a.common.target()?).await?;
    // Every mechanism the user has, unless some are named.
    let hashes = if a.mechanisms.is_empty() {
        let r: DescribeUserScramCredentialsResponse = conn
            .call_at(
                ApiKey::DescribeUserScramCredentials,
                0,
                &DescribeUserScramCredentialsRequest::default()
                    .with_users(Some(vec![UserName::default().with_name(s(&a.user))])),
            )
            .await?;
        let Some(found) = r.results.first() else {
            anyhow::bail!("the broker described nothing");
        };
        if found.error_code != 0 {
            return Ok(cli::refused(
                &format!("deleting user {:?}", a.user),
                found.error_code,
                found.error_message.as_deref(),
            ));
        }
        found.credential_infos.iter().map(|c| c.mechanism).collect()
    } else {
        hashes(&a.mechanisms)?
            .into_iter()
            .map(|h| mechanism_number(h.mechanism()))
            .collect::<Vec<_>>()
    };
    let deletions = hashes
        .into_iter()
        .map(|m| {
            ScramCredentialDeletion::default()
                .with_name(s(&a.user))
                .with_mechanism(m)
        })
        .collect();
    let status = alter(
        &a.common,
        &format!("deleting user {:?}", a.user),
        AlterUserScramCredentialsRequest::default().with_deletions(deletions),
    )
    .await?;
    if status == 0 && a.common.output == Output::Text {
        println!("user {} deleted", a.user);
    }
    Ok(status)
}

async fn list(a: &ListArgs) -> anyhow::Result<Status> {
    let conn = cli::connect(&a.common.target()?).await?;
    let r: DescribeUserScramCredentialsResponse = conn
        .call_at(
            ApiKey::DescribeUserScramCredentials,
            0,
            &DescribeUserScramCredentialsRequest::default().with_users(None),
        )
        .await?;
    if r.error_code != 0 {
        return Ok(cli::refused(
            "listing users",
            r.error_code,
            r.error_message.as_deref(),
        ));
    }
    let name = |m: i8| match m {
        1 => "SCRAM-SHA-256",
        2 => "SCRAM-SHA-512",
        _ => "unknown",
    };
    let users: Vec<(String, Vec<(String, i32)>)> = r
        .results
        .iter()
        .map(|u| {
            (
                u.user.to_string(),
                u.credential_infos
                    .iter()
                    .map(|c| (name(c.mechanism).to_string(), c.iterations))
                    .collect(),
            )
        })
        .collect();
    if a.common.output == Output::Json {
        let out: Vec<serde_json::Value> = users
            .iter()
            .map(|(user, creds)| {
                serde_json::json!({
                    "user": user,
                    "mechanisms": creds.iter().map(|(m, i)| serde_json::json!({"mechanism": m, "iterations": i})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|(user, creds)| {
            vec![
                user.clone(),
                creds
                    .iter()
                    .map(|(m, i)| format!("{m} ({i})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    cli::print_table(&["USER", "MECHANISMS"], &rows);
    Ok(0)
}
