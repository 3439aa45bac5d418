//! A bounded mutational test of ferry's input handling: the examples, the built-in profiles, a
//! plan and a faults file, mutated by a seeded generator (byte flips, extreme numbers, deleted
//! and repeated lines, very long strings, shuffled lines, truncation), then loaded, planned,
//! rendered and sometimes rehearsed in process, and a sample run through the `ferry` binary.
//!
//! It checks: no panic, no abort, no hang (each case has a deadline); through the binary, bad
//! input exits 2 with the file named and nothing written (no output file, no state directory).
//!
//! CI runs a few thousand cases per target. A longer run of the same harness:
//! `FERRY_FUZZ_SECONDS=1800 cargo test -p ferry-cli --test cli -- fuzz::long_run --ignored --nocapture`
//! (`FERRY_FUZZ_SEED` picks the first seed). A failing case is written under
//! `target/fuzz-cases/` with its target and seed.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferry_plan::render;
use ferry_profiles::ProfileSet;

/// The deadline of one in-process case (a plan of an example takes milliseconds).
const CASE_DEADLINE: Duration = Duration::from_secs(60);

/// splitmix64: small, seeded, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Numbers a mutation puts in place of a number.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "2147483648",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "1e308",
    "-1e308",
    "1e-300",
    "inf",
    "-inf",
    "nan",
    "0.5",
    "65535",
    "65536",
];

/// Byte ranges of the numbers in `text` (digit runs, with a leading `-`).
fn numbers(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = if i > 0 && b[i - 1] == b'-' { i - 1 } else { i };
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.' || b[j] == b'e') {
                j += 1;
            }
            out.push((start, j));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Byte ranges of the contents of `"…"` strings in `text`.
fn strings(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut open: Option<usize> = None;
    for (i, c) in b.iter().enumerate() {
        if *c == b'"' {
            match open {
                Some(s) => {
                    out.push((s, i));
                    open = None;
                }
                None => open = Some(i + 1),
            }
        } else if *c == b'\n' {
            open = None;
        }
    }
    out
}

/// One mutation of `text`.
fn mutate_once(rng: &mut Rng, text: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    match rng.below(9) {
        // A byte flipped to a character that matters to the parsers.
        0 => {
            let mut bytes = text.as_bytes().to_vec();
            if !bytes.is_empty() {
                let at = rng.below(bytes.len());
                bytes[at] = *rng.pick(b"\"'[]{}=,.\n\\#-+0123456789eE \t\x00\xff".as_slice());
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        // A number replaced by an extreme one.
        1 | 2 => {
            let nums = numbers(text);
            if nums.is_empty() {
                return text.to_string();
            }
            let (s, e) = *rng.pick(&nums);
            format!("{}{}{}", &text[..s], rng.pick(EXTREMES), &text[e..])
        }
        // A line (a key) deleted.
        3 => {
            let drop = rng.below(lines.len());
            lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != drop)
                .map(|(_, l)| *l)
                .collect()
        }
        // A line repeated (a duplicate key or table).
        4 => {
            let dup = rng.below(lines.len());
            let mut out = String::new();
            for (i, l) in lines.iter().enumerate() {
                out.push_str(l);
                if i == dup {
                    out.push_str(l);
                }
            }
            out
        }
        // A string grown very long (names of 65,535 characters and more).
        5 => {
            let strs = strings(text);
            if strs.is_empty() {
                return text.to_string();
            }
            let (s, e) = *rng.pick(&strs);
            let n = *rng.pick(&[129, 1_000, 65_535, 70_000]);
            format!("{}{}{}", &text[..s], "x".repeat(n), &text[e..])
        }
        // Two lines swapped.
        6 => {
            let mut v = lines.clone();
            if v.len() > 1 {
                let (a, b) = (rng.below(v.len()), rng.below(v.len()));
                v.swap(a, b);
            }
            v.concat()
        }
        // Truncated.
        7 => {
            let mut at = rng.below(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text[..at].to_string()
        }
        // A string's content replaced by a date-time, a version or an empty string.
        _ => {
            let strs = strings(text);
            if strs.is_empty() {
                return text.to_string();
            }
            let (s, e) = *rng.pick(&strs);
            let with = *rng.pick(&[
                "",
                "2026-12-05T22:00:00[America/New_York]",
                "2026-12-05T22:00:00-05:00[Europe/Paris]",
                "99999999999999999999.1",
                "0.0.0",
                "*/x",
                "a/b",
            ]);
            format!("{}{}{}", &text[..s], with, &text[e..])
        }
    }
}

/// One to three mutations of `text`.
pub fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut out = text.to_string();
    for _ in 0..1 + rng.below(3) {
        out = mutate_once(rng, &out);
    }
    out
}

/// What a target mutates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Site,
    Profile,
    Plan,
    Faults,
}

