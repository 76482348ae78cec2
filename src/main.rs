use std::io::IsTerminal;
use std::process::ExitCode;

/// Errors and panics go through color-eyre: coloured only for a person at a
/// terminal, without source locations (a user's mistake is not a bug). The panic
/// hook also notes the message for whoever supervises the panicking task; the
/// console wraps it to restore the terminal first.
fn install_hooks() {
    use color_eyre::config::{HookBuilder, Theme};
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = HookBuilder::default()
        .display_env_section(false)
        .theme(if colour { Theme::dark() } else { Theme::new() })
        .panic_section(
            "stackpilot crashed: this is a bug. The report above and the log in the state directory help fix it.",
        );
    let (panic_hook, eyre_hook) = builder.into_hooks();
    if eyre_hook.install().is_err() {
        stackpilot::cli::say("warning: error reporting was already set up");
    }
    std::panic::set_hook(Box::new(move |info| {
        stackpilot::inventory::liveness::note_panic(info.to_string());
        stackpilot::cli::say(panic_hook.panic_report(info));
    }));
}

fn main() -> ExitCode {
    install_hooks();
    let cli = stackpilot::cli::Cli::parse_args();
    let to_stderr =
        matches!(cli.command, Some(stackpilot::cli::Command::Sim(_)) | Some(stackpilot::cli::Command::Engine(_)));
    stackpilot::cli::init_logging(to_stderr);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            stackpilot::cli::say(format_args!("error: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(stackpilot::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // `stackpilot servers | head`: the reader has what it wanted.
        Err(e) if stackpilot::cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        // One line: what, where and what to do (a user's mistake, not a bug: no
        // backtrace), each cause after a colon.
        Err(e) => {
            stackpilot::cli::say(format_args!("error: {}", stackpilot::domain::text::sanitize(&format!("{e:#}"))));
            ExitCode::FAILURE
        }
    }
}
