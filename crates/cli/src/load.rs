//! Loading what a command reads: profiles (built-in, and `--profiles DIR`), a site (a path
//! or `example:NAME`) with its warnings, files to read, and output to write (standard output
//! or `-o FILE`), with their failures sorted into bad input and the environment's.

use crate::example_sites;
use crate::exit::bad;
use anyhow::Result;
use ferry_profiles::{load_site_with_warnings, ProfileSet};
use std::path::{Path, PathBuf};

/// A planning error as the command line reports it: the site file, and the profile (with
/// the file it was read from) whose rules could not be scheduled.
pub fn plan_error(l: &Loaded, e: ferry_plan::PlanError) -> anyhow::Error {
    let profile = match &e {
        ferry_plan::PlanError::Schedule { profile, .. } => l
            .profiles
            .get(profile)
            .map(|p| format!("; profile `{profile}` was read from {}", p.origin)),
        _ => None,
    };
    bad(format!(
        "{}: {e}{}",
        l.inputs.site_name,
        profile.unwrap_or_default()
    ))
}

/// A diagnostic with its source excerpt; when the renderer cannot draw the excerpt (miette
/// panics on some very long lines), the plain located messages (file:line: message, help).
pub fn render_diag(err: impl miette::Diagnostic + Send + Sync + 'static) -> String {
    let plain = plain_diag(&err);
    let report = miette::Report::new(err);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| format!("{report:?}")));
    std::panic::set_hook(hook);
    drawn.unwrap_or(plain)
}

fn plain_diag(err: &dyn miette::Diagnostic) -> String {
    let mut out = err.to_string();
    for e in err.related().into_iter().flatten() {
        out.push_str(&format!("\n  {e}"));
        if let Some(h) = e.help() {
            out.push_str(&format!("\n    help: {h}"));
        }
    }
    out
}

pub fn load_profiles(dirs: &[PathBuf]) -> Result<ProfileSet> {
    let mut set = ProfileSet::builtin().map_err(|e| bad(render_diag(e)))?;
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            bad(format!(
                "cannot read profile directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            let text = read(&f)?;
            set.add(&f.display().to_string(), &text)
                .map_err(|e| bad(render_diag(e)))?;
        }
    }
    Ok(set)
}

pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
}

pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
}

/// The site's name for messages and its text.
pub fn site_text(arg: &str) -> Result<(String, String)> {
    if let Some(name) = arg.strip_prefix("example:") {
        let text = example_sites::get(name).ok_or_else(|| {
            bad(format!(
                "no built-in example `{name}`; examples: {}",
                example_sites::names().join(", ")
            ))
        })?;
        return Ok((format!("example:{name}"), text.to_string()));
    }
    Ok((arg.to_string(), read(Path::new(arg))?))
}

/// A site and the profiles it was loaded with.
pub struct Loaded {
    pub profiles: ProfileSet,
    pub site: ferry_model::Site,
    pub hash: String,
    /// The site text and the texts of the profiles it uses (journaled with a run).
    pub inputs: ferry_exec::RunInputs,
}

/// Loads a site and its profiles. Warnings (fact names no profile declares) go to standard
/// error, located, or refuse the site with `strict` (exit 2).
pub fn load(profile_dirs: &[PathBuf], site_arg: &str, strict: bool) -> Result<Loaded> {
    let profiles = load_profiles(profile_dirs)?;
    let (name, text) = site_text(site_arg)?;
    let (site, warnings) =
        load_site_with_warnings(&name, &text, &profiles).map_err(|e| bad(render_diag(e)))?;
    if !warnings.errors.is_empty() {
        if strict {
            return Err(bad(format!(
                "{}\n(--strict: a warning refuses the site)",
                render_diag(warnings)
            )));
        }
        for w in &warnings.errors {
            eprintln!(
                "warning: {w}{}",
                w.help
                    .as_ref()
                    .map(|h| format!("\n  help: {h}"))
                    .unwrap_or_default()
            );
        }
    }
    let used: std::collections::BTreeSet<&str> =
        site.clusters.iter().map(|c| c.profile.as_str()).collect();
    let inputs = ferry_exec::RunInputs {
        site_name: name,
        site_text: text,
        profiles: used
            .into_iter()
            .filter_map(|p| profiles.get(p).map(|lp| (p.to_string(), lp.text.clone())))
            .collect(),
        strategy: None,
    };
    let hash = inputs.input_hash();
    tracing::info!(site = %inputs.site_name, clusters = site.clusters.len(), profiles = inputs.profiles.len(), input_hash = %hash, "loaded the site");
    Ok(Loaded {
        profiles,
        site,
        hash,
        inputs,
    })
}

