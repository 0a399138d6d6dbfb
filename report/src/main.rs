use darklaunch_report::cli::{self, Command, EXIT_ERROR};

fn main() {
    let code = match cli::parse_args(std::env::args().skip(1)) {
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
