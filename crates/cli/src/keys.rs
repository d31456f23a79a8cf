//! `glassbox keys`: create and inspect ed25519 publisher keys. The secret
//! never leaves its file: nothing here prints it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use glassbox_store::keyfile::{generate_secret_key, read_secret_key, write_secret_key};
use serde_json::json;

#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a new key file (mode 0600; never overwrites) and print its public key.
    Generate {
        /// Key file to create [default: $GLASSBOX_HOME/key or ~/.glassbox/key].
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the public key of a key file.
    Show {
        /// Key file [default: $GLASSBOX_HOME/key or ~/.glassbox/key].
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `$GLASSBOX_HOME`, else `~/.glassbox`.
pub(crate) fn glassbox_home() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("GLASSBOX_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither GLASSBOX_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".glassbox"))
}

/// The key file to use: `given`, else the default under the home.
pub(crate) fn key_path(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p),
        None => Ok(glassbox_home()?.join("key")),
    }
}

pub(crate) fn run(args: KeysArgs) -> Result<()> {
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    match args.command {
        KeysCommand::Generate { output, json } => {
            let path = key_path(output)?;
            let key = generate_secret_key()?;
            write_secret_key(&path, &key)?;
            let public = key.public().to_string();
            if json {
                writeln!(
                    w,
                    "{}",
                    json!({"key_file": path.display().to_string(), "public_key": public})
                )?;
            } else {
                writeln!(w, "key file    {} (mode 0600)", path.display())?;
                writeln!(w, "public key  {public}")?;
            }
        }
        KeysCommand::Show { key, json } => {
            let path = key_path(key)?;
            let key = read_secret_key(&path)?;
            let public = key.public().to_string();
            if json {
                writeln!(
                    w,
                    "{}",
                    json!({"key_file": path.display().to_string(), "public_key": public})
                )?;
            } else {
                writeln!(w, "{public}")?;
            }
        }
    }
    Ok(())
}
