//! `ferry agent bench --fleet N`: the orchestration time of a rolling upgrade over N agents on
//! the loopback. N agents run in this process, each managing a demo service of its own, in
//! clusters of a publisher and subscribers; `ferry apply` with the agent driver upgrades them
//! twice, once as the plan allows (steps in parallel) and once one step at a time, side by side
//! in one run, and the figures are reported as the ratio of the two. With `--hand-over
//! PROGRAM` the live fleet is then handed to another orchestrator (an Ansible inventory of the
//! same agents, the token, the CA and two more signed packages), so that both are timed on
//! the same hosts in one run (`scripts/compare-ansible/`).

use super::{bench_agent_config, config_error, make_package, BenchAgent, BenchLab};
use anyhow::{Context, Result};
use ferry_agent::client::{AgentClient, ClientOptions};
use ferry_model::agent::{OpKind, OpRequest, OpState};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The versions the fleet goes through: set up on the first, then two upgrades.
const VERSIONS: [&str; 3] = ["1.0.0", "1.1.0", "1.2.0"];

/// The versions a `--hand-over` program upgrades the fleet to, one after the other.
const HANDED_OVER: [&str; 2] = ["1.3.0", "1.4.0"];

/// The `--hand-over` program failed, or left a node on another version (exit 1).
#[derive(Debug)]
pub struct HandOverFailed(String);
impl std::fmt::Display for HandOverFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for HandOverFailed {}

struct Node {
    name: String,
    cluster: usize,
    publisher: bool,
    agent: ferry_agent::RunningAgent,
}

/// One timed `ferry apply`.
struct Upgrade {
    label: &'static str,
    steps: usize,
    seconds: f64,
}

