//! The `ferry-demo-service` binary (see the library's documentation for the protocol).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::ExitCode::from(ferry_demo_service::main_with(&args))
}
