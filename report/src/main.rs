use darklaunch_report::cli::{self, Command, EXIT_ERROR};
use darklaunch_report::{replay, samples, validate};

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    match args.peek().map(String::as_str) {
        Some("validate") => std::process::exit(validate::main(args.skip(1))),
        Some("schema") => std::process::exit(validate::schema_main(args.skip(1))),
        Some("samples") => std::process::exit(samples::main(args.skip(1))),
        Some("replay") => std::process::exit(replay::main(args.skip(1))),
        _ => {}
    }
    let code = match cli::parse_args(args) {
        Ok(Command::Run(args)) => cli::run(&args),
        Ok(Command::Help) => {
            print!("{}", cli::HELP);
            0
        }
        Ok(Command::Version) => {
            println!("darklaunch-report {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Err(e) => {
            eprintln!("darklaunch-report: {e}");
            eprintln!("run `darklaunch-report --help` for usage");
            EXIT_ERROR
        }
    };
    std::process::exit(code);
}
