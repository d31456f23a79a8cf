//! `glassbox node` (one validator from a config file) and `glassbox dev`
//! (a whole local network in this process).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use glassbox_node::run::{self, DevOptions, NodeConfig};

/// `glassbox node` arguments.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// The node's TOML config: genesis, key, data_dir, p2p_listen,
    /// http_listen, worker_threads.
    #[arg(long)]
    config: PathBuf,
}

/// `glassbox dev` arguments.
#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// Validators to run (used when the data directory is new).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Where genesis, keys and chain data live; reused on the next start.
    #[arg(long, default_value = "target/glassbox-dev")]
    data_dir: PathBuf,
    /// HTTP API address of validator 0; validator i listens on port + i.
    #[arg(long, default_value = "127.0.0.1:8545")]
    http: SocketAddr,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Only write genesis, keys and per-validator `node.toml` files (to run
    /// each validator as its own `glassbox node` process), then exit.
    #[arg(long)]
    init_only: bool,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GLASSBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,glassbox_node=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs `glassbox node`.
pub(crate) fn node(args: NodeArgs) -> Result<()> {
    init_logging();
    let text = run::read_small(&args.config)?;
    let cfg: NodeConfig =
        toml::from_str(&text).with_context(|| format!("{}", args.config.display()))?;
    run::run_node(cfg)?;
    Ok(())
}

/// Runs `glassbox dev`.
pub(crate) fn dev(args: DevArgs) -> Result<()> {
    init_logging();
    let opts = DevOptions {
        validators: args.validators,
        data_dir: args.data_dir,
        http: args.http,
        worker_threads: args.threads,
    };
    let (genesis, keys, net) = run::prepare_dev(&opts)?;
    if args.init_only {
        #[allow(clippy::print_stdout)]
        {
            println!(
                "Wrote {} (genesis), validator-<i>/{{validator.json,node.toml}} and {} for {} validators.",
                net.genesis_path.display(),
                net.dev_key_path.display(),
                genesis.validators.len()
            );
        }
        return Ok(());
    }
    let summary = format!(
        "{} local network of {} validators in {}\n  genesis:   {}\n  dev key:   {} (funded account {})\n  HTTP API:  {}\nCtrl-C stops it; `glassbox dev --data-dir {}` resumes it.",
        if net.resumed {
            "Resumed the"
        } else {
            "Started a new"
        },
        genesis.validators.len(),
        opts.data_dir.display(),
        net.genesis_path.display(),
        net.dev_key_path.display(),
        net.dev_address,
        net.apis
            .iter()
            .map(|a| format!("http://{a}"))
            .collect::<Vec<_>>()
            .join(", "),
        opts.data_dir.display(),
    );
    run::run_dev(&opts, genesis, keys, move || {
        #[allow(clippy::print_stdout)]
        {
            println!("{summary}");
        }
    })?;
    Ok(())
}
