//! The command line: argument parsing, logging set-up, and the one-shot commands
//! (`clouds`, `servers`, `flavors`, `images`, `volumes`, `backups`), the simulator
//! (`sim`) and the demo. This is the edge where modules are wired together.

pub mod backup;
pub mod output;

use crate::cloud::Client;
use crate::config::clouds::CloudsFile;
use crate::config::paths::{self, ProcessEnv};
use crate::config::{CloudConfig, Settings};
use clap::{Args, Parser, Subcommand};
use output::{Format, Table};
use std::collections::HashMap;
use std::path::PathBuf;

/// The console's flags. A subcommand takes only the flags it uses, declared on the
/// subcommand; the ones it shares with the console may also come before its name
/// (`stackpilot --cloud prod servers`), and `Cli::parse_args` moves them to it.
#[derive(Debug, Parser)]
#[command(
    name = "stackpilot",
    version = VERSION,
    about = "Keyboard-driven operations console for OpenStack, with an autopilot inside"
)]
pub struct Cli {
    /// Cloud from clouds.yaml (default: OS_CLOUD, the OS_* variables, or the only cloud).
    #[arg(long)]
    pub cloud: Option<String>,
    /// Region (overrides region_name and OS_REGION_NAME).
    #[arg(long)]
    pub region: Option<String>,
    /// stackpilot settings file (default: $XDG_CONFIG_HOME/stackpilot/config.toml).
    #[arg(long, env = "STACKPILOT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Never change anything: actions are not even bound.
    #[arg(long)]
    pub read_only: bool,
    /// Start the embedded OpenStack simulator and open the console on it.
    #[arg(long)]
    pub demo: bool,
    /// Simulated seconds per real second in the demo.
    #[arg(long, default_value_t = 10.0, value_parser = parse_speed)]
    pub speed: f64,
    /// War-room screen: read-only, large tiles, turning to the next cloud or
    /// application every --kiosk-interval seconds with no key needed (q quits).
    #[arg(long)]
    pub kiosk: bool,
    /// Seconds between the kiosk's pages (1 to 3600).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600), requires = "kiosk")]
    pub kiosk_interval: u64,
    /// Mouse: a click selects a row, the wheel scrolls (also `[ui] mouse = true`).
    /// Off by default: while the console holds the mouse, selecting text to copy
    /// needs Shift in most terminals, over SSH too.
    #[arg(long)]
    pub mouse: bool,
    /// ASCII charts and sparklines (also chosen when the terminal is not UTF-8).
    #[arg(long)]
    pub ascii: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `stackpilot --version`: the crate's version and the commit it was built from
/// (see build.rs).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("STACKPILOT_COMMIT"), ")");

/// The cloud a subcommand talks to. `global` makes these flags valid after the
/// subcommand's own subcommands too (`backup list --cloud prod`).
#[derive(Debug, Clone, Default, Args)]
pub struct CloudFlags {
    /// Cloud from clouds.yaml (default: OS_CLOUD, the OS_* variables, or the only cloud).
    #[arg(long, global = true)]
    pub cloud: Option<String>,
    /// Region (overrides region_name and OS_REGION_NAME).
    #[arg(long, global = true)]
    pub region: Option<String>,
}

/// The settings file a subcommand reads.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigFlag {
    /// stackpilot settings file (default: $XDG_CONFIG_HOME/stackpilot/config.toml).
    #[arg(long, global = true, env = "STACKPILOT_CONFIG")]
    pub config: Option<PathBuf>,
}

/// For a subcommand that can change something.
#[derive(Debug, Clone, Default, Args)]
pub struct ReadOnlyFlag {
    /// Never change anything: refuse what would.
    #[arg(long, global = true)]
    pub read_only: bool,
}

/// The console's flags a subcommand takes, by argument id; what it declares itself.
struct Takes<'a> {
    ids: &'a [&'static str],
    cloud: Option<&'a mut Option<String>>,
    region: Option<&'a mut Option<String>>,
    config: Option<&'a mut Option<PathBuf>>,
    read_only: Option<&'a mut bool>,
}

impl Command {
    fn takes(&mut self) -> Takes<'_> {
        let none = Takes { ids: &[], cloud: None, region: None, config: None, read_only: None };
        match self {
            Command::Clouds(_) | Command::Sim(_) => none,
            Command::Servers(a)
            | Command::Flavors(a)
            | Command::Images(a)
            | Command::Volumes(a)
            | Command::Backups(a) => Takes {
                ids: &["cloud", "region", "config"],
                cloud: Some(&mut a.cloud.cloud),
                region: Some(&mut a.cloud.region),
                config: Some(&mut a.config.config),
                read_only: None,
            },
            Command::Engine(a) => Takes {
                ids: &["cloud", "config", "read_only"],
                cloud: Some(&mut a.cloud),
                config: Some(&mut a.config.config),
                read_only: Some(&mut a.read_only.read_only),
                ..none
            },
            Command::Policy(a) => match &mut a.command {
                PolicyCommand::Retire { cloud, read_only, .. } => Takes {
                    ids: &["cloud", "config", "read_only"],
                    cloud: Some(cloud),
                    config: Some(&mut a.config.config),
                    read_only: Some(read_only),
                    ..none
                },
                _ => Takes { ids: &["config"], config: Some(&mut a.config.config), ..none },
            },
            Command::Rollout(a) => Takes { ids: &["read_only"], read_only: Some(&mut a.read_only.read_only), ..none },
            Command::Backup(a) => Takes {
                ids: &["cloud", "region", "config", "read_only"],
                cloud: Some(&mut a.cloud.cloud),
                region: Some(&mut a.cloud.region),
                config: Some(&mut a.config.config),
                read_only: Some(&mut a.read_only.read_only),
            },
        }
    }
}

/// What the console and the engine inside it may change (see [`Cli::access`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// No key of the console changes the cloud.
    pub console_read_only: bool,
    /// The embedded engine may take the lease and act.
    pub engine_may_act: bool,
}

