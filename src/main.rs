use clap::Parser;

fn main() {
    // A panicking task is reported with its message by whoever supervises it.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        stackpilot::inventory::liveness::note_panic(info.to_string());
        previous(info);
    }));
    let cli = stackpilot::cli::Cli::parse();
    let to_stderr =
        matches!(cli.command, Some(stackpilot::cli::Command::Sim(_)) | Some(stackpilot::cli::Command::Engine(_)));
    stackpilot::cli::init_logging(to_stderr);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(stackpilot::cli::run(cli)) {
        eprintln!("error: {}", e.0);
        std::process::exit(1);
    }
}