pub const TARGETS: [Target; 4] = [Target::Site, Target::Profile, Target::Plan, Target::Faults];

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Site => "site",
            Target::Profile => "profile",
            Target::Plan => "plan",
            Target::Faults => "faults",
        }
    }
}

/// A faults file that names steps and nodes of the `linux-ha-pair` example.
pub const FAULTS: &str = r#"[[fault]]
kind = "slow_step"
step = "*/switch"
factor = 2
probability = 0.5

[[fault]]
kind = "crash"
node = "kv-b"
at_min = 3
recover_min = 5

[[fault]]
kind = "replication_stuck"
node = "kv-b"
state = 3
"#;

/// The inputs the mutations start from.
pub struct Corpus {
    pub profiles: ProfileSet,
    /// (name, text) of every example site.
    pub sites: Vec<(String, String)>,
    /// The plan of `linux-ha-pair`, as JSON, and that site.
    pub plan_json: String,
    pub plan_site: String,
}

pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

impl Corpus {
    pub fn load() -> Corpus {
        let profiles = ProfileSet::builtin().expect("built-in profiles");
        let mut sites: Vec<(String, String)> = std::fs::read_dir(examples_dir())
            .expect("examples")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).expect("example"),
                )
            })
            .collect();
        sites.sort();
        let plan_site = sites
            .iter()
            .find(|(n, _)| n == "linux-ha-pair.toml")
            .expect("linux-ha-pair")
            .1
            .clone();
        let site = ferry_profiles::load_site("site.toml", &plan_site, &profiles).expect("site");
        // The hash `ferry` computes, so that the binary takes the plan for its site.
        let inputs = ferry_exec::RunInputs {
            site_name: "site.toml".into(),
            site_text: plan_site.clone(),
            profiles: site
                .clusters
                .iter()
                .map(|c| {
                    (
                        c.profile.clone(),
                        profiles.get(&c.profile).unwrap().text.clone(),
                    )
                })
                .collect(),
            strategy: None,
        };
        let plan = ferry_plan::plan(
            &site,
            |n| profiles.get(n).map(|p| &p.profile),
            inputs.input_hash(),
            &Default::default(),
        )
        .expect("plan");
        Corpus {
            profiles,
            sites,
            plan_json: serde_json::to_string_pretty(&plan).expect("json"),
            plan_site,
        }
    }

    /// The text a case of `target` starts from, and for a profile its name.
    fn seed_text(&self, target: Target, rng: &mut Rng) -> (String, String) {
        match target {
            Target::Site => {
                let (n, t) = rng.pick(&self.sites);
                (n.clone(), t.clone())
            }
            Target::Profile => {
                let (n, t) = rng.pick(&ferry_profiles::registry::BUILTIN);
                (n.to_string(), t.to_string())
            }
            Target::Plan => ("plan.json".into(), self.plan_json.clone()),
            Target::Faults => ("faults.toml".into(), FAULTS.to_string()),
        }
    }
}

/// Plans a loaded site and renders the plan every way; rehearses it when asked.
fn plan_and_render(site: &ferry_model::Site, profiles: &ProfileSet, rehearse: bool) {
    let Ok(plan) = ferry_plan::plan(
        site,
        |n| profiles.get(n).map(|p| &p.profile),
        String::new(),
        &Default::default(),
    ) else {
        return;
    };
    render_all(&plan);
    if rehearse {
        rehearse_plan(site, profiles, &plan, &ferry_model::Faults::default());
    }
}

