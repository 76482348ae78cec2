use std::process::ExitCode;

/// A panic is a bug: the report says so, where it happened and where the log
/// is, without a backtrace (the binary is stripped: it would name nothing). The
/// hook also notes the message for whoever supervises the panicking task; the
/// console wraps it to restore the terminal first.
fn install_hooks() {
    std::panic::set_hook(Box::new(|info| {
        stackpilot::inventory::liveness::note_panic(info.to_string());
        stackpilot::cli::say(format_args!(
            "stackpilot crashed: this is a bug.\n{info}\nThis report and the log in the state directory help fix it."
        ));
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
