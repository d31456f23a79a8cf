//! The `glassbox` command-line tool: a thin layer over the library crates.
//! It parses arguments, reads and writes files, and prints results; all
//! computation lives in `glassbox-runtime`, `glassbox-types` and
//! `glassbox-store`.

mod demo;
mod exec;
mod infer;
mod job;
mod keys;
mod model;
mod net;
mod node;
mod progress;
mod receipt;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Glassbox: verifiable inference on a bit-reproducible ONNX runtime.
#[derive(Debug, Parser)]
#[command(name = "glassbox", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Also trust the CA certificates in this PEM file for `https://`
    /// nodes (a private network's CA; Mozilla's roots are always trusted).
    #[arg(long, global = true, value_name = "FILE", env = "GLASSBOX_CA")]
    ca: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an ONNX model locally and print its outputs, cost and trace root.
    Exec(exec::ExecArgs),
    /// Create and show publisher keys.
    Keys(keys::KeysArgs),
    /// Publish, inspect, fetch and verify models in a registry.
    Model(model::ModelArgs),
    /// Run one validator of a network from its config file.
    Node(node::NodeArgs),
    /// Run a whole local network (4 validators by default) on embedded
    /// defaults; resumes it when started again on the same data directory.
    Dev(node::DevArgs),
    /// Ask the network for a verified inference: k executors must agree
    /// bit for bit; prints the outputs and checks the receipt.
    Infer(infer::InferArgs),
    /// Verify job receipts offline.
    Receipt(receipt::ReceiptArgs),
    /// Inspect jobs: state, executors, the optimistic window and auditor,
    /// the dispute's claims, game and verdicts.
    Job(job::JobArgs),
    /// Contest a pending optimistic result: compute the job here, post a
    /// bonded challenge, then play the dispute game to its end.
    Challenge(job::ChallengeArgs),
    /// Start a local network, publish a model, run a verified inference
    /// with 3 replicas and verify its receipt: the whole system, one
    /// command.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = &cli.ca
        && let Err(e) = net::trust_ca(path)
    {
        let _ = writeln!(std::io::stderr(), "error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result: Result<()> = match cli.command {
        Command::Exec(args) => exec::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Model(args) => model::run(args),
        Command::Node(args) => node::node(args),
        Command::Dev(args) => node::dev(args),
        Command::Infer(args) => infer::run(args),
        Command::Receipt(args) => receipt::run(args),
        Command::Job(args) => job::run(args),
        Command::Challenge(args) => job::challenge(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error chain, without a backtrace: these are user-facing.
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
