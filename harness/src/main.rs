//! The `criu-matrix` binary: logging, the interrupt handler, then the command line (`cli`).

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CRIU_MATRIX_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    criu_matrix::cleanup::install_interrupt_handler();
    criu_matrix::cli::main()
}
