//! The `glassbox` command-line tool: a thin layer over the library crates.
//! It parses arguments, reads and writes files, and prints results; all
//! computation lives in `glassbox-runtime`.

mod exec;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Glassbox: verifiable inference on a bit-reproducible ONNX runtime.
#[derive(Debug, Parser)]
#[command(name = "glassbox", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an ONNX model locally and print its outputs, cost and trace root.
    Exec(exec::ExecArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Exec(args) => exec::run(args),
    }
}