impl Cli {
    /// Whether the console and its embedded engine may change the cloud.
    /// `--read-only` makes both read-only. A kiosk's console is read-only
    /// (nobody at a wall screen changes the cloud); on a real cloud so is its
    /// engine, but under `--demo` the engine keeps acting, or the demo's
    /// applications would never be deployed.
    pub fn access(&self) -> Access {
        let console_read_only = self.read_only || self.kiosk;
        let engine_may_act = if self.demo { !self.read_only } else { !console_read_only };
        Access { console_read_only, engine_may_act }
    }

    /// Parse the process's arguments (clap's usage errors exit 2, as `parse` does).
    pub fn parse_args() -> Cli {
        Cli::try_parse_args_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parse `args`. A console flag given before a subcommand that does not take
    /// it is a usage error; one it takes is moved to it (the subcommand's own
    /// wins), and the fields of `Cli` then hold what the subcommand uses.
    pub fn try_parse_args_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let mut cmd = Cli::command();
        let matches = cmd.try_get_matches_from_mut(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        let Some(sub) = cli.command.as_mut() else { return Ok(cli) };
        let name = matches.subcommand_name().unwrap_or_default().to_string();
        let given = |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        let takes = sub.takes();
        let top_level: Vec<String> =
            cmd.get_arguments().map(|a| a.get_id().to_string()).filter(|id| id != "help" && id != "version").collect();
        if let Some(id) = top_level.iter().find(|id| given(id) && !takes.ids.contains(&id.as_str())) {
            let flag = format!("--{}", id.replace('_', "-"));
            return Err(cmd.error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("`{flag}` is not a flag of `stackpilot {name}` (see `stackpilot {name} --help`)"),
            ));
        }
        fn lift<T: Clone>(own: Option<&mut Option<T>>, top: &mut Option<T>) {
            match own {
                Some(own) => {
                    if own.is_none() {
                        own.clone_from(top);
                    }
                    top.clone_from(own);
                }
                None => *top = None,
            }
        }
        lift(takes.cloud, &mut cli.cloud);
        lift(takes.region, &mut cli.region);
        lift(takes.config, &mut cli.config);
        match takes.read_only {
            Some(own) => {
                *own |= cli.read_only;
                cli.read_only = *own;
            }
            None => cli.read_only = false,
        }
        cli.ascii = false;
        Ok(cli)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List configured clouds and where each came from.
    Clouds(OutputArgs),
    /// List servers (like `openstack server list`).
    Servers(ListArgs),
    /// List flavors.
    Flavors(ListArgs),
    /// List images.
    Images(ListArgs),
    /// List volumes.
    Volumes(ListArgs),
    /// List volume backups.
    Backups(ListArgs),
    /// Run the OpenStack simulator alone (point any OpenStack client at it).
    Sim(SimArgs),
    /// Run the policy engine without the console (logs to stderr, serves /metrics).
    Engine(EngineArgs),
    /// Check policy files, or print their JSON Schema.
    Policy(PolicyArgs),
    /// See and steer an application's rolling update (the acting engine applies
    /// a request on its next tick).
    Rollout(RolloutArgs),
    /// Volume backups of the backup policies: list, run now, prune, restore.
    Backup(backup::BackupArgs),
}

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    pub read_only: ReadOnlyFlag,
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Where the rollout stands: stable and target revisions, phase, failures, revisions.
    Status(RolloutTarget),
    /// Pause the rollout where it is.
    Pause(RolloutTarget),
    /// Resume a paused rollout (after a checkpoint or a failure).
    Resume(RolloutTarget),
    /// Give up on the rollout: back to the stable revision by the same algorithm.
    Abort(RolloutTarget),
    /// Run an earlier revision (until the policy changes).
    Undo {
        #[command(flatten)]
        target: RolloutTarget,
        /// The revision to go back to (see `rollout status`).
        #[arg(long)]
        revision: u32,
    },
}

#[derive(Debug, Args)]
pub struct RolloutTarget {
    pub app: String,
    /// The application's cloud (when several clouds run an app of that name).
    #[arg(long = "app-cloud")]
    pub cloud: Option<String>,
}

#[derive(Debug, Args)]
pub struct EngineArgs {
    /// A cloud to act on besides those the policies name.
    #[arg(long)]
    pub cloud: Option<String>,
    #[command(flatten)]
    pub config: ConfigFlag,
    #[command(flatten)]
    pub read_only: ReadOnlyFlag,
    /// Policies directory (default: [engine] policies_dir, else $XDG_CONFIG_HOME/stackpilot/policies).
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// off, dry-run or auto (default: [engine] mode).
    #[arg(long)]
    pub mode: Option<String>,
    /// Port of /healthz and /metrics on 127.0.0.1 (default: [engine] metrics_port; 0 picks one).
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// Time between ticks, e.g. 10s or 500ms (default: [engine] tick; 100ms to 1h).
    #[arg(long, value_parser = parse_tick)]
    pub tick: Option<crate::domain::Dur>,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub config: ConfigFlag,
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check policies (a file or a directory; default: the policies directory).
    /// Names are resolved on each policy's cloud when it can be reached.
    Check {
        path: Option<PathBuf>,
        /// Do not contact the clouds (syntax and bounds only).
        #[arg(long)]
        offline: bool,
    },
    /// Print the JSON Schema of policy files.
    Schema,
    /// Print the user data a member would boot with ([environment] and
    /// [application] rendered to #cloud-config, or deploy.user_data).
    Render {
        /// An application of the policies directory, or a policy file.
        target: String,
        /// The member's slot.
        #[arg(long, default_value_t = 0)]
        slot: u32,
    },
    /// Remove an application: the engine deletes its members (drained first).
    /// Refused while a policy file still defines it.
    Retire {
        app: String,
        /// The application's cloud (needed when several clouds run an app of that
        /// name, or when the engine no longer knows it).
        #[arg(long)]
        cloud: Option<String>,
        /// Refuse: retiring removes servers.
        #[arg(long)]
        read_only: bool,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub cloud: CloudFlags,
    #[command(flatten)]
    pub config: ConfigFlag,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
    /// World file (default: the built-in world; `demo` for the demo world).
    #[arg(long)]
    pub world: Option<String>,
    /// Persist the world in this file across restarts.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Seed of the simulator's random choices.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Token lifetime in real seconds.
    #[arg(long)]
    pub token_lifetime: Option<u64>,
    /// Inject 5xx answers: SERVICE=RATE, e.g. compute=0.1 (repeatable; `all` for every service).
    #[arg(long = "error-rate", value_parser = parse_kv)]
    pub error_rate: Vec<(String, f64)>,
    /// Add latency in milliseconds: SERVICE=MS (repeatable).
    #[arg(long = "latency", value_parser = parse_kv)]
    pub latency: Vec<(String, f64)>,
    /// The secret of the control API (`/_sim/`), sent as header X-Sim-Token;
    /// a random one is made and printed when not given.
    #[arg(long, env = "STACKPILOT_SIM_TOKEN", hide_env_values = true)]
    pub control_token: Option<String>,
}

fn parse_tick(s: &str) -> Result<crate::domain::Dur, String> {
    let d = crate::domain::time::parse_duration(s)
        .ok_or_else(|| format!("`{s}` is not a duration: write e.g. 10s, 500ms or 1m"))?;
    crate::config::settings::TICK_RANGE.check(d).map_err(|e| e.to_string())?;
    Ok(crate::domain::Dur(d))
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 100_000.0 => Ok(v),
        _ => Err(format!("`{s}` is not a speed: simulated seconds per real second, above 0 and at most 100000")),
    }
}

