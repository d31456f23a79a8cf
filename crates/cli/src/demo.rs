//! `glassbox demo`: the whole system in one command, on embedded defaults.
//! Starts a fresh local network of 4 validators (each also a staked
//! executor), publishes a model that ships in the repository, runs a
//! verified inference with 3 replicas, checks its receipt offline against
//! the genesis alone, re-executes it locally, and says what happened.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use glassbox_api::wire::HealthStatus;
use glassbox_node::run::{self, DevOptions};

use crate::infer::{InferArgs, describe_outputs};

/// The model the demo publishes: the README's MNIST CNN, embedded so the
/// demo runs from any directory.
const MODEL: &[u8] = include_bytes!("../../../models/mnist-cnn.onnx");
const INPUT: &[u8] = include_bytes!("../../../models/mnist-cnn.input.json");

/// `glassbox demo` arguments.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where the demo network lives (an earlier network's directory is
    /// wiped first; any other non-empty directory is refused).
    #[arg(long, default_value = "target/glassbox-demo")]
    data_dir: PathBuf,
    /// Executors that must agree.
    #[arg(long, default_value_t = 3)]
    replicas: u8,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Give up after this long, in ms.
    #[arg(long, default_value_t = 180_000)]
    timeout_ms: u64,
}

pub(crate) fn run(args: DemoArgs) -> Result<()> {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(args.timeout_ms);
    let dir = &args.data_dir;
    run::wipe_network_dir(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let model_path = dir.join("mnist-cnn.onnx");
    let input_path = dir.join("mnist-cnn.input.json");
    std::fs::write(&model_path, MODEL)?;
    std::fs::write(&input_path, INPUT)?;

    let mut out = std::io::stdout();
    writeln!(out, "Glassbox demo: one verified inference, end to end.\n")?;

    // 1. The network.
    const VALIDATORS: u16 = 4;
    let opts = DevOptions {
        validators: VALIDATORS.into(),
        data_dir: dir.clone(),
        // Each validator listens on two ports: HTTP and p2p.
        http: SocketAddr::from(([127, 0, 0, 1], run::free_port_block(2 * VALIDATORS)?)),
        worker_threads: args.threads,
    };
    let (genesis, keys, net) = run::prepare_dev(&opts)?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let run_opts = opts.clone();
    std::thread::Builder::new()
        .name("demo-network".into())
        .spawn(move || {
            if let Err(e) = run::run_dev(&run_opts, genesis, keys, move || {
                let _ = ready_tx.send(());
            }) {
                let _ = writeln!(std::io::stderr(), "error: the demo network stopped: {e}");
                std::process::exit(1);
            }
        })?;
    ready_rx
        .recv_timeout(Duration::from_secs(60))
        .context("the demo network did not start within 60 s")?;
    let node = format!("http://{}", net.apis.first().context("no API address")?);
    let client = crate::net::client(&node, Duration::from_secs(10))?;
    loop {
        let health = client.health();
        if health.is_ok_and(|h| h.status == HealthStatus::Ok) {
            break;
        }
        if Instant::now() >= deadline {
            bail!("the demo network is not healthy: {}", node);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    writeln!(
        out,
        "1. Network  4 validators on this machine agree on one ledger through BFT consensus\n           \
         (Commonware simplex, threshold BLS). Each validator also runs a staked executor.\n           \
         Genesis: {}",
        net.genesis_path.display()
    )?;

    // 2. Publish.
    let published = crate::model::publish_file(
        &model_path,
        "demo/mnist-cnn",
        "1.0.0",
        "MNIST digit classifier (Glassbox demo)",
        Some("MIT"),
        &net.dev_key_path,
        &node,
    )?;
    let m = &published.manifest;
    writeln!(
        out,
        "2. Publish  {}@{} is model {}\n           \
         (the BLAKE3 of its {} bytes), with a manifest signed by its publisher and\n           \
         registered on the ledger at block {}; its bytes went to a node's blob store.",
        m.name, m.version, m.model_id, m.size_bytes, published.height
    )?;

    // 3. Infer.
    let receipt_path = dir.join("receipt.json");
    let infer_args = InferArgs::for_demo(
        format!("{}@{}", m.name, m.version),
        vec![input_path.display().to_string()],
        args.replicas,
        node.clone(),
        net.dev_key_path.clone(),
        deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64,
    );
    writeln!(
        out,
        "3. Infer    asked the network to run it with {} replicas:",
        args.replicas
    )?;
    let inferred = crate::infer::infer(&infer_args, |line| {
        let _ = writeln!(std::io::stdout(), "           · {line}");
    })?;
    let outputs = describe_outputs(&inferred.receipt, &m.outputs)?;
    writeln!(
        out,
        "           The ledger drew {} executors, stake-weighted, from the consensus randomness of the\n           \
         block after the request; each fetched the model (hash-checked), ran it on Glassbox's\n           \
         bit-reproducible runtime, committed to hash(outputs, trace root, salt), then revealed.\n           \
         All {} agree bit for bit: final at block {}, {} ms after submission.",
        inferred.executors.len(),
        inferred.executors.len(),
        inferred.final_height,
        inferred.elapsed.as_millis()
    )?;
    for line in outputs {
        writeln!(out, "           output {line}")?;
    }

    // 4. Verify.
    let text = serde_json::to_string_pretty(&inferred.receipt)?;
    std::fs::write(&receipt_path, text)?;
    let genesis = crate::receipt::read_genesis(&net.genesis_path)?;
    let verify_start = Instant::now();
    let verified = crate::receipt::verify(&inferred.receipt, &genesis)?;
    let verify_ms = verify_start.elapsed().as_secs_f64() * 1e3;
    let reexecuted = crate::receipt::reexecute(&verified, &model_path)?;
    writeln!(
        out,
        "4. Verify   receipt {} checked offline against the genesis only ({verify_ms:.1} ms):\n           \
         the validators' finality certificate for block {}, the job record's inclusion proof\n           \
         under that block's state root, and {} executors' signed commitments and reveals.\n           \
         Re-executed locally: same output hash {}… and trace root {}….",
        receipt_path.display(),
        verified.height,
        verified.job.slots.len(),
        &reexecuted.output_hash.to_hex()[..16],
        &reexecuted.trace_root.to_hex()[..16],
    )?;
    writeln!(
        out,
        "\nCheck it yourself:\n  glassbox receipt verify {} --genesis {} --reexecute --model {}\n\nDone in {:.1} s.",
        receipt_path.display(),
        net.genesis_path.display(),
        model_path.display(),
        start.elapsed().as_secs_f64()
    )?;
    out.flush()?;
    // The network runs on a background thread; the process ends here.
    std::process::exit(0)
}