pub fn fleet(
    demo: &Path,
    n: usize,
    cluster_size: usize,
    hand_over: Option<&Path>,
    json: bool,
) -> Result<String> {
    let BenchLab {
        dir,
        ca,
        secret,
        public,
        token,
    } = BenchLab::new("fleet-bench")?;
    std::fs::create_dir_all(dir.0.join("packages"))?;
    std::fs::write(dir.0.join("token"), &token)?;

    // Packages, signed, in the layout the agent driver reads.
    let mut packages = Vec::new();
    for v in VERSIONS {
        let (b64, sig) = make_package(demo, &dir.0, v, &secret)?;
        std::fs::copy(
            dir.0.join(format!("demo-{v}.tar")),
            dir.0.join(format!("packages/kv-{v}.tar")),
        )?;
        std::fs::write(dir.0.join(format!("packages/kv-{v}.tar.minisig")), &sig)?;
        packages.push((b64, sig));
    }

    eprintln!("fleet bench: starting {n} agents, each with a demo service");
    // Ports for the services and the agents below the system's range of ephemeral ports, so
    // that no outgoing connection takes one before its server listens on it.
    let mut free =
        (20000u16..32000).filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok());
    let mut take = || {
        free.next()
            .ok_or_else(|| anyhow::anyhow!("no free ports between 20000 and 32000 on the loopback"))
    };
    let ports: Vec<u16> = (0..n).map(|_| take()).collect::<Result<_>>()?;
    let agent_ports: Vec<u16> = (0..n).map(|_| take()).collect::<Result<_>>()?;
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let cluster = i / cluster_size;
        let publisher = i % cluster_size == 0;
        let (port, agent_port) = (ports[i], agent_ports[i]);
        let name = format!("n{i:03}");
        let listen = format!("127.0.0.1:{agent_port}");
        let config = bench_agent_config(&BenchAgent {
            name: &name,
            listen: &listen,
            token: &token,
            public: &public,
            port,
            upstream: (!publisher).then(|| ports[cluster * cluster_size]),
            pubsub_role: Some(if publisher { "publisher" } else { "subscriber" }),
            deadline_s: 20,
        });
        let path = dir.0.join(format!("{name}.toml"));
        std::fs::write(&path, config)?;
        let cfg = ferry_agent::load_config(&path).map_err(config_error)?;
        nodes.push(Node {
            name,
            cluster,
            publisher,
            agent: ferry_agent::start(cfg)?,
        });
    }
    let client = |node: &Node| {
        AgentClient::new(
            &format!("https://127.0.0.1:{}", node.agent.addr().port()),
            ClientOptions {
                token: Some(token.clone()),
                ca_pem: ca.cert_pem().into_bytes(),
                identity: None,
                timeout: Duration::from_secs(120),
                ..ClientOptions::default()
            },
        )
    };

    // Every service on the first version, publishers first (their subscribers copy them).
    eprintln!("fleet bench: setting every node up on {}", VERSIONS[0]);
    for publishers in [true, false] {
        let group: Vec<&Node> = nodes.iter().filter(|x| x.publisher == publishers).collect();
        std::thread::scope(|s| -> Result<()> {
            let workers: Vec<_> = group
                .chunks(group.len().div_ceil(8).max(1))
                .map(|chunk| {
                    let (client, packages) = (&client, &packages);
                    s.spawn(move || -> Result<()> {
                        for node in chunk {
                            let c = client(node)?;
                            for (id, op, pkg) in [
                                ("bench/setup-stage", OpKind::Stage, Some(&packages[0])),
                                ("bench/setup-switch", OpKind::Switch, None),
                            ] {
                                let r = c.op(&OpRequest {
                                    id: id.into(),
                                    service: "kv".into(),
                                    op,
                                    version: Some(VERSIONS[0].to_string()),
                                    package: pkg.map(|p| p.0.clone()),
                                    signature: pkg.map(|p| p.1.clone()),
                                    snapshot: None,
                                    role: None,
                                    health_deadline_s: None,
                                })?;
                                if r.state != OpState::Done {
                                    anyhow::bail!("{}: {id}: {}", node.name, r.message);
                                }
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a set-up thread panicked"))??;
            }
            Ok(())
        })?;
    }

    let ferry = std::env::current_exe()?;
    let mut upgrades = Vec::new();
    for (k, (label, parallel)) in [
        ("as the plan allows", None),
        ("one step at a time", Some(1)),
    ]
    .into_iter()
    .enumerate()
    {
        let (from, to) = (VERSIONS[k], VERSIONS[k + 1]);
        let site = dir.0.join(format!("site-{k}.toml"));
        std::fs::write(&site, site_text(&nodes, from, to))?;
        let plan = dir.0.join(format!("plan-{k}.json"));
        run(
            &ferry,
            &[
                "plan".as_ref(),
                site.as_os_str(),
                "--format".as_ref(),
                "json".as_ref(),
                "-o".as_ref(),
                plan.as_os_str(),
            ],
        )?;
        let steps = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&plan)?)?
            ["steps"]
            .as_array()
            .map_or(0, Vec::len);
        eprintln!("fleet bench: ferry apply {from} -> {to} ({steps} steps, {label})");
        let state = dir.0.join(format!("orchestrator-{k}"));
        let p = |f: &str| dir.0.join(f).into_os_string();
        let mut args = vec![
            "apply".into(),
            plan.into_os_string(),
            "--site".into(),
            site.into_os_string(),
            "--driver".into(),
            "agent".into(),
            // The benchmark's own lab agents: nobody to ask.
            "--yes".into(),
            "--state".into(),
            state.into_os_string(),
            "--agent-token-file".into(),
            p("token"),
            "--agent-ca".into(),
            p("tls/ca.pem"),
            "--packages".into(),
            p("packages"),
        ];
        if let Some(n) = parallel {
            args.push("--parallel".into());
            args.push(n.to_string().into());
        }
        let t = Instant::now();
        run(
            &ferry,
            &args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>(),
        )?;
        upgrades.push(Upgrade {
            label,
            steps,
            seconds: t.elapsed().as_secs_f64(),
        });
        // What a user checks: every node on the new version.
        for node in &nodes {
            let st = client(node)?.status()?;
            let active = st.services[0].active.as_ref().map(|v| v.version.as_str());
            if active != Some(to) {
                anyhow::bail!("{}: on {active:?} after the upgrade to {to}", node.name);
            }
        }
    }
    let (par, one) = (&upgrades[0], &upgrades[1]);
    let ratio = one.seconds / par.seconds.max(1e-9);
    let clusters = n.div_ceil(cluster_size);
    let figures = serde_json::json!({
        "schema_version": 1,
        "agents": n,
        "clusters": clusters,
        "upgrades": upgrades.iter().map(|u| serde_json::json!({
            "mode": u.label,
            "steps": u.steps,
            "seconds": u.seconds,
            "ms_per_step": u.seconds * 1000.0 / u.steps.max(1) as f64,
        })).collect::<Vec<_>>(),
        "one_at_a_time_over_parallel": ratio,
    });
    if let Some(program) = hand_over {
        hand_over_fleet(program, &dir.0, demo, &secret, &nodes, &figures)?;
        let last = HANDED_OVER[HANDED_OVER.len() - 1];
        for node in &nodes {
            let st = client(node)?.status()?;
            let active = st.services[0].active.as_ref().map(|v| v.version.as_str());
            if active != Some(last) {
                return Err(HandOverFailed(format!(
                    "{}: on {active:?} after {} (it was to end on {last})",
                    node.name,
                    program.display()
                ))
                .into());
            }
        }
    }
    for node in nodes {
        node.agent.stop()?;
    }

    if json {
        return Ok(serde_json::to_string_pretty(&figures)? + "\n");
    }
    let mut out = format!(
        "rolling upgrade over {n} agents on the loopback ({clusters} clusters of a publisher and \
         up to {} subscribers), ferry apply with the agent driver over HTTPS:\n",
        cluster_size - 1
    );
    for u in &upgrades {
        out.push_str(&format!(
            "  {:<20} {} steps in {:.1} s ({:.0} ms per step)\n",
            format!("{}:", u.label),
            u.steps,
            u.seconds,
            u.seconds * 1000.0 / u.steps.max(1) as f64
        ));
    }
    out.push_str(&format!(
        "  one step at a time takes {ratio:.1}x as long as the plan's parallel order\n"
    ));
    Ok(out)
}

/// The site of the fleet on `from`, to be upgraded to `to`.
fn site_text(nodes: &[Node], from: &str, to: &str) -> String {
    let mut s = String::from("[site]\nname = \"fleet-bench\"\n");
    let mut last = None;
    for node in nodes {
        if last != Some(node.cluster) {
            s.push_str(&format!(
                "\n[[cluster]]\nname = \"c{:02}\"\nprofile = \"linux-ha\"\ntarget = \"{to}\"\nfacts = {{ service = \"kv\", package_mb = 1 }}\n",
                node.cluster
            ));
            last = Some(node.cluster);
        }
        s.push_str(&format!(
            "\n[[cluster.node]]\nname = \"{}\"\nrole = \"{}\"\nversion = \"{from}\"\naddress = \"https://127.0.0.1:{}\"\n",
            node.name,
            if node.publisher { "publisher" } else { "subscriber" },
            node.agent.addr().port()
        ));
    }
    s
}

/// Hands the live fleet to `program`: writes the signed packages of the handed-over versions,
/// an Ansible inventory of the agents (`inventory.yml`: groups `publishers`, `subscribers`
/// and one per cluster; host variables `agent_url` and `cluster`) and ferry's figures
/// (`ferry.json`) into `dir`, then runs `program dir` and waits for it.
fn hand_over_fleet(
    program: &Path,
    dir: &Path,
    demo: &Path,
    secret: &str,
    nodes: &[Node],
    figures: &serde_json::Value,
) -> Result<()> {
    for v in HANDED_OVER {
        let (_, sig) = make_package(demo, dir, v, secret)?;
        std::fs::copy(
            dir.join(format!("demo-{v}.tar")),
            dir.join(format!("packages/kv-{v}.tar")),
        )?;
        std::fs::write(dir.join(format!("packages/kv-{v}.tar.minisig")), &sig)?;
    }
    let mut groups = serde_json::Map::new();
    let (mut publishers, mut subscribers) = (serde_json::Map::new(), serde_json::Map::new());
    for node in nodes {
        let cluster = format!("c{:02}", node.cluster);
        let vars = serde_json::json!({
            "agent_url": format!("https://127.0.0.1:{}", node.agent.addr().port()),
            "cluster": cluster,
        });
        if node.publisher {
            &mut publishers
        } else {
            &mut subscribers
        }
        .insert(node.name.clone(), vars);
        groups
            .entry(cluster)
            .or_insert_with(|| serde_json::json!({ "hosts": {} }))["hosts"]
            .as_object_mut()
            .map(|h| h.insert(node.name.clone(), serde_json::json!({})));
    }
    groups.insert(
        "publishers".into(),
        serde_json::json!({ "hosts": publishers }),
    );
    groups.insert(
        "subscribers".into(),
        serde_json::json!({ "hosts": subscribers }),
    );
    let p = |f: &str| dir.join(f).display().to_string();
    // JSON is YAML: Ansible's YAML inventory reads it.
    let inventory = serde_json::json!({ "all": {
        "vars": {
            "ansible_connection": "local",
            "agent_service": "kv",
            "agent_token_file": p("token"),
            "agent_ca": p("tls/ca.pem"),
            "packages": p("packages"),
            "versions": [VERSIONS[VERSIONS.len() - 1], HANDED_OVER[0], HANDED_OVER[1]],
        },
        "children": groups,
    }});
    std::fs::write(
        dir.join("inventory.yml"),
        serde_json::to_string_pretty(&inventory)?,
    )?;
    std::fs::write(
        dir.join("ferry.json"),
        serde_json::to_string_pretty(figures)?,
    )?;
    eprintln!(
        "fleet bench: handing the fleet over to {} {}",
        program.display(),
        dir.display()
    );
    let status = Command::new(program)
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !status.success() {
        return Err(
            HandOverFailed(format!("{} {}: {status}", program.display(), dir.display())).into(),
        );
    }
    Ok(())
}

/// Runs `ferry ARGS`; its output when it fails.
fn run(ferry: &PathBuf, args: &[&std::ffi::OsStr]) -> Result<()> {
    let o = Command::new(ferry)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", ferry.display()))?;
    if !o.status.success() {
        let out = String::from_utf8_lossy(&o.stdout);
        let tail: Vec<&str> = out.lines().rev().take(15).collect();
        return Err(anyhow::anyhow!(
            "ferry {} failed ({}):\n{}\n{}",
            args.first()
                .map(|a| a.to_string_lossy())
                .unwrap_or_default(),
            o.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(())
}