fn parse_kv(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected SERVICE=VALUE, got `{s}`"))?;
    let v: f64 = v.parse().map_err(|_| format!("`{v}` is not a number"))?;
    Ok((k.to_string(), v))
}

/// An error for the user, said in one sentence with what to do (exit code 1;
/// clap's usage errors exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

/// Commands report through `eyre` (`main` prints the error and its causes).
pub type CliResult<T> = eyre::Result<T>;

/// An error for the user with this message.
pub fn cli_err(message: impl Into<String>) -> eyre::Report {
    CliError(message.into()).into()
}

/// Print to stdout; a closed pipe (`| head`) ends the command quietly (see `main`).
pub fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// A line on stderr. A stderr that is gone (a closed terminal, a closed pipe)
/// loses the line, never the process (`eprintln!` would panic).
pub fn say(text: impl std::fmt::Display) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    // Nobody is left to read it: there is nothing else to do with the failure.
    writeln!(err, "{text}").ok();
}

/// Whether an error (anywhere in its chain) is a closed output pipe.
pub fn is_broken_pipe(e: &eyre::Report) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// What is logged: `RUST_LOG` as a list of `target=level` and a bare default
/// level (`stackpilot=debug,info`); unset or unreadable, stackpilot's own info
/// and everything else's warnings.
pub fn log_filter(spec: Option<&str>) -> tracing_subscriber::filter::Targets {
    let default = || "stackpilot=info,warn".parse().unwrap_or_default();
    match spec.map(str::trim) {
        Some(s) if !s.is_empty() => s.parse().unwrap_or_else(|_| default()),
        _ => default(),
    }
}

/// Logs go to a file in the state directory, never to a terminal the console owns.
pub fn init_logging(to_stderr: bool) -> Option<PathBuf> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let logs = tracing_subscriber::registry().with(filter);
    if to_stderr {
        use std::io::IsTerminal;
        // Colour only for a person at a terminal, never into a journal or a file.
        let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let r = logs.with(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr)).try_init();
        if let Err(e) = r {
            say(format_args!("warning: logging was already set up: {e}"));
        }
        return None;
    }
    // The log is the user's alone (0600 in a 0700 directory), like the store.
    let dir = paths::state_dir(&ProcessEnv);
    let path = dir.join("stackpilot.log");
    let file = match open_private_log(&dir, &path) {
        Ok(f) => f,
        Err(e) => {
            say(format_args!("warning: no log file ({}): {e}", path.display()));
            return None;
        }
    };
    let r = logs
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(std::sync::Mutex::new(file)))
        .try_init();
    if let Err(e) = r {
        say(format_args!("warning: logging was already set up: {e}"));
    }
    Some(path)
}

/// Open the log file for appending, private to the user.
fn open_private_log(dir: &std::path::Path, path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    paths::private_dir(dir)?;
    let f = o.open(path)?;
    paths::private_file(path)?;
    Ok(f)
}

pub fn load_settings(cli: &Cli) -> CliResult<Settings> {
    let path = cli.config.clone().unwrap_or_else(|| paths::config_file(&ProcessEnv));
    Ok(Settings::load(&path)?)
}

/// The cloud this invocation talks to.
pub fn selected_cloud(cli: &Cli) -> CliResult<CloudConfig> {
    let cf = CloudsFile::discover(&ProcessEnv)?;
    Ok(cf.resolve_selected(cli.cloud.as_deref(), cli.region.as_deref())?)
}

/// The client of the selected cloud, with the request timeout of config.toml.
pub fn client(cli: &Cli) -> CliResult<Client> {
    let timeout = load_settings(cli)?.refresh.timeout.0;
    Ok(Client::with_timeout(selected_cloud(cli)?, timeout)?)
}

pub async fn run(cli: Cli) -> CliResult<()> {
    if cli.demo {
        return demo(&cli).await;
    }
    match &cli.command {
        None => {
            let settings = load_settings(&cli)?;
            let cf = CloudsFile::discover(&ProcessEnv)?;
            let main = cf.resolve_selected(cli.cloud.as_deref(), cli.region.as_deref())?;
            let mut clients = vec![Client::with_timeout(main.clone(), settings.refresh.timeout.0)?];
            for extra in &settings.clouds {
                if extra != &main.name {
                    clients.push(Client::with_timeout(cf.resolve(extra)?, settings.refresh.timeout.0)?);
                }
            }
            console(&cli, &settings, clients, None).await
        }
        Some(Command::Clouds(a)) => clouds(a.output),
        Some(Command::Servers(a)) => servers(&client(&cli)?, a.output).await,
        Some(Command::Flavors(a)) => flavors(&client(&cli)?, a.output).await,
        Some(Command::Images(a)) => images(&client(&cli)?, a.output).await,
        Some(Command::Volumes(a)) => volumes(&client(&cli)?, a.output).await,
        Some(Command::Backups(a)) => backups(&client(&cli)?, a.output).await,
        Some(Command::Sim(a)) => sim(a).await,
        Some(Command::Engine(a)) => engine(&cli, a).await,
        Some(Command::Policy(a)) => match &a.command {
            PolicyCommand::Schema => Ok(emit(crate::policy::schema::TEXT)?),
            PolicyCommand::Check { path, offline } => policy_check(&cli, path.clone(), *offline).await,
            PolicyCommand::Render { target, slot } => policy_render(&cli, target, *slot),
            PolicyCommand::Retire { app, cloud, .. } => policy_retire(&cli, app, cloud.as_deref()),
        },
        Some(Command::Rollout(a)) => rollout(&cli, &a.command),
        Some(Command::Backup(a)) => backup::run(&cli, a).await,
    }
}