fn render_all(plan: &ferry_model::Plan) {
    let _ = render::text::render_text(plan);
    let _ = render::mop::render_mop(plan);
    let _ = render::svg::render_svg(plan);
    let _ = render::dot::render_dot(plan);
    let _ = ferry_plan::report::check_text(&plan.site, &plan.findings);
    if let Some(s) = plan.steps.first() {
        let _ = ferry_plan::explain(plan, &s.id);
    }
}

fn rehearse_plan(
    site: &ferry_model::Site,
    profiles: &ProfileSet,
    plan: &ferry_model::Plan,
    faults: &ferry_model::Faults,
) {
    if ferry_exec::validate(plan, &Default::default()).is_err() {
        return;
    }
    let used: BTreeMap<String, ferry_model::Profile> = site
        .clusters
        .iter()
        .filter_map(|c| {
            profiles
                .get(&c.profile)
                .map(|p| (c.profile.clone(), p.profile.clone()))
        })
        .collect();
    let inputs = ferry_exec::RunInputs {
        site_name: "site.toml".into(),
        site_text: String::new(),
        profiles: BTreeMap::new(),
        strategy: None,
    };
    let r = ferry_exec::Rehearse {
        site,
        profiles: &used,
        inputs: &inputs,
        plan,
        faults,
        policy: ferry_exec::FailurePolicy::Stop,
    };
    let _ = ferry_exec::rehearse(&r, 1);
}

/// One in-process case: the mutated text through every loader and what follows it.
pub fn run_case(corpus: &Corpus, target: Target, text: &str, seed: u64) {
    let heavy = seed.is_multiple_of(25);
    match target {
        Target::Site => {
            if let Ok(site) = ferry_profiles::load_site("site.toml", text, &corpus.profiles) {
                plan_and_render(&site, &corpus.profiles, heavy);
            }
        }
        Target::Profile => {
            let mut set = corpus.profiles.clone();
            let Ok(p) = set.add("my.toml", text) else {
                return;
            };
            let name = p.profile.profile.name.clone();
            // Plan every example of that profile with it.
            for (_, site_text) in &corpus.sites {
                if let Ok(site) = ferry_profiles::load_site("site.toml", site_text, &set) {
                    if site.clusters.iter().any(|c| c.profile == name) {
                        plan_and_render(&site, &set, heavy);
                    }
                }
            }
        }
        Target::Plan => {
            let Ok(plan) = serde_json::from_str::<ferry_model::Plan>(text) else {
                return;
            };
            if ferry_exec::validate(&plan, &Default::default()).is_err() {
                return;
            }
            render_all(&plan);
            if heavy {
                let site =
                    ferry_profiles::load_site("site.toml", &corpus.plan_site, &corpus.profiles)
                        .expect("site");
                rehearse_plan(&site, &corpus.profiles, &plan, &Default::default());
            }
        }
        Target::Faults => {
            let Ok(faults) = ferry_profiles::load_faults("faults.toml", text) else {
                return;
            };
            if heavy || seed.is_multiple_of(5) {
                let site =
                    ferry_profiles::load_site("site.toml", &corpus.plan_site, &corpus.profiles)
                        .expect("site");
                let plan: ferry_model::Plan =
                    serde_json::from_str(&corpus.plan_json).expect("plan");
                rehearse_plan(&site, &corpus.profiles, &plan, &faults);
            }
        }
    }
}

/// The mutated text of case `seed` of `target`, and what it started from.
pub fn case_text(corpus: &Corpus, target: Target, seed: u64) -> (String, String) {
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(target as u64));
    let (origin, text) = corpus.seed_text(target, &mut rng);
    (origin, mutate(&mut rng, &text))
}

/// Saves a failing case for its report.
fn save_case(target: Target, seed: u64, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-cases");
    let _ = std::fs::create_dir_all(&dir);
    let ext = if target == Target::Plan {
        "json"
    } else {
        "toml"
    };
    let path = dir.join(format!("{}-{seed}.{ext}", target.name()));
    let _ = std::fs::write(&path, text);
    path
}

