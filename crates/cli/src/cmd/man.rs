//! `ferry man`: the manual page in roff (clap_mangen): `ferry(1)` on standard output, or with
//! `--output DIR` one page per command (`ferry.1`, `ferry-plan.1`, `ferry-agent-status.1`, …).

use crate::args::Global;
use crate::exit::bad;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Print the manual page (roff), or write one page per command into a directory.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
ferry man | man -l -\n  \
ferry man --output /usr/share/man/man1")]
pub struct Args {
    /// Write ferry.1 and a page per command (ferry-plan.1, …) into this directory.
    #[arg(long, short, value_name = "DIR")]
    output: Option<PathBuf>,
}

/// The roff of one command's page, titled `title` (the command as a user types it, dashed).
fn page(cmd: &clap::Command, title: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(title.to_uppercase())
        .render(&mut out)?;
    Ok(out)
}

/// Writes the page of `cmd` (named `name`) and of each of its subcommands into `dir`.
fn write_pages(
    dir: &Path,
    name: &str,
    cmd: &clap::Command,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page(cmd, name)?)
        .map_err(|e| bad(format!("cannot write {}: {e}", path.display())))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let sub_name = format!("{name}-{}", sub.get_name());
        write_pages(dir, &sub_name, sub, written)?;
    }
    Ok(())
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    let mut cmd = crate::command();
    cmd.build();
    match a.output {
        None => {
            let text = String::from_utf8_lossy(&page(&cmd, "ferry")?).into_owned();
            crate::load::write_out(None, &text)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
            let mut written = Vec::new();
            write_pages(&dir, "ferry", &cmd, &mut written)?;
            for p in written {
                println!("{}", p.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