fn clouds(f: Format) -> CliResult<()> {
    let cf = CloudsFile::discover(&ProcessEnv)?;
    let mut t = Table::new(&["Name", "Auth URL", "Region", "Auth Type", "Source", "Problem"]);
    for name in cf.names() {
        match cf.resolve(&name) {
            Ok(c) => t.push(vec![
                name,
                c.auth_url.clone(),
                c.region.clone().unwrap_or_default(),
                c.auth.kind().into(),
                c.source.to_string(),
                String::new(),
            ]),
            Err(e) => t.push(vec![
                name,
                String::new(),
                String::new(),
                String::new(),
                cf.clouds_path().map(|p| p.display().to_string()).unwrap_or_default(),
                e.to_string(),
            ]),
        }
    }
    t.print(f)?;
    if cf.names().is_empty() {
        say("no clouds configured: create clouds.yaml, set OS_* variables, or try `stackpilot --demo`");
    }
    Ok(())
}

pub async fn server_table(c: &Client) -> CliResult<Table> {
    let q = Default::default();
    let (compute, image) = (c.compute(), c.image());
    let (servers, images) = tokio::join!(compute.list_servers(&q), image.list_images());
    let servers = servers?;
    let image_names: HashMap<String, String> =
        images.unwrap_or_default().into_iter().map(|i| (i.id, i.name.unwrap_or_default())).collect();
    let mut t = Table::new(&["ID", "Name", "Status", "Networks", "Image", "Flavor"]);
    for s in servers {
        let nets = {
            let mut by: Vec<(String, Vec<String>)> = Vec::new();
            for a in &s.addresses {
                match by.iter_mut().find(|(n, _)| n == &a.network) {
                    Some((_, v)) => v.push(a.addr.clone()),
                    None => by.push((a.network.clone(), vec![a.addr.clone()])),
                }
            }
            by.into_iter().map(|(n, v)| format!("{n}={}", v.join(", "))).collect::<Vec<_>>().join("; ")
        };
        let image = match &s.image_id {
            None => "N/A (booted from volume)".to_string(),
            Some(i) => image_names.get(i).cloned().unwrap_or_else(|| i.clone()),
        };
        t.push(vec![
            s.id.clone(),
            s.display_name().to_string(),
            s.status.to_string(),
            nets,
            image,
            s.flavor.label().to_string(),
        ]);
    }
    Ok(t)
}

async fn servers(c: &Client, f: Format) -> CliResult<()> {
    server_table(c).await?.print(f)?;
    Ok(())
}

async fn flavors(c: &Client, f: Format) -> CliResult<()> {
    let mut t = Table::new(&["ID", "Name", "RAM", "Disk", "Ephemeral", "VCPUs", "Is Public"]);
    for fl in c.compute().list_flavors().await? {
        t.push(vec![
            fl.id,
            fl.name,
            fl.ram_mb.to_string(),
            fl.disk_gb.to_string(),
            fl.ephemeral_gb.to_string(),
            fl.vcpus.to_string(),
            if fl.is_public { "True" } else { "False" }.into(),
        ]);
    }
    t.print(f)?;
    Ok(())
}

async fn images(c: &Client, f: Format) -> CliResult<()> {
    let mut t = Table::new(&["ID", "Name", "Status"]);
    for i in c.image().list_images().await? {
        t.push(vec![i.id, i.name.unwrap_or_default(), i.status]);
    }
    t.print(f)?;
    Ok(())
}

async fn volumes(c: &Client, f: Format) -> CliResult<()> {
    let mut t = Table::new(&["ID", "Name", "Status", "Size", "Attached to"]);
    for v in c.volume().list_volumes().await? {
        let att = v
            .attachments
            .iter()
            .map(|a| format!("Attached to {} on {}", a.server_id, a.device.clone().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ");
        t.push(vec![v.id.clone(), v.name.clone().unwrap_or_default(), v.status.clone(), v.size_gb.to_string(), att]);
    }
    t.print(f)?;
    Ok(())
}

async fn backups(c: &Client, f: Format) -> CliResult<()> {
    let mut t = Table::new(&["ID", "Name", "Description", "Status", "Size", "Incremental", "Volume"]);
    for b in c.volume().list_backups().await? {
        t.push(vec![
            b.id.clone(),
            b.name.clone().unwrap_or_default(),
            b.description.clone().unwrap_or_default(),
            b.status.clone(),
            b.size_gb.to_string(),
            if b.is_incremental { "True" } else { "False" }.into(),
            b.volume_id.clone(),
        ]);
    }
    t.print(f)?;
    Ok(())
}

fn sim_config(a: &SimArgs) -> CliResult<crate::sim::SimConfig> {
    use crate::sim::{http::ServiceFaults, SimConfig, WorldSource};
    let world = match a.world.as_deref() {
        None => WorldSource::Default,
        Some("demo") => WorldSource::Demo,
        Some(p) => WorldSource::File(PathBuf::from(p)),
    };
    let mut faults: std::collections::BTreeMap<String, ServiceFaults> = Default::default();
    for (svc, rate) in &a.error_rate {
        if !(0.0..=1.0).contains(rate) {
            return Err(cli_err(format!("--error-rate {svc}={rate}: the rate is a fraction between 0 and 1")));
        }
        faults.entry(svc.clone()).or_default().error_rate = *rate;
    }
    for (svc, ms) in &a.latency {
        faults.entry(svc.clone()).or_default().latency_ms = *ms as u64;
    }
    Ok(SimConfig {
        port: a.port,
        speed: a.speed,
        world,
        state: a.state.clone(),
        seed: a.seed,
        faults,
        token_lifetime_secs: a.token_lifetime,
        boot_secs: None,
        control_token: a.control_token.clone(),
        incidents: true,
    })
}

async fn sim(a: &SimArgs) -> CliResult<()> {
    let cfg = sim_config(a)?;
    let h = crate::sim::start(cfg).await?;
    emit(&format!(
        "# stackpilot simulator on {} (speed {}x). Add this to clouds.yaml:\n{}# then: OS_CLOUD=sim openstack server list   |   stackpilot --cloud sim servers\n# control API: curl -H 'X-Sim-Token: {}' {}/_sim/state   (Ctrl-C stops)\n",
        h.base_url,
        a.speed,
        crate::sim::clouds_yaml(&h.base_url, "sim", "admin", "secret", "admin"),
        h.control_token,
        h.base_url
    ))?;
    wait_for_signal().await;
    h.shutdown().await;
    Ok(())
}

pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for {name}: {e}; it will end stackpilot without a clean stop");
                None
            }
        };
        let mut term = listen(SignalKind::terminate(), "SIGTERM");
        let mut hup = listen(SignalKind::hangup(), "SIGHUP");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
            _ = async { match hup.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
        }
    }
    #[cfg(not(unix))]
    {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    }
}