/// The name of the thread that runs the cases.
const WORKER: &str = "ferry-fuzz-worker";

/// Executions and failures of one target.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub executions: u64,
    pub crashes: Vec<String>,
}

/// Runs cases of every target, seeds `first..`, until `cases` per target or `until`, each
/// under a deadline on a worker thread; a panic or a case past its deadline is a crash.
pub fn campaign(first: u64, cases: u64, until: Option<Instant>) -> BTreeMap<&'static str, Tally> {
    let (work_tx, work_rx) = mpsc::channel::<(Target, u64, String)>();
    let (done_tx, done_rx) = mpsc::channel::<Result<(), String>>();
    // Quiet on the worker only: its panics are reported by the campaign with their case, and
    // the other tests of the binary keep their own panic messages.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() != Some(WORKER) {
            previous(info)
        }
    }));
    let worker = std::thread::Builder::new()
        .name(WORKER.into())
        .spawn(move || {
            let corpus = Corpus::load();
            for (target, seed, text) in work_rx {
                let r = catch_unwind(AssertUnwindSafe(|| run_case(&corpus, target, &text, seed)))
                    .map_err(|p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panic".into())
                    });
                if done_tx.send(r).is_err() {
                    break;
                }
            }
        })
        .expect("worker thread");
    let corpus = Corpus::load();
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    'cases: for i in 0..cases {
        for target in TARGETS {
            if until.is_some_and(|u| Instant::now() >= u) {
                break 'cases;
            }
            let seed = first.wrapping_add(i);
            let (_, text) = case_text(&corpus, target, seed);
            work_tx.send((target, seed, text.clone())).expect("worker");
            let t = tallies.entry(target.name()).or_default();
            t.executions += 1;
            match done_rx.recv_timeout(CASE_DEADLINE) {
                Ok(Ok(())) => {}
                Ok(Err(message)) => {
                    let path = save_case(target, seed, &text);
                    t.crashes.push(format!(
                        "{} seed {seed}: panic: {message} (input: {})",
                        target.name(),
                        path.display()
                    ));
                }
                Err(_) => {
                    let path = save_case(target, seed, &text);
                    t.crashes.push(format!(
                        "{} seed {seed}: no answer within {CASE_DEADLINE:?} (input: {})",
                        target.name(),
                        path.display()
                    ));
                    // The worker is stuck: stop here.
                    return tallies;
                }
            }
        }
    }
    drop(work_tx);
    let _ = worker.join();
    tallies
}

