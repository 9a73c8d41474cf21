//! `fnhost keys ...`: function and host keys on a running host.

use std::process::ExitCode;

use anyhow::Result;
use bytes::Bytes;
use clap::Subcommand;
use serde_json::Value;

use super::{cell, path_segment, print_or_fail, ApiClient, Target};

/// `fnhost keys ...`.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// List the host keys, or a function's keys with --function.
    List {
        /// The function whose keys to list (default: the host keys).
        #[arg(long)]
        function: Option<String>,
    },
    /// Create or replace a key; its value is generated unless --value is given.
    Set {
        /// The key's name (letters, digits, '-' and '_').
        name: String,
        /// A key of this function (default: a host key).
        #[arg(long)]
        function: Option<String>,
        /// The value (at least 16 of letters, digits, '-', '_', '.', '~');
        /// on the command line it is visible to local users while this runs.
        #[arg(long)]
        value: Option<String>,
    },
    /// Delete a key.
    Delete {
        /// The key's name.
        name: String,
        /// A key of this function (default: a host key).
        #[arg(long)]
        function: Option<String>,
    },
}

fn base(function: Option<&str>) -> String {
    match function {
        Some(f) => format!("/admin/functions/{}/keys", path_segment(f)),
        None => "/admin/host/keys".to_string(),
    }
}

fn print_key(t: &Target, v: &Value) {
    if t.json {
        println!("{v}");
    } else {
        println!("{}  {}", cell(&v["name"]), cell(&v["value"]));
    }
}

/// Runs `fnhost keys ...`.
pub async fn keys(t: Target, cmd: KeysCommand) -> ExitCode {
    print_or_fail(run(&t, cmd).await)
}

async fn run(t: &Target, cmd: KeysCommand) -> Result<()> {
    let c = ApiClient::new(t)?;
    match cmd {
        KeysCommand::List { function } => {
            let v = c
                .json("GET", &base(function.as_deref()), Bytes::new())
                .await?;
            if t.json {
                println!("{v}");
                return Ok(());
            }
            println!("{:<24}  VALUE", "NAME");
            for k in v["keys"].as_array().into_iter().flatten() {
                println!("{:<24}  {}", cell(&k["name"]), cell(&k["value"]));
            }
        }
        KeysCommand::Set {
            name,
            function,
            value,
        } => {
            let body = match value {
                Some(v) => serde_json::json!({ "value": v }).to_string(),
                None => String::new(),
            };
            let path = format!("{}/{}", base(function.as_deref()), path_segment(&name));
            let v = c.json("PUT", &path, body.into()).await?;
            print_key(t, &v);
        }
        KeysCommand::Delete { name, function } => {
            let path = format!("{}/{}", base(function.as_deref()), path_segment(&name));
            c.call_ok("DELETE", &path).await?;
            if !t.json {
                println!("{name}: deleted");
            }
        }
    }
    Ok(())
}
