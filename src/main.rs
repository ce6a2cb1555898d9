//! The `fairwatt` command: one binary for the host agent, the simulator and
//! the tools around them. Each subcommand lives in its own module; this file
//! only parses arguments and dispatches.

mod admin;
mod agent;
mod attribute;
mod attribution_eval;
mod bench;
mod bench_billing;
mod bench_ingest;
mod bench_place;
mod bench_worker;
mod demo;
mod serve;
mod place;
mod place_gpu;
mod place_train;
mod simulate;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "fairwatt", version, about = "Meter energy on virtualized hosts, attribute it fairly to VMs, bill tenants")]
struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `fairwatt_collector=debug`.
    #[arg(long, global = true, env = "FAIRWATT_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host agent: sample energy and per-VM features every interval.
    Agent(Box<agent::AgentArgs>),
    /// Attribute a trace's measured energy to its VMs (ratio, linear or forest).
    Attribute(attribute::AttributeArgs),
    /// Attribution tools: `eval` scores every method against simulated ground truth.
    Attribution {
        #[command(subcommand)]
        command: AttributionCommand,
    },
    /// Run the billing API: ingest, ledger, registry, invoices, exports.
    Serve(serve::ServeArgs),
    /// Register tenants, hosts and VMs from a file, or print a scenario's registry.
    Registry {
        #[command(subcommand)]
        command: admin::RegistryCommand,
    },
    /// Grid carbon intensity: import a CSV.
    Carbon {
        #[command(subcommand)]
        command: admin::CarbonCommand,
    },
    /// Invoice runs.
    Invoices {
        #[command(subcommand)]
        command: admin::InvoicesCommand,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: serve::KeysCommand,
    },
    /// Write a simulated fleet's trace (with ground truth) to a directory.
    Simulate(simulate::SimulateArgs),
    /// VM placement: evaluate policies on real or synthetic traces.
    Place {
        #[command(subcommand)]
        command: place::PlaceCommand,
    },
    /// Run the main job on a simulated fleet and print what it measured.
    Demo(demo::DemoArgs),
    /// Measure the agent's and the simulator's speed.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum AttributionCommand {
    /// Run ratio, linear and forest on a grid of simulated hosts and score them against ground truth.
    Eval(attribution_eval::EvalArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo prints its own report; the server it runs should not interleave
    // its info lines with it unless asked to.
    let quiet_demo = matches!(cli.command, Command::Demo(_)) && std::env::var_os("FAIRWATT_LOG").is_none() && !std::env::args().any(|a| a.starts_with("--log"));
    let filter = if quiet_demo { "warn" } else { cli.log.as_str() };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Agent(a) => agent::run(*a),
        Command::Attribute(a) => attribute::run(a),
        Command::Attribution { command: AttributionCommand::Eval(a) } => attribution_eval::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Keys { command } => serve::keys(command),
        Command::Registry { command } => admin::registry(command),
        Command::Carbon { command } => admin::carbon(command),
        Command::Invoices { command } => admin::invoices(command),
        Command::Simulate(a) => simulate::run(a),
        Command::Place { command } => place::run(command),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
    }
}