/// The cloud definition of the demo (user `demo` on the simulator).
pub fn demo_cloud(base_url: &str) -> CloudConfig {
    demo_cloud_named(base_url, "demo", "RegionOne")
}

/// A demo cloud of the given name and region (user `demo` on the simulator).
pub fn demo_cloud_named(base_url: &str, name: &str, region: &str) -> CloudConfig {
    use crate::config::clouds::{AuthMethod, CloudSource, DomainRef, Interface, Scope, UserRef};
    use crate::config::Secret;
    CloudConfig {
        name: name.into(),
        source: CloudSource::Env,
        auth_url: format!("{base_url}/identity/v3"),
        auth: AuthMethod::Password {
            user: UserRef {
                id: None,
                name: Some("demo".into()),
                domain: DomainRef { id: Some("default".into()), name: None },
            },
            password: Secret::new("demo"),
            scope: Scope::Project {
                id: None,
                name: Some("demo".into()),
                domain: DomainRef { id: Some("default".into()), name: None },
            },
        },
        region: Some(region.into()),
        regions: vec![],
        interface: Interface::Public,
        verify: true,
        cacert: None,
        client_cert: None,
        client_key: None,
        endpoint_overrides: Default::default(),
    }
}

/// The terminal does not speak UTF-8 (charts fall back to ASCII).
fn ascii_terminal() -> bool {
    let loc = ["LC_ALL", "LC_CTYPE", "LANG"].iter().find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    match loc {
        Some(l) => {
            let l = l.to_ascii_lowercase();
            !(l.contains("utf-8") || l.contains("utf8"))
        }
        None => false,
    }
}

/// The policies directory: flag, else `[engine] policies_dir`, else the XDG default.
pub fn policies_dir(flag: Option<PathBuf>, settings: &Settings) -> PathBuf {
    flag.or_else(|| settings.engine.policies_dir.clone()).unwrap_or_else(|| paths::policies_dir(&ProcessEnv))
}

pub(crate) fn open_store() -> CliResult<crate::store::Store> {
    let path = paths::state_dir(&ProcessEnv).join("stackpilot.db");
    Ok(crate::store::Store::open(&path)?)
}

async fn console(cli: &Cli, settings: &Settings, clients: Vec<Client>, greeting: Option<String>) -> CliResult<()> {
    let dir = policies_dir(None, settings);
    console_with(cli, settings, clients, greeting, dir, paths::state_dir(&ProcessEnv)).await
}

async fn console_with(
    cli: &Cli,
    settings: &Settings,
    clients: Vec<Client>,
    greeting: Option<String>,
    policies: PathBuf,
    state_dir: PathBuf,
) -> CliResult<()> {
    use crate::config::settings::EngineMode;
    let file = settings.source.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "config.toml".into());
    let access = cli.access();
    let read_only = access.console_read_only;
    let keymap = crate::tui::keymap::Keymap::new(&settings.keys, &settings.key_lines, &file, read_only)?;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let inventory =
        crate::inventory::Inventory::start(clients.clone(), crate::inventory::InventoryConfig::from_settings(settings));
    let store = crate::store::Store::open(&state_dir.join("stackpilot.db"))?;
    // The engine runs inside the console unless it is off; a read-only console's
    // engine never takes the lease: it shows what the acting engine plans and
    // does (the demo's kiosk is the exception, see `Cli::access`).
    let mut ecfg = crate::engine::EngineConfig::for_settings(settings, policies.clone(), state_dir);
    ecfg.may_act = access.engine_may_act;
    let engine = (ecfg.mode != EngineMode::Off).then(|| {
        crate::engine::Engine::start(
            ecfg,
            clients.clone(),
            inventory.subscribe(),
            inventory.link(),
            store.clone(),
            std::sync::Arc::new(crate::engine::metrics::EngineMetrics::default()),
        )
    });
    let console = crate::tui::Console {
        clients,
        keymap,
        theme: crate::tui::theme::Theme::new(settings.ui.theme, no_color),
        ascii: cli.ascii || settings.ui.ascii || ascii_terminal(),
        read_only,
        max_fps: settings.ui.max_fps,
        stale_after: settings.ui.stale_after,
        protected_clouds: settings.protected_clouds.clone(),
        greeting,
        kiosk: cli.kiosk.then_some(cli.kiosk_interval),
        mouse: cli.mouse || settings.ui.mouse,
        engine,
        store: Some(store),
        policies_dir: Some(policies),
        alertmanagers: settings.alerting.alertmanager.iter().map(|a| a.url.clone()).collect(),
    };
    match crate::tui::run(console, inventory).await {
        // The window was closed: nobody is left to tell.
        Err(crate::tui::ConsoleError::TerminalGone(e)) => {
            tracing::info!("the console's terminal went away: {e}");
            Ok(())
        }
        r => Ok(r?),
    }
}

