//! `ferry completions SHELL`: the shell's completion script for every command and option
//! (clap_complete), on standard output.

use crate::args::Global;
use anyhow::Result;
use std::process::ExitCode;

/// Print the completion script for a shell (bash, zsh, fish, elvish, powershell).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
ferry completions bash > /etc/bash_completion.d/ferry\n  \
ferry completions zsh > \"${fpath[1]}/_ferry\"\n  \
ferry completions fish > ~/.config/fish/completions/ferry.fish")]
pub struct Args {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    let mut cmd = crate::command();
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "ferry", &mut out);
    crate::load::write_out(None, &String::from_utf8_lossy(&out))?;
    Ok(ExitCode::SUCCESS)
}