fn report(tallies: &BTreeMap<&'static str, Tally>, took: Duration) -> String {
    let mut out = format!("fuzz campaign, {:.0} s:\n", took.as_secs_f64());
    for (name, t) in tallies {
        out.push_str(&format!(
            "  {name:8} {:>9} executions, {} crash(es)\n",
            t.executions,
            t.crashes.len()
        ));
        for c in &t.crashes {
            out.push_str(&format!("    {c}\n"));
        }
    }
    out
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// CI: a few thousand cases per target, in process.
#[test]
fn mutated_inputs_never_panic_abort_or_hang() {
    let cases = env_u64("FERRY_FUZZ_CASES").unwrap_or(2_000);
    let first = env_u64("FERRY_FUZZ_SEED").unwrap_or(1);
    let start = Instant::now();
    let tallies = campaign(first, cases, None);
    let text = report(&tallies, start.elapsed());
    println!("{text}");
    assert!(tallies.values().all(|t| t.crashes.is_empty()), "{text}");
    assert!(tallies.values().all(|t| t.executions == cases), "{text}");
}

/// The long run: `FERRY_FUZZ_SECONDS` of cases (README, "Fuzzing").
#[test]
#[ignore = "the long run: FERRY_FUZZ_SECONDS=1800 cargo test -p ferry-cli --test cli -- fuzz::long_run --ignored --nocapture"]
fn long_run() {
    let seconds = env_u64("FERRY_FUZZ_SECONDS").unwrap_or(60);
    let first = env_u64("FERRY_FUZZ_SEED").unwrap_or(1_000_000);
    let start = Instant::now();
    let tallies = campaign(first, u64::MAX, Some(start + Duration::from_secs(seconds)));
    let text = report(&tallies, start.elapsed());
    println!("{text}");
    assert!(tallies.values().all(|t| t.crashes.is_empty()), "{text}");
}

/// The `ferry` binary on a sample of mutated inputs: exit 0, 1 or 2, never anything else; on
/// 2 the file is named and nothing is written (no output file, no state directory).
#[test]
fn mutated_inputs_through_the_binary_exit_2_naming_the_file_and_writing_nothing() {
    let cases = env_u64("FERRY_FUZZ_CLI_CASES").unwrap_or(40);
    let corpus = Corpus::load();
    let dir = std::env::temp_dir().join(format!("ferry-fuzz-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let site_path = dir.join("pair.toml");
    std::fs::write(&site_path, &corpus.plan_site).expect("site");
    let mut rejected = 0;
    for seed in 1..=cases {
        for target in TARGETS {
            let (origin, text) = case_text(&corpus, target, seed);
            // The case's file, the command, and what it must not write when it refuses.
            let (file, args, outputs): (PathBuf, Vec<String>, Vec<PathBuf>) = match target {
                Target::Site => {
                    let f = dir.join(format!("site-{seed}.toml"));
                    let out = dir.join(format!("plan-of-site-{seed}.txt"));
                    (
                        f.clone(),
                        vec!["plan".into(), s(&f), "-o".into(), s(&out)],
                        vec![out],
                    )
                }
                Target::Profile => {
                    // A profile directory holding the mutated profile, and a site that uses it.
                    let pdir = dir.join(format!("profiles-{seed}"));
                    std::fs::create_dir_all(&pdir).expect("profile dir");
                    let f = pdir.join(format!("{origin}.toml"));
                    let site = corpus
                        .sites
                        .iter()
                        .find(|(_, t)| t.contains(&format!("profile = \"{origin}\"")))
                        .map(|(n, _)| examples_dir().join(n))
                        .expect("an example of each profile");
                    let out = dir.join(format!("plan-with-profile-{seed}.txt"));
                    (
                        f.clone(),
                        vec![
                            "--profiles".into(),
                            s(&pdir),
                            "plan".into(),
                            s(&site),
                            "-o".into(),
                            s(&out),
                        ],
                        vec![out],
                    )
                }
                Target::Plan => {
                    let f = dir.join(format!("plan-{seed}.json"));
                    let state = dir.join(format!("state-{seed}"));
                    (
                        f.clone(),
                        vec![
                            "apply".into(),
                            s(&f),
                            "--site".into(),
                            s(&site_path),
                            "--driver".into(),
                            "twin".into(),
                            "--approve".into(),
                            "--ignore-window".into(),
                            "--state".into(),
                            s(&state),
                        ],
                        vec![state],
                    )
                }
                Target::Faults => {
                    let f = dir.join(format!("faults-{seed}.toml"));
                    let out = dir.join(format!("rehearsal-{seed}.txt"));
                    (
                        f.clone(),
                        vec![
                            "rehearse".into(),
                            s(&site_path),
                            "--faults".into(),
                            s(&f),
                            "-o".into(),
                            s(&out),
                        ],
                        vec![out],
                    )
                }
            };
            std::fs::write(&file, &text).expect("case file");
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = super::ferry(&args);
            let code = o.status.code();
            let err = super::stderr(&o);
            let at = format!("{} seed {seed} ({})", target.name(), file.display());
            assert!(matches!(code, Some(0..=2)), "{at}: exit {code:?}\n{err}");
            if code == Some(2) {
                rejected += 1;
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                // The plan's hash no longer matches its site: that names the plan file too.
                assert!(
                    err.contains(&name),
                    "{at}: stderr does not name the file:\n{err}"
                );
                let written: Vec<&PathBuf> = outputs.iter().filter(|p| p.exists()).collect();
                assert!(written.is_empty(), "{at}: rejected, yet wrote {written:?}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        rejected > 0,
        "no case was rejected: the mutations do nothing"
    );
}

fn s(p: &Path) -> String {
    p.display().to_string()
}