async fn demo(cli: &Cli) -> CliResult<()> {
    let mut settings = load_settings(cli)?;
    let state = paths::state_dir(&ProcessEnv).join("demo");
    // The demo's policies live in its state directory, where the operator may edit them.
    let pdir = state.join("policies");
    std::fs::create_dir_all(&pdir)?;
    for (name, text) in DEMO_POLICIES {
        let p = pdir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if !p.exists() {
            std::fs::write(&p, text)?;
        }
    }
    if settings.engine.mode == crate::config::settings::EngineMode::Off {
        settings.engine.mode = crate::config::settings::EngineMode::Auto;
    }
    settings.engine.tick = crate::config::settings::Dur(std::time::Duration::from_secs(3));
    settings.refresh.servers = crate::config::settings::Dur(std::time::Duration::from_secs(2));
    // A new member's CPU needs two samples (a simulated minute apart: six seconds
    // at the demo's speed; the first is taken as it is spawned). Its first read
    // comes as it turns ACTIVE; reading every 2 s after that shows its rate on
    // the tiles soon after the second sample.
    settings.refresh.metrics = crate::config::settings::Dur(std::time::Duration::from_secs(2));
    // Two clouds, each with its own Keystone: `demo` (RegionOne) and `demo-east` (RegionTwo).
    // STACKPILOT_SIM_TOKEN lets an operator drive the demo clouds' control API
    // (e.g. take `demo-east` down to watch a failover); without it the token is random.
    let token = std::env::var("STACKPILOT_SIM_TOKEN").ok().filter(|t| !t.trim().is_empty());
    let sim = |world, file: &str| crate::sim::SimConfig {
        speed: cli.speed,
        world,
        state: Some(state.join(file)),
        control_token: token.clone(),
        ..Default::default()
    };
    let h = crate::sim::start(sim(crate::sim::WorldSource::Demo, "world.json")).await?;
    let east = match crate::sim::start(sim(crate::sim::WorldSource::DemoEast, "world-east.json")).await {
        Ok(e) => e,
        Err(e) => {
            h.shutdown().await;
            return Err(e.into());
        }
    };
    let timeout = settings.refresh.timeout.0;
    let clients = vec![
        Client::with_timeout(demo_cloud(&h.base_url), timeout)?,
        Client::with_timeout(demo_cloud_named(&east.base_url, "demo-east", "RegionTwo"), timeout)?,
    ];
    let greeting = format!(
        "demo: simulated clouds demo at {}/identity/v3 and demo-east at {}/identity/v3 (user, password and project: demo; {}x speed) · state in {}",
        h.base_url,
        east.base_url,
        cli.speed,
        state.display()
    );
    let r = console_with(cli, &settings, clients, Some(greeting), pdir, state).await;
    h.shutdown().await;
    east.shutdown().await;
    r
}

/// The demo's application policies, and a standalone backup policy.
pub const DEMO_POLICIES: [(&str, &str); 5] = [
    ("web.toml", include_str!("../../assets/demo/policies/web.toml")),
    ("api.toml", include_str!("../../assets/demo/policies/api.toml")),
    ("worker.toml", include_str!("../../assets/demo/policies/worker.toml")),
    ("reports.toml", include_str!("../../assets/demo/policies/reports.toml")),
    ("backups/tagged-volumes.toml", include_str!("../../assets/demo/policies/backups/tagged-volumes.toml")),
];