pub fn write_out(output: Option<&Path>, text: &str) -> Result<()> {
    match output {
        Some(p) => std::fs::write(p, text).map_err(|e| {
            use std::io::ErrorKind as K;
            match e.kind() {
                // A path that cannot be a file to write: the argument is wrong.
                K::NotFound | K::PermissionDenied | K::IsADirectory | K::InvalidInput => {
                    bad(format!("cannot write {}: {e}", p.display()))
                }
                // A full disk, a failing one: the environment.
                _ => anyhow::Error::new(ferry_exec::environment::io_failure(p, &e)),
            }
        }),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).or_else(|e| {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            Ok(())
        }
    }
}

/// The strategy names `--strategy` accepts for a site: the base and shared strategies, and
/// every strategy (or renamed one) of the site's profiles.
pub fn known_strategies(l: &Loaded) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for c in &l.site.clusters {
        if let Some(p) = l.profiles.get(&c.profile) {
            for s in ferry_profiles::site::known_strategies(&p.profile) {
                if !v.contains(&s) {
                    v.push(s);
                }
            }
        }
    }
    v
}

/// `--strategy` must name a strategy of the site's profiles (exit 2 otherwise, listing them);
/// a renamed one is planned under its new name, with a warning on standard error.
pub fn check_strategy(l: &Loaded, strategy: Option<&str>) -> Result<()> {
    let Some(s) = strategy else { return Ok(()) };
    let known = known_strategies(l);
    if !known.iter().any(|k| k == s) {
        return Err(bad(format!(
            "unknown strategy `{s}`; known: {}",
            known.join(", ")
        )));
    }
    for c in &l.site.clusters {
        let Some(p) = l.profiles.get(&c.profile) else {
            continue;
        };
        let meta = &p.profile.profile;
        if let Some(r) = meta.renamed_strategies.iter().find(|r| r.name == s) {
            let why = if r.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.note)
            };
            eprintln!(
                "warning: `--strategy {s}` is deprecated: profile `{}` renamed it to `{}`{why}; planning with `--strategy {}`",
                meta.name, r.now, r.now
            );
            break;
        }
    }
    Ok(())
}

/// What `ferry plan --format json` writes: the plan, and the texts it was made from (`inputs`:
/// the site and every profile it uses), so that `ferry apply PLAN.json` needs nothing else.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct SavedPlan<'a> {
    #[serde(flatten)]
    pub plan: &'a ferry_model::Plan,
    pub inputs: &'a ferry_exec::RunInputs,
}

/// The site and profiles a saved plan carries (`inputs`), loaded as `load` loads a site; the
/// texts must still hash to the plan's `input_hash` (a plan file edited by hand is refused).
pub fn load_carried(plan_path: &Path) -> Result<Loaded> {
    #[derive(serde::Deserialize)]
    struct Carried {
        #[serde(default)]
        inputs: Option<ferry_exec::RunInputs>,
        #[serde(default)]
        input_hash: String,
    }
    let text = read(plan_path)?;
    let carried: Carried = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "{}: not a ferry plan (make one with `ferry plan SITE --format json -o PLAN.json`): {e}",
            plan_path.display()
        ))
    })?;
    let inputs = carried.inputs.ok_or_else(|| {
        bad(format!(
            "{}: this plan carries no site (an older ferry made it): give the site with `--site SITE`, or make the plan again with `ferry plan SITE --format json -o {}`",
            plan_path.display(),
            plan_path.display()
        ))
    })?;
    let hash = inputs.input_hash();
    if hash != carried.input_hash {
        return Err(bad(format!(
            "{}: the site and profiles this plan carries do not hash to its input_hash (the file was edited): make the plan again with `ferry plan SITE --format json -o {}`",
            plan_path.display(),
            plan_path.display()
        )));
    }
    let (profiles, site) = ferry_exec::load_inputs(&inputs)
        .map_err(|e| bad(format!("{}: {e}", plan_path.display())))?;
    Ok(Loaded {
        profiles,
        site,
        hash,
        inputs,
    })
}