fn policy_render(cli: &Cli, target: &str, slot: u32) -> CliResult<()> {
    let path = PathBuf::from(target);
    let policy = if path.is_file() {
        let text = crate::policy::read_policy_file(&path).map_err(|e| cli_err(format!("{target}: {e}")))?;
        crate::policy::parse(&text, &path)
            .map_err(|e| cli_err(e.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")))?
    } else {
        let settings = load_settings(cli)?;
        let dir = policies_dir(None, &settings);
        let (ok, _) = crate::policy::load_dir(&dir);
        ok.into_iter()
            .find(|p| p.name() == target)
            .ok_or_else(|| cli_err(format!("no valid policy of an application `{target}` in {}", dir.display())))?
    };
    // The revision in force, when this host's engine recorded one.
    let revision = open_store()
        .ok()
        .and_then(|s| s.revisions(&policy.id).ok())
        .and_then(|r| r.iter().map(|x| x.revision).max())
        .unwrap_or(1);
    match policy.spec.effective_user_data() {
        Some(t) => Ok(emit(&crate::policy::render_user_data(&t, policy.name(), revision, slot, policy.cloud()))?),
        None => {
            // Nothing on stdout: scripts see an empty document.
            say(format_args!(
                "{}: no user data (no deploy.user_data, no [environment] or [application])",
                policy.name()
            ));
            Ok(())
        }
    }
}

fn rollout(cli: &Cli, c: &RolloutCommand) -> CliResult<()> {
    use crate::engine::rollout::Command as C;
    let store = open_store()?;
    let (t, cmd) = match c {
        RolloutCommand::Status(t) => (t, None),
        RolloutCommand::Pause(t) => (t, Some(C::Pause)),
        RolloutCommand::Resume(t) => (t, Some(C::Resume)),
        RolloutCommand::Abort(t) => (t, Some(C::Abort)),
        RolloutCommand::Undo { target, revision } => (target, Some(C::Undo { revision: *revision })),
    };
    let k = crate::engine::operate::find(&store, &t.app, t.cloud.as_deref())?;
    let text = match cmd {
        None => crate::engine::operate::status(&store, &k)?,
        Some(cmd) => {
            let actor = crate::domain::event::operator_actor();
            crate::engine::operate::request(&store, &k, cmd, &actor, !cli.read_only, chrono::Utc::now())? + "\n"
        }
    };
    Ok(emit(&text)?)
}

fn policy_retire(cli: &Cli, app: &str, cloud: Option<&str>) -> CliResult<()> {
    if cli.read_only {
        return Err(cli_err(format!("read-only: `{app}` is not retired (retiring removes its servers)")));
    }
    let settings = load_settings(cli)?;
    let dir = policies_dir(None, &settings);
    let store = open_store()?;
    let actor = crate::domain::event::operator_actor();
    let k = crate::engine::policies::retire(&store, &dir, app, cloud, &actor, chrono::Utc::now())?;
    emit(&format!(
        "{} on {} is retired: the engine that holds {} removes its members (drained first); the console's Events view shows each step\n",
        k.app, k.cloud, k.cloud
    ))?;
    Ok(())
}

async fn policy_check(cli: &Cli, path: Option<PathBuf>, offline: bool) -> CliResult<()> {
    let settings = load_settings(cli)?;
    let path = path.unwrap_or_else(|| policies_dir(None, &settings));
    if !path.exists() {
        return Err(cli_err(format!("{}: no such file or directory", path.display())));
    }
    let (policies, mut errors) = crate::policy::load_dir(&path);
    let mut resolved = 0;
    if !offline {
        let cf = CloudsFile::discover(&ProcessEnv);
        if let Err(e) = &cf {
            say(format_args!("warning: {e}; the policies are checked offline"));
        }
        for p in &policies {
            let cloud = match cf.as_ref().map(|cf| cf.resolve(p.cloud())) {
                Ok(Ok(cloud)) => cloud,
                Ok(Err(e)) => {
                    emit(&format!("{}: cloud `{}`: {e}; checked offline\n", p.file.display(), p.cloud()))?;
                    continue;
                }
                Err(_) => {
                    emit(&format!(
                        "{}: cloud `{}`: no clouds.yaml read; checked offline\n",
                        p.file.display(),
                        p.cloud()
                    ))?;
                    continue;
                }
            };
            let client = Client::new(cloud)?;
            let c = client.compute();
            let (n, i, f, k, g) =
                (client.network(), client.image(), c.list_flavors(), c.list_keypairs(), client.network());
            let cat = crate::policy::CloudCatalog {
                images: i.list_images().await?,
                flavors: f.await?,
                networks: n.list_networks().await?,
                keypairs: k.await?,
                security_groups: g.list_security_groups().await?,
            };
            // Only for line numbers in messages: without it they name the file alone.
            let text = crate::policy::read_policy_file(&p.file).ok();
            match crate::policy::resolve(p, &cat, text.as_deref()) {
                Ok(spec) => {
                    resolved += 1;
                    emit(&format!(
                        "{}: ok (image {} {}, flavor {}, spec {})\n",
                        p.file.display(),
                        spec.image_name,
                        spec.image_id,
                        spec.flavor_name,
                        crate::domain::text::prefix(&spec.hash(), 12)
                    ))?;
                }
                Err(e) => errors.extend(e),
            }
        }
    }
    for e in &errors {
        say(e);
    }
    if errors.is_empty() {
        let how = if offline { " (offline)".to_string() } else { format!(" ({resolved} checked against their cloud)") };
        emit(&format!("{} polic{} ok{how}\n", policies.len(), if policies.len() == 1 { "y" } else { "ies" }))?;
        Ok(())
    } else {
        Err(cli_err(format!(
            "{} problem{} in {}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            path.display()
        )))
    }
}

/// The clouds an engine serves: those its policy files name, those the store
/// knows policies of (their apps may be invalid, missing or retired), `--cloud`.
fn engine_clouds(cli: &Cli, dir: &std::path::Path, store: &crate::store::Store) -> CliResult<Vec<String>> {
    let (policies, errors) = crate::policy::load_dir(dir);
    for e in &errors {
        tracing::error!("{e}");
    }
    // Every location of an app placed on several clouds.
    let mut names: Vec<String> = policies.iter().flat_map(|p| p.locations()).collect();
    let (backups, errors) = crate::engine::backup_run::read_standalone(dir);
    for e in &errors {
        tracing::error!("{e}");
    }
    names.extend(backups.into_iter().map(|p| p.cloud));
    names.extend(store.known_policies()?.into_iter().map(|k| k.cloud));
    names.extend(cli.cloud.clone());
    names.sort();
    names.dedup();
    Ok(names)
}

/// Serve `/metrics` and `/healthz`. A port given with `--metrics-port` must be
/// free; the configured one moves to the next free port when another engine
/// holds it (both are named in the log).
async fn serve_metrics(
    metrics: std::sync::Arc<crate::engine::metrics::EngineMetrics>,
    port: u16,
    explicit: bool,
    state_dir: &std::path::Path,
) -> CliResult<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    use crate::engine::metrics::{port_holder, record_port, serve};
    let tries: Vec<u16> =
        if explicit || port == 0 { vec![port] } else { (0..10).filter_map(|i| port.checked_add(i)).collect() };
    let mut last = None;
    for p in tries {
        match serve(metrics.clone(), p).await {
            Ok((addr, h)) => {
                if p != port {
                    tracing::warn!(
                        "127.0.0.1:{port} is in use by {}: serving /metrics and /healthz on {addr} instead",
                        port_holder(state_dir, port)
                    );
                }
                record_port(state_dir, addr.port(), &crate::engine::runner::engine_id());
                return Ok((addr, h));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(p),
            Err(e) => return Err(cli_err(format!("cannot serve /metrics on 127.0.0.1:{p}: {e}"))),
        }
    }
    let p = last.unwrap_or(port);
    Err(cli_err(format!(
        "127.0.0.1:{p} is in use by {}: choose another port with --metrics-port (0 picks a free one)",
        port_holder(state_dir, p)
    )))
}

/// Log what changed since the last status: plan lines, policy problems, holds.
#[derive(Default)]
struct ChangeLog {
    plans: std::collections::BTreeMap<String, Vec<String>>,
    problems: std::collections::BTreeSet<String>,
}

impl ChangeLog {
    /// The plan lines of `s` not in the app's plan logged last, as (cloud, app,
    /// line): a step that stays in the plan while others come and go (an
    /// adoption waiting for its server) is said once, not at every change.
    fn new_plan_lines(&mut self, s: &crate::engine::EngineStatus) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for p in &s.plans {
            let key = format!("{}/{}", p.cloud, p.app);
            let before = self.plans.get(&key);
            if before == Some(&p.lines) {
                continue;
            }
            for l in &p.lines {
                if before.is_none_or(|b| !b.contains(l)) {
                    out.push((p.cloud.clone(), p.app.clone(), l.clone()));
                }
            }
            self.plans.insert(key, p.lines.clone());
        }
        out
    }

    fn log(&mut self, s: &crate::engine::EngineStatus) {
        if s.observer {
            return;
        }
        for (cloud, app, l) in self.new_plan_lines(s) {
            tracing::info!(cloud = %cloud, app = %app, "plan: {l}");
        }
        let now: std::collections::BTreeSet<String> = s
            .policy_errors
            .iter()
            .cloned()
            .chain(s.holds.iter().map(|(c, h)| format!("{c}: holding: {h}")))
            .chain(
                s.policies
                    .iter()
                    .filter(|p| p.state != "ok")
                    .map(|p| format!("{} {}: {}", p.app, p.state, p.problems.join("; "))),
            )
            .collect();
        for p in now.difference(&self.problems) {
            tracing::warn!("{p}");
        }
        for p in self.problems.difference(&now) {
            tracing::info!("resolved: {p}");
        }
        self.problems = now;
    }
}

async fn engine(cli: &Cli, a: &EngineArgs) -> CliResult<()> {
    let mut settings = load_settings(cli)?;
    if let Some(m) = &a.mode {
        settings.engine.mode = crate::config::settings::EngineMode::parse(m)
            .ok_or_else(|| cli_err(format!("--mode {m}: use off, dry-run or auto")))?;
    }
    if let Some(t) = a.tick {
        settings.engine.tick = t;
    }
    let dir = policies_dir(a.policies.clone(), &settings);
    let state_dir = paths::state_dir(&ProcessEnv);
    let store = open_store()?;
    let names = engine_clouds(cli, &dir, &store)?;
    if names.is_empty() {
        return Err(cli_err(format!(
            "no cloud to serve: no policy in {} names one and none is known from earlier runs; write a policy (see `stackpilot policy schema`) or give --cloud",
            dir.display()
        )));
    }
    let cf = CloudsFile::discover(&ProcessEnv)?;
    let mut clients = Vec::new();
    for n in &names {
        clients.push(Client::with_timeout(cf.resolve(n)?, settings.refresh.timeout.0)?);
    }
    let metrics = std::sync::Arc::new(crate::engine::metrics::EngineMetrics::default());
    let port = a.metrics_port.unwrap_or(settings.engine.metrics_port);
    let (addr, _srv) = serve_metrics(metrics.clone(), port, a.metrics_port.is_some(), &state_dir).await?;
    tracing::info!(
        "engine {}: mode {}, policies {}, clouds [{}], metrics on http://{addr}/metrics",
        crate::engine::runner::engine_id(),
        settings.engine.mode.as_str(),
        dir.display(),
        names.join(", ")
    );
    let inventory = crate::inventory::Inventory::start(
        clients.clone(),
        crate::inventory::InventoryConfig::from_settings(&settings),
    );
    let mut ecfg = crate::engine::EngineConfig::for_settings(&settings, dir, state_dir);
    // A read-only engine never takes a lease: it shows what the acting one does.
    ecfg.may_act = !cli.read_only;
    let handle = crate::engine::Engine::start(ecfg, clients, inventory.subscribe(), inventory.link(), store, metrics);
    let mut status = handle.status.clone();
    let live = inventory.liveness().clone();
    let mut changes = ChangeLog::default();
    let result = loop {
        tokio::select! {
            _ = wait_for_signal() => break Ok(()),
            (name, st) = live.first_death() => {
                let what = crate::inventory::liveness::describe(&name, &st);
                tracing::error!("{what}: the engine stops so that its supervisor restarts it");
                break Err(cli_err(format!("{what}; the engine stopped (exit status 1) so that a supervisor restarts it")));
            }
            changed = status.changed() => {
                if changed.is_err() {
                    // The engine's task ended: its guard says how, a moment later.
                    let death = tokio::time::timeout(std::time::Duration::from_secs(2), live.first_death()).await;
                    let what = death.map(|(n, s)| crate::inventory::liveness::describe(&n, &s)).unwrap_or_else(|_| "the engine stopped".into());
                    tracing::error!("{what}: the engine stops so that its supervisor restarts it");
                    break Err(cli_err(format!("{what}; the engine stopped (exit status 1) so that a supervisor restarts it")));
                }
                let s = status.borrow().clone();
                changes.log(&s);
            }
        }
    };
    handle.task.abort();
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn a_plan_step_that_stays_is_logged_once() {
        use crate::engine::status::PlanLines;
        use crate::engine::EngineStatus;
        let status = |lines: &[&str]| EngineStatus {
            plans: vec![PlanLines::new("c", "web", lines.iter().map(|l| l.to_string()).collect())],
            ..Default::default()
        };
        let mut log = super::ChangeLog::default();
        let said = |log: &mut super::ChangeLog, lines: &[&str]| -> Vec<String> {
            log.new_plan_lines(&status(lines)).into_iter().map(|(c, a, l)| format!("{c}/{a}: {l}")).collect()
        };
        assert_eq!(said(&mut log, &["adopt op-1", "create slot 2"]), ["c/web: adopt op-1", "c/web: create slot 2"]);
        assert!(said(&mut log, &["adopt op-1", "create slot 2"]).is_empty(), "nothing changed");
        assert_eq!(said(&mut log, &["adopt op-1", "wait for slot 2"]), ["c/web: wait for slot 2"]);
        assert_eq!(said(&mut log, &["adopt op-1", "create slot 2"]), ["c/web: create slot 2"], "a step back is news");
        assert!(said(&mut log, &["adopt op-1"]).is_empty(), "a step gone says nothing");
    }

    #[test]
    fn rust_log_sets_levels_per_target_and_falls_back_when_unset_or_unreadable() {
        let f = log_filter(Some("stackpilot=debug,hyper=error,info"));
        assert!(f.would_enable("stackpilot::cloud", &Level::DEBUG));
        assert!(!f.would_enable("stackpilot::cloud", &Level::TRACE));
        assert!(!f.would_enable("hyper::proto", &Level::WARN));
        assert!(f.would_enable("reqwest", &Level::INFO));
        for spec in [None, Some(""), Some("stackpilot=loud")] {
            let f = log_filter(spec);
            assert!(f.would_enable("stackpilot::tui", &Level::INFO), "{spec:?}");
            assert!(!f.would_enable("stackpilot::tui", &Level::DEBUG), "{spec:?}");
            assert!(!f.would_enable("rustls", &Level::INFO), "{spec:?}");
            assert!(f.would_enable("rustls", &Level::WARN), "{spec:?}");
        }
    }
}
