//! Profile loading: TOML into `Profile`, then every cross-reference checked (roles, steps,
//! facts, versions, rule IDs), each problem located at its line and key.

use crate::diagnostic::{located, InputErrors, PathSeg, Problem, SourceFile};
use ferry_model::profile::BASE_STRATEGIES;
use ferry_model::profile::{
    CheckTest, Condition, FactTest, FactType, Procedure, StepSelector, VersionTest,
};
use ferry_model::ssh::{parse_template, Piece, ProbeTest, ProbeWait, StepSsh};
use ferry_model::twin::TwinSpec;
use ferry_model::StepKind;
use ferry_model::{Effect, Profile, VendorVersion, VersionPattern, Wait};
use std::collections::BTreeSet;

type Path = Vec<PathSeg>;

fn k(s: &str) -> PathSeg {
    PathSeg::Key(s.to_string())
}
fn i(n: usize) -> PathSeg {
    PathSeg::Index(n)
}
fn join(base: &[PathSeg], more: &[PathSeg]) -> Path {
    [base, more].concat()
}

struct Ctx<'a> {
    profile: &'a Profile,
    roles: BTreeSet<&'a str>,
    facts: BTreeSet<&'a str>,
    strategies: BTreeSet<String>,
    /// Some step of the procedure or the rollback takes a `snapshot` (for `restore_snapshot`).
    snapshots: bool,
    problems: Vec<Problem>,
    /// Conditions may test the run being rolled back (in the rollback procedure only).
    in_rollback: bool,
}

/// Whether `effects` (or the effects of their `if`s) include `snapshot`.
fn takes_snapshot(effects: &[Effect]) -> bool {
    effects.iter().any(|e| match e {
        Effect::Snapshot => true,
        Effect::If { then, .. } => takes_snapshot(then),
        _ => false,
    })
}

impl Ctx<'_> {
    fn add(&mut self, path: Path, msg: impl Into<String>, help: Option<String>) {
        self.problems.push((path, msg.into(), help));
    }

    fn rule(&mut self, rule: &str, path: Path) {
        let ok = rule.split_once('-').is_some_and(|(a, b)| {
            !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                && !b.is_empty()
                && b.chars().all(|c| c.is_ascii_digit())
        });
        if !ok {
            self.add(
                path,
                format!("`{rule}` is not a rule ID"),
                Some("rule IDs look like UCM-07: capital letters, a dash, digits".into()),
            );
        }
    }

    fn role(&mut self, role: &str, path: Path) {
        if !self.roles.contains(role) {
            let help = format!(
                "roles of this profile: {}",
                self.roles.iter().copied().collect::<Vec<_>>().join(", ")
            );
            self.add(path, format!("unknown role `{role}`"), Some(help));
        }
    }

    fn roles(&mut self, roles: &[String], path: &[PathSeg]) {
        for (n, r) in roles.iter().enumerate() {
            self.role(r, join(path, &[i(n)]));
        }
    }

    fn fact(&mut self, fact: &str, path: Path) {
        if !self.facts.contains(fact) {
            self.add(
                path,
                format!("fact `{fact}` is not declared"),
                Some("declare it in a [[fact]] table with its type".into()),
            );
        }
    }

    /// A declared fact of type `list`.
    fn list_fact(&mut self, fact: &str, path: Path) {
        let kind = self
            .profile
            .facts
            .iter()
            .find(|f| f.name == fact)
            .map(|f| f.kind);
        match kind {
            None => self.fact(fact, path),
            Some(FactType::List) => {}
            Some(other) => self.add(
                path,
                format!("fact `{fact}` is a {}, not a list", other.as_str()),
                Some("declare it with type = \"list\" (a list of tables, one per group)".into()),
            ),
        }
    }

    /// A declared fact of type `integer` or `number`.
    fn number_fact(&mut self, fact: &str, path: Path) {
        let kind = self
            .profile
            .facts
            .iter()
            .find(|f| f.name == fact)
            .map(|f| f.kind);
        match kind {
            None => self.fact(fact, path),
            Some(FactType::Integer | FactType::Number) => {}
            Some(other) => self.add(
                path,
                format!("fact `{fact}` is a {}, not a number", other.as_str()),
                Some("declare it with type = \"number\" (or \"integer\")".into()),
            ),
        }
    }

    fn version(&mut self, v: &str, path: Path) {
        if let Err(e) = VendorVersion::parse(v) {
            self.add(path, e.to_string(), None);
        }
    }

    fn pattern(&mut self, v: &str, path: Path) {
        if let Err(e) = VersionPattern::parse(v) {
            self.add(path, e.to_string(), None);
        }
    }

    fn condition(&mut self, c: &Condition, path: Path) {
        match c {
            Condition::All(cs) | Condition::Any(cs) => {
                let key = if matches!(c, Condition::All(_)) {
                    "all"
                } else {
                    "any"
                };
                for (n, c) in cs.iter().enumerate() {
                    self.condition(c, join(&path, &[k(key), i(n)]));
                }
            }
            Condition::Not(c) => self.condition(c, join(&path, &[k("not")])),
            Condition::UpgradeType(names) => {
                for (n, name) in names.iter().enumerate() {
                    if !self.profile.upgrade_types.iter().any(|u| &u.name == name) {
                        self.add(
                            join(&path, &[k("upgrade_type"), i(n)]),
                            format!("unknown upgrade type `{name}`"),
                            None,
                        );
                    }
                }
            }
            Condition::Strategy(names) => {
                for (n, name) in names.iter().enumerate() {
                    if !self.strategies.contains(name) {
                        let help = format!(
                            "strategies: {}",
                            self.strategies
                                .iter()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        self.add(
                            join(&path, &[k("strategy"), i(n)]),
                            format!("unknown strategy `{name}`"),
                            Some(help),
                        );
                    }
                }
            }
            Condition::Upgrading(roles) => self.roles(roles, &join(&path, &[k("upgrading")])),
            Condition::Roles(roles) => self.roles(roles, &join(&path, &[k("roles")])),
            Condition::Fact(t) => self.fact_test(t, join(&path, &[k("fact")])),
            Condition::ClusterFact(t) => self.fact_test(t, join(&path, &[k("cluster_fact")])),
            Condition::Version(t) => self.version_test(t, join(&path, &[k("version")])),
            Condition::FirstLeg(_) | Condition::LastLeg(_) | Condition::Staging(_) => {}
            Condition::Run(t) => {
                self.roles(&t.roles, &join(&path, &[k("run"), k("roles")]));
                if !self.in_rollback {
                    self.add(
                        join(&path, &[k("run")]),
                        "a `run` condition tests the run being rolled back: only the rollback procedure may use it",
                        None,
                    );
                }
            }
            Condition::AnyNode(t) => {
                self.roles(&t.roles, &join(&path, &[k("any_node"), k("roles")]));
                self.condition(&t.test, join(&path, &[k("any_node"), k("test")]));
            }
        }
    }

    fn fact_test(&mut self, t: &FactTest, path: Path) {
        self.fact(&t.name, join(&path, &[k("name")]));
        if let Some(other) = &t.lt_fact {
            self.fact(other, join(&path, &[k("lt_fact")]));
        }
        if let Some(item) = &t.any_item {
            self.item_test(item, join(&path, &[k("any_item")]));
        }
        self.fact_ops(t, path);
    }

    /// A test on list items: `name` is a field of the items, not a declared fact.
    fn item_test(&mut self, t: &FactTest, path: Path) {
        if let Some(other) = &t.lt_fact {
            self.fact(other, join(&path, &[k("lt_fact")]));
        }
        if let Some(item) = &t.any_item {
            self.item_test(item, join(&path, &[k("any_item")]));
        }
        self.fact_ops(t, path);
    }

    fn fact_ops(&mut self, t: &FactTest, path: Path) {
        if let Some(v) = &t.version_lt {
            self.version(v, join(&path, &[k("version_lt")]));
        }
        for (key, list) in [
            ("version_in", &t.version_in),
            ("version_not_in", &t.version_not_in),
        ] {
            for (n, v) in list.iter().flatten().enumerate() {
                self.pattern(v, join(&path, &[k(key), i(n)]));
            }
        }
    }

    fn version_test(&mut self, t: &VersionTest, path: Path) {
        self.roles(&t.roles, &join(&path, &[k("roles")]));
        for (n, v) in t.one_of.iter().flatten().enumerate() {
            self.pattern(v, join(&path, &[k("in"), i(n)]));
        }
        for (key, v) in [("lt", &t.lt), ("ge", &t.ge)] {
            if let Some(v) = v {
                self.version(v, join(&path, &[k(key)]));
            }
        }
    }

    fn effects(&mut self, effects: &[Effect], path: Path) {
        for (n, e) in effects.iter().enumerate() {
            let p = join(&path, &[i(n)]);
            match e {
                Effect::SetFact { name, .. } => {
                    self.fact(name, join(&p, &[k("set_fact"), k("name")]))
                }
                Effect::CopyItems { from, to } => {
                    self.fact(from, join(&p, &[k("copy_items"), k("from")]));
                    self.fact(to, join(&p, &[k("copy_items"), k("to")]));
                }
                Effect::IncrementFact(f) => self.fact(f, join(&p, &[k("increment_fact")])),
                Effect::ClampParameters(f) => self.fact(f, join(&p, &[k("clamp_parameters")])),
                Effect::SetOption { seconds_fact, .. } => self.fact(
                    seconds_fact,
                    join(&p, &[k("set_option"), k("seconds_fact")]),
                ),
                Effect::Repoint(name)
                    if !self
                        .profile
                        .twin
                        .dependencies
                        .iter()
                        .any(|d| &d.name == name) =>
                {
                    self.add(
                        join(&p, &[k("repoint")]),
                        format!("no [[twin.dependency]] named `{name}`"),
                        None,
                    );
                }
                Effect::StopOnHost(roles) | Effect::StartOnHost(roles) => {
                    let key = if matches!(e, Effect::StopOnHost(_)) {
                        "stop_on_host"
                    } else {
                        "start_on_host"
                    };
                    self.roles(roles, &join(&p, &[k(key)]));
                    if self.profile.twin.host_fact.is_none() {
                        self.add(join(&p, &[k(key)]), "needs `host_fact` in [twin]", None);
                    }
                }
                Effect::ReleaseLinks { roles } => {
                    self.roles(roles, &join(&p, &[k("release_links"), k("roles")]))
                }
                Effect::FailsOnConfigChange(rule) => {
                    self.rule(rule, join(&p, &[k("fails_on_config_change")]))
                }
                Effect::Require { rule, test, .. } => {
                    self.rule(rule, join(&p, &[k("require"), k("rule")]));
                    self.condition(test, join(&p, &[k("require"), k("test")]));
                }
                Effect::Wait(w) => {
                    let wp = join(&p, &[k("wait")]);
                    match w {
                        Wait::Replication(roles) => {
                            self.roles(roles, &join(&wp, &[k("replication")]))
                        }
                        Wait::SwitchedOver(roles) => {
                            self.roles(roles, &join(&wp, &[k("switched_over")]))
                        }
                        Wait::Event(events) if events.is_empty() => {
                            self.add(wp, "wait for an event names no event", None)
                        }
                        _ => {}
                    }
                }
                Effect::If { when, then } => {
                    self.condition(when, join(&p, &[k("if"), k("when")]));
                    self.effects(then, join(&p, &[k("if"), k("then")]));
                }
                Effect::RestoreSnapshot if !self.snapshots => self.add(
                    p,
                    "`restore_snapshot` puts back a snapshot, but no step of the profile takes one",
                    Some(
                        "give the step that backs the configuration up the effect \"snapshot\""
                            .into(),
                    ),
                ),
                _ => {}
            }
        }
    }

    fn range(&mut self, r: [f64; 2], path: Path) {
        if !(r[0].is_finite() && r[1].is_finite() && 0.0 <= r[0] && r[0] <= r[1]) {
            self.add(
                path,
                format!(
                    "a range is [low, high] with 0 <= low <= high, found [{}, {}]",
                    r[0], r[1]
                ),
                None,
            );
        }
    }

    fn twin(&mut self, t: &TwinSpec) {
        let base = vec![k("twin")];
        self.range(t.duration_spread, join(&base, &[k("duration_spread")]));
        if !(t.gate_timeout_factor.is_finite() && t.gate_timeout_factor >= 1.0) {
            self.add(
                join(&base, &[k("gate_timeout_factor")]),
                "gate_timeout_factor must be at least 1",
                None,
            );
        }
        self.roles(&t.config_master, &join(&base, &[k("config_master")]));
        self.roles(&t.absent_roles, &join(&base, &[k("absent_roles")]));
        if let Some(f) = &t.host_fact {
            self.fact(f, join(&base, &[k("host_fact")]));
        }
        for r in [&t.freeze_rule, &t.config_rule].into_iter().flatten() {
            self.rule(r, base.clone());
        }
        for (n, r) in t.replication.iter().enumerate() {
            let p = join(&base, &[k("replication"), i(n)]);
            self.rule(&r.rule, join(&p, &[k("rule")]));
            self.roles(&r.roles, &join(&p, &[k("roles")]));
            self.role(&r.master, join(&p, &[k("master")]));
            self.range(r.setup_min, join(&p, &[k("setup_min")]));
            self.range(r.converge_min, join(&p, &[k("converge_min")]));
            if let Some(f) = &r.state_fact {
                self.fact(f, join(&p, &[k("state_fact")]));
            }
            if let Some(pf) = &r.per_fact {
                self.fact(&pf.fact, join(&p, &[k("per_fact"), k("fact")]));
            }
        }
        for (n, d) in t.devices.iter().enumerate() {
            let p = join(&base, &[k("devices"), i(n)]);
            self.rule(&d.rule, join(&p, &[k("rule")]));
            self.roles(&d.roles, &join(&p, &[k("roles")]));
            self.fact(&d.fact, join(&p, &[k("fact")]));
            if let Some(f) = &d.backup_fact {
                self.fact(f, join(&p, &[k("backup_fact")]));
            }
            if let Some(f) = &d.groups_fact {
                self.list_fact(f, join(&p, &[k("groups_fact")]));
            }
            if let Some(f) = &d.capacity_fact {
                self.number_fact(f, join(&p, &[k("capacity_fact")]));
            }
            for r in [&d.capacity_rule, &d.reregister_rule].into_iter().flatten() {
                self.rule(r, p.clone());
            }
            if let Some(r) = &d.capacity_rule {
                let limit = self
                    .profile
                    .procedure
                    .limits
                    .iter()
                    .filter(|l| &l.rule == r)
                    .find_map(|l| l.capacity.as_ref());
                if let Some(c) = limit {
                    if c.severity != d.capacity_severity {
                        self.add(
                            join(&p, &[k("capacity_severity")]),
                            format!(
                                "the rehearsal would report {r} as {}, the plan as {} (its [[procedure.limit]])",
                                d.capacity_severity.as_str(),
                                c.severity.as_str()
                            ),
                            Some("give the rule one severity: capacity_severity here, capacity.severity in the limit".into()),
                        );
                    }
                }
            }
            self.range(d.failover_s, join(&p, &[k("failover_s")]));
            self.range(d.reregister_min, join(&p, &[k("reregister_min")]));
            if let Some(c) = &d.calls {
                self.rule(&c.rule, join(&p, &[k("calls"), k("rule")]));
                if let Some(f) = &c.per_hour_fact {
                    self.fact(f, join(&p, &[k("calls"), k("per_hour_fact")]));
                }
            }
        }
        for (n, h) in t.ha_pairs.iter().enumerate() {
            let p = join(&base, &[k("ha_pair"), i(n)]);
            self.rule(&h.rule, join(&p, &[k("rule")]));
            if h.roles.len() != 2 {
                self.add(
                    join(&p, &[k("roles")]),
                    "an HA pair names two roles: the primary's, then the backup's",
                    None,
                );
            }
            self.roles(&h.roles, &join(&p, &[k("roles")]));
            if let Some(f) = &h.primary_fact {
                self.fact(f, join(&p, &[k("primary_fact")]));
            }
            if let Some(r) = &h.link_rule {
                self.rule(r, join(&p, &[k("link_rule")]));
            }
        }
        if let Some(c) = &t.controller {
            let p = join(&base, &[k("controller")]);
            self.rule(&c.rule, join(&p, &[k("rule")]));
            self.rule(&c.hold_rule, join(&p, &[k("hold_rule")]));
            self.roles(&c.controllers, &join(&p, &[k("controllers")]));
            self.roles(&c.agents, &join(&p, &[k("agents")]));
            if t.host_fact.is_none() {
                self.add(p.clone(), "a controller needs `host_fact` in [twin]", None);
            }
        }
        if let Some(c) = &t.config_store {
            let p = join(&base, &[k("config_store")]);
            self.rule(&c.rule, join(&p, &[k("rule")]));
            self.roles(&c.servers, &join(&p, &[k("servers")]));
            self.roles(&c.proxies, &join(&p, &[k("proxies")]));
            if let Some(r) = &c.proxy_rule {
                self.rule(r, join(&p, &[k("proxy_rule")]));
            }
            if let Some(e) = &c.proxy_exception {
                self.condition(e, join(&p, &[k("proxy_exception")]));
            }
            if let Some(e) = &c.forced_upgrade_mode {
                self.condition(e, join(&p, &[k("forced_upgrade_mode")]));
            }
            let ev = &c.events;
            let codes = [
                ("new_instance", ev.new_instance.as_deref()),
                ("backup_connected", Some(ev.backup_connected.as_str())),
                ("backup_to_older", ev.backup_to_older.as_deref()),
                ("initialized", ev.initialized.as_deref()),
                (
                    "upgrade_mode_requested",
                    ev.upgrade_mode_requested.as_deref(),
                ),
                ("upgrade_mode", Some(ev.upgrade_mode.as_str())),
                ("ready_same_db", Some(ev.ready_same_db.as_str())),
                ("ready_db_upgraded", Some(ev.ready_db_upgraded.as_str())),
            ];
            for (key, code) in codes {
                if code.is_some_and(|c| c.trim().is_empty()) {
                    self.add(
                        join(&p, &[k("events"), k(key)]),
                        "an event code is empty",
                        None,
                    );
                }
            }
            if c.forced_upgrade_mode.is_some() && ev.upgrade_mode_requested.is_none() {
                self.add(
                    join(&p, &[k("forced_upgrade_mode")]),
                    "a forced upgrade mode needs `events.upgrade_mode_requested` (the event it logs)",
                    None,
                );
            }
            self.range(c.init_min, join(&p, &[k("init_min")]));
            self.range(c.reconnect_s, join(&p, &[k("reconnect_s")]));
            for f in [&c.schema_fact, &c.clients_fact].into_iter().flatten() {
                self.fact(f, p.clone());
            }
        }
        if let Some(c) = &t.collector {
            let p = join(&base, &[k("collector")]);
            self.rule(&c.rule, join(&p, &[k("rule")]));
            self.roles(&c.servers, &join(&p, &[k("servers")]));
            self.roles(&c.linked_roles, &join(&p, &[k("linked_roles")]));
            self.fact(&c.sources_fact, join(&p, &[k("sources_fact")]));
            if let Some(f) = &c.interval_fact {
                self.fact(f, join(&p, &[k("interval_fact")]));
            }
            if let Some(r) = &c.dual_source_rule {
                self.rule(r, join(&p, &[k("dual_source_rule")]));
            }
            if let Some(f) = &c.dual_source_fact {
                self.fact(f, join(&p, &[k("dual_source_fact")]));
            }
            if !(c.interval_min.is_finite() && c.interval_min > 0.0) {
                self.add(
                    join(&p, &[k("interval_min")]),
                    "interval_min must be positive",
                    None,
                );
            }
        }
        for (n, d) in t.dependencies.iter().enumerate() {
            let p = join(&base, &[k("dependency"), i(n)]);
            self.rule(&d.rule, join(&p, &[k("rule")]));
            self.fact(&d.fact, join(&p, &[k("fact")]));
            if let Some(c) = &d.when {
                self.condition(c, join(&p, &[k("when")]));
            }
        }
        if let Some(u) = &t.user_changes {
            let p = join(&base, &[k("user_changes")]);
            self.rule(&u.rule, join(&p, &[k("rule")]));
            if !t.devices.iter().any(|d| d.name == u.devices) {
                self.add(
                    join(&p, &[k("devices")]),
                    format!("no [[twin.devices]] named `{}`", u.devices),
                    None,
                );
            }
        }
        if let Some(s) = &t.services {
            self.rule(&s.rule, join(&base, &[k("services"), k("rule")]));
        }
        if let Some(h) = &t.health {
            self.rule(&h.rule, join(&base, &[k("health"), k("rule")]));
            if let Some(f) = &h.healthy_fact {
                self.fact(f, join(&base, &[k("health"), k("healthy_fact")]));
            }
            self.range(
                h.healthy_after_s,
                join(&base, &[k("health"), k("healthy_after_s")]),
            );
        }
        for (n, o) in t.observe.iter().enumerate() {
            let p = join(&base, &[k("observe"), i(n)]);
            self.fact(&o.fact, join(&p, &[k("fact")]));
            self.roles(&o.serving_any, &join(&p, &[k("serving_any")]));
        }
    }

    fn selector(&mut self, s: &StepSelector, steps: &BTreeSet<&str>, path: Path) {
        for (n, id) in s.step.iter().enumerate() {
            if !steps.contains(id.as_str()) {
                self.add(
                    join(&path, &[k("step"), i(n)]),
                    format!("no step `{id}` in this procedure"),
                    None,
                );
            }
        }
        self.roles(&s.roles, &join(&path, &[k("roles")]));
    }

    /// A template: its placeholders must be known; facts declared; probes declared (and, in a
    /// probe's own command, declared before it: `probes` are the ones it may use).
    fn template(&mut self, t: &str, probes: &[&str], path: Path) {
        match parse_template(t) {
            Err(e) => self.add(path, format!("bad template: {e}"), None),
            Ok(pieces) => {
                for p in pieces {
                    match p {
                        Piece::Fact(f) => self.fact(&f, path.clone()),
                        Piece::Probe(name) if !probes.contains(&name.as_str()) => {
                            let help = if probes.is_empty() {
                                "declare it in an [[ssh.probe]] table (a probe's command may use only the probes declared before it)".to_string()
                            } else {
                                format!("probes usable here: {}", probes.join(", "))
                            };
                            self.add(path.clone(), format!("unknown probe `{name}`"), Some(help));
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// A regex that must compile and have the named captures `groups`.
    fn regex(&mut self, re: &str, groups: &[&str], path: Path) {
        match regex::Regex::new(re) {
            Err(e) => {
                let first = e.to_string();
                let first = first.lines().last().unwrap_or("").trim().to_string();
                self.add(
                    path,
                    format!("bad regex: {first}"),
                    Some(format!("the regex: {re}")),
                )
            }
            Ok(r) => {
                for g in groups {
                    if !r.capture_names().flatten().any(|n| n == *g) {
                        self.add(
                            path.clone(),
                            format!("the regex has no named capture `{g}`"),
                            Some(format!("write (?P<{g}>...) around the part to read")),
                        );
                    }
                }
            }
        }
    }

    /// `[discover]`: the listing's row regex names each node; role rules test its captures
    /// and name the profile's roles; readings set the version or a declared fact, read in a
    /// way that fits its type.
    fn discover_section(&mut self) {
        use ferry_model::discover::VERSION;
        let spec = &self.profile.discover;
        if spec.is_empty() {
            return;
        }
        let mut captures: Vec<String> = Vec::new();
        match &spec.nodes {
            Some(l) => {
                let path = vec![k("discover"), k("nodes")];
                if l.command.trim().is_empty() {
                    self.add(
                        join(&path, &[k("command")]),
                        "the listing has no command",
                        None,
                    );
                }
                self.regex(&l.row, &["name"], join(&path, &[k("row")]));
                if let Ok(r) = regex::Regex::new(&l.row) {
                    captures = r.capture_names().flatten().map(str::to_string).collect();
                }
            }
            None => self.add(
                vec![k("discover")],
                "[discover] has no `nodes`: the command that lists the cluster's nodes",
                Some("nodes = { command = \"...\", row = '(?P<name>...)' }".into()),
            ),
        }
        for (n, r) in spec.roles.iter().enumerate() {
            let path = vec![k("discover"), k("role"), i(n)];
            self.role(&r.role, join(&path, &[k("role")]));
            for (name, re) in &r.when {
                let at = join(&path, &[k("when"), k(name)]);
                self.regex(re, &[], at.clone());
                if spec.nodes.is_some() && !captures.iter().any(|c| c == name) {
                    self.add(
                        at,
                        format!("the listing's `row` has no capture `{name}`"),
                        Some(format!("captures of the row: {}", captures.join(", "))),
                    );
                }
            }
        }
        if spec.nodes.is_some() && spec.roles.is_empty() {
            self.add(
                vec![k("discover")],
                "[discover] gives no [[discover.role]]: no listed node could have a role",
                None,
            );
        }
        let mut version_read = false;
        for (n, r) in spec.reads.iter().enumerate() {
            let path = vec![k("discover"), k("read"), i(n)];
            if r.command.trim().is_empty() {
                self.add(
                    join(&path, &[k("command")]),
                    "the reading has no command",
                    None,
                );
            }
            let kind = if r.fact == VERSION {
                version_read = true;
                Some(FactType::String)
            } else {
                match self.profile.facts.iter().find(|f| f.name == r.fact) {
                    Some(f) => Some(f.kind),
                    None => {
                        self.add(
                            join(&path, &[k("fact")]),
                            format!("fact `{}` is not declared", r.fact),
                            Some(format!(
                                "a reading sets `{VERSION}` or a fact of the profile's [[fact]] tables: {}",
                                self.facts.iter().copied().collect::<Vec<_>>().join(", ")
                            )),
                        );
                        None
                    }
                }
            };
            match (&r.regex, &r.table) {
                (Some(re), None) => self.regex(re, &["value"], join(&path, &[k("regex")])),
                (None, Some(t)) => {
                    let tp = join(&path, &[k("table")]);
                    self.regex(&t.after, &[], join(&tp, &[k("after")]));
                    self.regex(&t.key, &["key"], join(&tp, &[k("key")]));
                    self.regex(&t.value, &["value"], join(&tp, &[k("value")]));
                }
                _ => self.add(
                    path.clone(),
                    format!("the reading of `{}` needs exactly one of `regex` and `table`", r.fact),
                    Some("regex = \"...(?P<value>...)...\" reads the node's own output; table = { after, key, value } reads the row of the node's name".into()),
                ),
            }
            let Some(kind) = kind else { continue };
            if r.all && (kind != FactType::List || r.table.is_some()) {
                self.add(
                    join(&path, &[k("all")]),
                    format!(
                        "`all` reads a list from every match of `regex`: `{}` is not a list fact",
                        r.fact
                    ),
                    None,
                );
            }
            if kind == FactType::List && !r.all {
                let at = if r.regex.is_some() {
                    join(&path, &[k("regex")])
                } else {
                    path.clone()
                };
                self.add(
                    at,
                    format!(
                        "`{}` is a list fact: read it with `regex` and `all = true`",
                        r.fact
                    ),
                    None,
                );
            }
            if matches!(kind, FactType::Table) {
                self.add(
                    join(&path, &[k("fact")]),
                    format!("`{}` is a table fact: a reading cannot set it", r.fact),
                    None,
                );
            }
            for (key, set) in [("scale", r.scale.is_some()), ("digits", r.digits.is_some())] {
                if set && kind != FactType::Number {
                    self.add(
                        join(&path, &[k(key)]),
                        format!("`{key}` is for number facts; `{}` is not one", r.fact),
                        None,
                    );
                }
            }
        }
        if !version_read {
            self.add(
                vec![k("discover")],
                format!("[discover] has no [[discover.read]] of `{VERSION}`: a discovered node needs its version"),
                None,
            );
        }
    }

    fn ssh_section(&mut self) {
        let spec = &self.profile.ssh;
        for (n, re) in spec.fail_on.iter().enumerate() {
            self.regex(re, &[], vec![k("ssh"), k("fail_on"), i(n)]);
        }
        let mut seen: Vec<&str> = Vec::new();
        for (n, p) in spec.probes.iter().enumerate() {
            let path = vec![k("ssh"), k("probe"), i(n)];
            if p.name.is_empty() || seen.contains(&p.name.as_str()) {
                self.add(
                    join(&path, &[k("name")]),
                    format!("probe name `{}` is empty or used twice", p.name),
                    None,
                );
            }
            self.template(&p.command, &seen, join(&path, &[k("command")]));
            if p.command.trim().is_empty() {
                self.add(
                    join(&path, &[k("command")]),
                    "the probe has no command",
                    None,
                );
            }
            match (&p.regex, &p.table) {
                (Some(re), None) => self.regex(re, &["value"], join(&path, &[k("regex")])),
                (None, Some(t)) => {
                    let tp = join(&path, &[k("table")]);
                    self.regex(&t.after, &[], join(&tp, &[k("after")]));
                    self.regex(&t.key, &["key"], join(&tp, &[k("key")]));
                    self.regex(&t.value, &["value"], join(&tp, &[k("value")]));
                }
                _ => self.add(
                    path.clone(),
                    format!("probe `{}` needs exactly one of `regex` and `table`", p.name),
                    Some("regex = \"...(?P<value>...)...\" reads one value; table = { after, key, value } reads a value per row".into()),
                ),
            }
            seen.push(&p.name);
        }
        for (key, re) in [("prompt", &spec.prompt), ("question", &spec.question)] {
            if let Some(re) = re {
                self.regex(re, &[], vec![k("ssh"), k(key)]);
            }
        }
        if spec.question.is_some() && spec.prompt.is_none() {
            self.add(
                vec![k("ssh"), k("question")],
                "`question` is for interactive shells: set `prompt` too",
                None,
            );
        }
        if let Some(name) = &spec.version_probe {
            if self.probe_ref(name, vec![k("ssh"), k("version_probe")]) == Some(true) {
                self.add(
                    vec![k("ssh"), k("version_probe")],
                    format!("probe `{name}` reads a table, not a version"),
                    None,
                );
            }
        }
        if !spec.dialogues.is_empty() && spec.prompt.is_none() {
            self.add(
                vec![k("ssh"), k("dialogue")],
                "dialogues need an interactive shell: set `prompt` in [ssh] (the CLI's prompt, a regex)",
                None,
            );
        }
        let probes: Vec<&str> = spec.probes.iter().map(|p| p.name.as_str()).collect();
        let mut names: Vec<&str> = Vec::new();
        for (n, d) in spec.dialogues.iter().enumerate() {
            let path = vec![k("ssh"), k("dialogue"), i(n)];
            if d.name.is_empty() || names.contains(&d.name.as_str()) {
                self.add(
                    join(&path, &[k("name")]),
                    format!("dialogue name `{}` is empty or used twice", d.name),
                    None,
                );
            }
            names.push(&d.name);
            self.seconds(d.timeout_seconds, join(&path, &[k("timeout_seconds")]));
            if d.variants.is_empty() {
                self.add(
                    path.clone(),
                    format!("dialogue `{}` has no [[ssh.dialogue.variant]]", d.name),
                    None,
                );
            }
            for (m, v) in d.variants.iter().enumerate() {
                let vp = join(&path, &[k("variant"), i(m)]);
                if let Some(w) = &v.when {
                    if spec.version_probe.is_none() {
                        self.add(
                            join(&vp, &[k("when")]),
                            "a variant's `when` reads the node's running version: set `version_probe` in [ssh]",
                            None,
                        );
                    }
                    let wp = join(&vp, &[k("when"), k("version")]);
                    for (key, l) in [("lt", &w.version.lt), ("ge", &w.version.ge)] {
                        if let Some(l) = l {
                            if ferry_model::VendorVersion::parse(l).is_err() {
                                self.add(
                                    join(&wp, &[k(key)]),
                                    format!("`{l}` is not a version"),
                                    None,
                                );
                            }
                        }
                    }
                }
                self.regex(&v.success, &[], join(&vp, &[k("success")]));
                if v.prompts.is_empty() {
                    self.add(vp.clone(), "a variant needs at least one prompt", None);
                }
                for (j, pr) in v.prompts.iter().enumerate() {
                    let pp = join(&vp, &[k("prompt"), i(j)]);
                    self.regex(&pr.expect, &[], join(&pp, &[k("expect")]));
                    self.seconds(pr.timeout_seconds, join(&pp, &[k("timeout_seconds")]));
                    match (&pr.answer, &pr.choose) {
                        (Some(a), None) => self.template(a, &probes, join(&pp, &[k("answer")])),
                        (None, Some(c)) => {
                            self.template(&c.line, &probes, join(&pp, &[k("choose"), k("line")]));
                            self.regex(&c.number, &["number"], join(&pp, &[k("choose"), k("number")]));
                        }
                        _ => self.add(
                            pp.clone(),
                            "a prompt needs exactly one of `answer` and `choose`",
                            Some("answer = \"yes\" answers it; choose = { line = \"{fact.NAME}\", number = '^\\s*(?P<number>\\d+)\\)' } picks the listed line naming a text".into()),
                        ),
                    }
                }
            }
        }
    }

    /// Seconds to wait: positive and at most 30 days.
    fn seconds(&mut self, s: Option<f64>, path: Path) {
        if let Some(s) = s {
            if !(s.is_finite() && s > 0.0 && s <= 2_592_000.0) {
                self.add(
                    path,
                    "seconds must be above 0 and at most 2592000 (30 days)",
                    None,
                );
            }
        }
    }

    fn probe_ref(&mut self, name: &str, path: Path) -> Option<bool> {
        match self.profile.ssh.probe(name) {
            Some(p) => Some(p.table.is_some()),
            None => {
                let names: Vec<&str> = self
                    .profile
                    .ssh
                    .probes
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect();
                let help = if names.is_empty() {
                    "declare probes in [[ssh.probe]] tables".to_string()
                } else {
                    format!("probes of this profile: {}", names.join(", "))
                };
                self.add(path, format!("unknown probe `{name}`"), Some(help));
                None
            }
        }
    }

    fn step_ssh(&mut self, x: &StepSsh, cluster_scope: bool, kind: StepKind, path: Path) {
        let probes: Vec<&str> = self
            .profile
            .ssh
            .probes
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        self.roles(&x.on, &join(&path, &[k("on")]));
        if cluster_scope && x.on.is_empty() && (!x.commands.is_empty() || !x.verify.is_empty()) {
            self.add(
                join(&path, &[k("on")]),
                "a cluster-wide step's commands and checks need `on`: the roles whose first node runs them",
                None,
            );
        }
        if !cluster_scope && !x.on.is_empty() {
            self.add(
                join(&path, &[k("on")]),
                "`on` is for cluster-wide steps: a node step runs on its own node",
                None,
            );
        }
        for (n, c) in x.commands.iter().enumerate() {
            let cp = join(&path, &[k("commands"), i(n)]);
            if c.run.trim().is_empty() {
                self.add(cp.clone(), "empty command", None);
            }
            self.template(&c.run, &probes, cp.clone());
            for (m, line) in c.input.iter().enumerate() {
                self.template(line, &probes, join(&cp, &[k("input"), i(m)]));
            }
            let interactive = self.profile.ssh.prompt.is_some();
            if interactive && !c.input.is_empty() {
                self.add(
                    join(&cp, &[k("input")]),
                    "`input` answers prompts blindly: in an interactive shell (`prompt` in [ssh]) give the command a `dialogue`",
                    None,
                );
            }
            if let Some(d) = &c.dialogue {
                if !interactive {
                    self.add(
                        join(&cp, &[k("dialogue")]),
                        "dialogues need an interactive shell: set `prompt` in [ssh]",
                        None,
                    );
                }
                if self.profile.ssh.dialogue(d).is_none() {
                    let known: Vec<&str> = self
                        .profile
                        .ssh
                        .dialogues
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect();
                    self.add(
                        join(&cp, &[k("dialogue")]),
                        format!("unknown dialogue `{d}`"),
                        Some(if known.is_empty() {
                            "declare it in an [[ssh.dialogue]] table".into()
                        } else {
                            format!("dialogues of this profile: {}", known.join(", "))
                        }),
                    );
                }
            }
        }
        if let Some(m) = x.timeout_minutes {
            if !(m.is_finite() && m > 0.0) {
                self.add(
                    join(&path, &[k("timeout_minutes")]),
                    "timeout_minutes must be a positive number",
                    None,
                );
            }
        }
        for (n, t) in x.verify.iter().enumerate() {
            self.probe_test(t, &probes, join(&path, &[k("verify"), i(n)]));
        }
        for (n, w) in x.wait.iter().enumerate() {
            self.probe_wait(w, &probes, cluster_scope, join(&path, &[k("wait"), i(n)]));
        }
        if x.skip_when_verified && x.verify.is_empty() {
            self.add(
                join(&path, &[k("skip_when_verified")]),
                "skip_when_verified needs `verify` tests",
                None,
            );
        }
        if kind == StepKind::Gate && x.wait.is_empty() {
            self.add(
                path.clone(),
                "a gate's ssh table needs a `wait`: what to poll until the gate holds",
                None,
            );
        }
    }

    fn probe_test(&mut self, t: &ProbeTest, probes: &[&str], path: Path) {
        let table = self.probe_ref(&t.probe, join(&path, &[k("probe")]));
        self.template(&t.equals, probes, join(&path, &[k("equals")]));
        if let Some(r) = &t.row {
            self.template(r, probes, join(&path, &[k("row")]));
            if table == Some(false) {
                self.add(
                    join(&path, &[k("row")]),
                    format!("probe `{}` reads one value, not a table", t.probe),
                    None,
                );
            }
        }
    }

    fn probe_wait(&mut self, w: &ProbeWait, probes: &[&str], cluster_scope: bool, path: Path) {
        let table = self.probe_ref(&w.probe, join(&path, &[k("probe")]));
        self.roles(&w.roles, &join(&path, &[k("roles")]));
        self.roles(&w.from, &join(&path, &[k("from")]));
        self.template(&w.equals, probes, join(&path, &[k("equals")]));
        if let Some(r) = &w.row {
            self.template(r, probes, join(&path, &[k("row")]));
        }
        if (!w.from.is_empty() || w.row.is_some()) && table == Some(false) {
            self.add(
                path.clone(),
                format!(
                    "`from` and `row` read a table, and probe `{}` reads one value",
                    w.probe
                ),
                None,
            );
        }
        if w.roles.is_empty() && cluster_scope {
            self.add(
                join(&path, &[k("roles")]),
                "a cluster-wide step's wait needs `roles`: the nodes whose values must hold",
                None,
            );
        }
        if let Some(e) = w.every_seconds {
            if !(e.is_finite() && e > 0.0) {
                self.add(
                    join(&path, &[k("every_seconds")]),
                    "every_seconds must be a positive number",
                    None,
                );
            }
        }
    }

    /// A step's `stage`: only a step of the upgrade procedure whose node keeps serving may run
    /// ahead of the window, under a rule.
    fn stage(
        &mut self,
        step: &ferry_model::profile::StepTemplate,
        stage: &ferry_model::profile::StageRule,
        path: Path,
    ) {
        if self.in_rollback {
            self.add(
                path,
                "a rollback step never runs ahead of the window: `stage` belongs to the upgrade procedure",
                None,
            );
            return;
        }
        if step.impact == ferry_model::Impact::Down {
            self.add(
                path.clone(),
                format!(
                    "step `{}` takes its node down (impact = \"down\"): it never runs ahead of the window",
                    step.id
                ),
                Some("only a step during which the node keeps serving may be staged".into()),
            );
        }
        if step.phase == ferry_model::Phase::Prepare {
            self.add(
                path.clone(),
                format!(
                    "step `{}` is a prepare step: it runs before the window already",
                    step.id
                ),
                None,
            );
        }
        if step.kind == StepKind::Pause {
            self.add(
                path.clone(),
                format!(
                    "step `{}` is a pause (a go/no-go of the window): it is not staged",
                    step.id
                ),
                None,
            );
        }
        self.rule(&stage.rule, join(&path, &[k("rule")]));
        if let Some(c) = &stage.when {
            self.condition(c, join(&path, &[k("when")]));
        }
    }

    fn procedure(&mut self, proc: &Procedure, base: &str) {
        let mut ids = BTreeSet::new();
        for (n, s) in proc.steps.iter().enumerate() {
            let path = vec![k(base), k("step"), i(n)];
            if !ids.insert(s.id.as_str()) {
                self.add(
                    join(&path, &[k("id")]),
                    format!("duplicate step id `{}`", s.id),
                    None,
                );
            }
            if s.id.is_empty() || s.id.contains('/') {
                self.add(
                    join(&path, &[k("id")]),
                    "step id must be non-empty and contain no `/`",
                    None,
                );
            }
            self.roles(&s.roles, &join(&path, &[k("roles")]));
            if !(s.minutes.is_finite() && s.minutes >= 0.0) {
                self.add(
                    join(&path, &[k("minutes")]),
                    format!("minutes must be a non-negative number, found {}", s.minutes),
                    None,
                );
            }
            if let Some(pf) = &s.per_fact {
                self.fact(&pf.fact, join(&path, &[k("per_fact"), k("fact")]));
                if !(pf.per > 0.0 && pf.minutes.is_finite() && pf.minutes >= 0.0) {
                    self.add(
                        join(&path, &[k("per_fact")]),
                        "per_fact needs per > 0 and minutes >= 0",
                        None,
                    );
                }
            }
            if s.kind == StepKind::Sync {
                self.add(
                    join(&path, &[k("kind")]),
                    "kind `sync` is the planner's own (a sync point it puts between large sets of ordered steps)",
                    Some("a profile's step is an `action`, a `gate` or a `pause`".into()),
                );
            }
            if s.rules.is_empty() {
                self.add(
                    join(&path, &[k("rules")]),
                    format!("step `{}` names no rule ID", s.id),
                    Some("every step carries the rule it comes from, so that its place in the plan can be explained".into()),
                );
            }
            for (m, r) in s.rules.iter().enumerate() {
                self.rule(r, join(&path, &[k("rules"), i(m)]));
            }
            if let Some(c) = &s.when {
                self.condition(c, join(&path, &[k("when")]));
            }
            self.effects(&s.effects, join(&path, &[k("effects")]));
            if let Some(x) = &s.ssh {
                let cluster_scope = s.scope == ferry_model::profile::Scope::Cluster;
                self.step_ssh(x, cluster_scope, s.kind, join(&path, &[k("ssh")]));
            }
            if let Some(m) = s.timeout_minutes {
                if !(m.is_finite() && m > 0.0) {
                    self.add(
                        join(&path, &[k("timeout_minutes")]),
                        "timeout_minutes must be a positive number",
                        None,
                    );
                }
            }
            if let Some(stage) = &s.stage {
                self.stage(s, stage, join(&path, &[k("stage")]));
            }
        }
        // What a `stage.with` names: steps of this procedure.
        for (n, s) in proc.steps.iter().enumerate() {
            let Some(stage) = &s.stage else { continue };
            for (m, id) in stage.with.iter().enumerate() {
                if !ids.contains(id.as_str()) {
                    self.add(
                        vec![k(base), k("step"), i(n), k("stage"), k("with"), i(m)],
                        format!("no step `{id}` in this procedure"),
                        None,
                    );
                }
            }
        }
        for (n, o) in proc.orders.iter().enumerate() {
            let path = vec![k(base), k("order"), i(n)];
            self.rule(&o.rule, join(&path, &[k("rule")]));
            self.selector(&o.before, &ids, join(&path, &[k("before")]));
            self.selector(&o.then, &ids, join(&path, &[k("then")]));
            if let Some(c) = &o.when {
                self.condition(c, join(&path, &[k("when")]));
            }
            if let Some(y) = &o.yields_to {
                let p = join(&path, &[k("yields_to"), k("rule")]);
                self.rule(&y.rule, p.clone());
                if !proc
                    .limits
                    .iter()
                    .any(|l| l.rule == y.rule && l.capacity.is_some())
                {
                    self.add(
                        p,
                        format!(
                            "no limit of rule `{}` with a capacity in this procedure",
                            y.rule
                        ),
                        Some("an order gives way only to a capacity limit of its procedure".into()),
                    );
                }
            }
        }
        for (n, s) in proc.sequences.iter().enumerate() {
            let path = vec![k(base), k("sequence"), i(n)];
            self.rule(&s.rule, join(&path, &[k("rule")]));
            self.roles(&s.roles, &join(&path, &[k("roles")]));
            if s.steps.is_empty() {
                self.add(
                    join(&path, &[k("steps")]),
                    "a sequence needs at least one step",
                    None,
                );
            }
            for (m, id) in s.steps.iter().enumerate() {
                if !ids.contains(id.as_str()) {
                    self.add(
                        join(&path, &[k("steps"), i(m)]),
                        format!("no step `{id}` in this procedure"),
                        None,
                    );
                }
            }
            if let Some(c) = &s.when {
                self.condition(c, join(&path, &[k("when")]));
            }
        }
        for (n, b) in proc.batches.iter().enumerate() {
            let path = vec![k(base), k("batch"), i(n)];
            self.rule(&b.rule, join(&path, &[k("rule")]));
            self.roles(&b.roles, &join(&path, &[k("roles")]));
            for (key, empty) in [
                ("roles", b.roles.is_empty()),
                ("steps", b.steps.is_empty()),
                ("devices", b.devices.is_empty()),
            ] {
                if empty {
                    self.add(
                        join(&path, &[k(key)]),
                        format!("a batch needs at least one of its `{key}`"),
                        None,
                    );
                }
            }
            for (m, id) in b.steps.iter().enumerate() {
                if !ids.contains(id.as_str()) {
                    self.add(
                        join(&path, &[k("steps"), i(m)]),
                        format!("no step `{id}` in this procedure"),
                        None,
                    );
                }
            }
            for (m, d) in b.devices.iter().enumerate() {
                if !self.profile.twin.devices.iter().any(|x| &x.name == d) {
                    let names: Vec<&str> = self
                        .profile
                        .twin
                        .devices
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect();
                    self.add(
                        join(&path, &[k("devices"), i(m)]),
                        format!("no [[twin.devices]] named `{d}`"),
                        Some(if names.is_empty() {
                            "declare the devices the batches keep served in a [[twin.devices]] table".into()
                        } else {
                            format!("devices of this profile: {}", names.join(", "))
                        }),
                    );
                }
            }
            if let Some(c) = &b.when {
                self.condition(c, join(&path, &[k("when")]));
            }
        }
        for (n, l) in proc.limits.iter().enumerate() {
            let path = vec![k(base), k("limit"), i(n)];
            self.rule(&l.rule, join(&path, &[k("rule")]));
            self.selector(&l.steps, &ids, join(&path, &[k("steps")]));
            if l.max_concurrent == Some(0) {
                self.add(
                    join(&path, &[k("max_concurrent")]),
                    "max_concurrent must be at least 1",
                    None,
                );
            }
            if let Some(f) = &l.per_fact {
                self.fact(f, join(&path, &[k("per_fact")]));
                if l.max_concurrent.is_none() {
                    self.add(
                        join(&path, &[k("per_fact")]),
                        "per_fact goes with max_concurrent",
                        None,
                    );
                }
            }
            if l.max_concurrent.is_none() && l.capacity.is_none() {
                self.add(
                    path.clone(),
                    "a limit needs max_concurrent or capacity",
                    None,
                );
            }
            if let Some(c) = &l.capacity {
                self.fact(
                    &c.weight_fact,
                    join(&path, &[k("capacity"), k("weight_fact")]),
                );
                if let Some(f) = &c.per_fact {
                    self.fact(f, join(&path, &[k("capacity"), k("per_fact")]));
                }
                if let Some(h) = &c.hold {
                    let hp = join(&path, &[k("capacity"), k("hold")]);
                    for (key, list) in [("from", &h.from), ("until", &h.until)] {
                        if list.is_empty() {
                            self.add(
                                join(&hp, &[k(key)]),
                                format!("a hold needs at least one `{key}` step"),
                                None,
                            );
                        }
                        for (m, id) in list.iter().enumerate() {
                            if !ids.contains(id.as_str()) {
                                self.add(
                                    join(&hp, &[k(key), i(m)]),
                                    format!("no step `{id}` in this procedure"),
                                    None,
                                );
                            }
                        }
                    }
                    for (m, id) in h.from.iter().enumerate() {
                        if ids.contains(id.as_str()) && !l.steps.step.contains(id) {
                            self.add(
                                join(&hp, &[k("from"), i(m)]),
                                format!("`{id}` is not one of the limit's steps"),
                                Some("a load is held only from a step of the limit".into()),
                            );
                        }
                    }
                    if let Some(x) = h.max_hours {
                        if !(x > 0.0 && x.is_finite()) {
                            self.add(
                                join(&hp, &[k("max_hours")]),
                                "max_hours must be a positive number of hours",
                                None,
                            );
                        }
                    }
                    if let Some(f) = &h.max_hours_fact {
                        self.number_fact(f, join(&hp, &[k("max_hours_fact")]));
                    }
                }
            }
            if let Some(c) = &l.when {
                self.condition(c, join(&path, &[k("when")]));
            }
        }
    }
}

/// Parses and validates one profile. `origin` is how errors name the file.
pub fn load_profile(origin: &str, text: &str) -> Result<Profile, InputErrors> {
    let src = SourceFile { name: origin, text };
    crate::diagnostic::checked_toml(&src, crate::ranges::FileKind::Profile)?;
    let profile: Profile = toml::from_str(text).map_err(|e| InputErrors {
        file: origin.to_string(),
        errors: vec![src.from_toml(&e)],
    })?;
    let problems = validate_profile(&profile);
    if problems.is_empty() {
        return Ok(profile);
    }
    Err(located(&src, problems))
}

fn validate_profile(profile: &Profile) -> Vec<Problem> {
    let mut strategies: BTreeSet<String> = BASE_STRATEGIES.iter().map(|s| s.to_string()).collect();
    strategies.extend(profile.profile.strategies.iter().cloned());
    let mut cx = Ctx {
        profile,
        roles: profile.roles.iter().map(|r| r.name.as_str()).collect(),
        facts: profile.facts.iter().map(|f| f.name.as_str()).collect(),
        strategies,
        snapshots: profile
            .procedure
            .steps
            .iter()
            .chain(&profile.rollback.steps)
            .any(|s| takes_snapshot(&s.effects)),
        problems: Vec::new(),
        in_rollback: false,
    };
    if profile.profile.name.is_empty() {
        cx.add(vec![k("profile"), k("name")], "profile name is empty", None);
    }
    for (n, r) in profile.profile.version_roles.iter().enumerate() {
        cx.role(r, vec![k("profile"), k("version_roles"), i(n)]);
    }
    for (n, r) in profile.profile.renamed_strategies.iter().enumerate() {
        let path = vec![k("profile"), k("renamed_strategy"), i(n)];
        if cx.strategies.contains(&r.name) {
            cx.add(
                join(&path, &[k("name")]),
                format!(
                    "strategy `{}` is offered: it cannot also be a renamed one",
                    r.name
                ),
                Some("remove it from `strategies`, or remove this entry".into()),
            );
        }
        if !cx.strategies.contains(&r.now) {
            let help = format!(
                "strategies: {}",
                cx.strategies.iter().cloned().collect::<Vec<_>>().join(", ")
            );
            cx.add(
                join(&path, &[k("now")]),
                format!("unknown strategy `{}`", r.now),
                Some(help),
            );
        }
    }
    if profile.roles.is_empty() {
        cx.add(
            vec![k("profile")],
            "a profile needs at least one [[role]]",
            None,
        );
    }
    let mut seen = BTreeSet::new();
    for (n, r) in profile.roles.iter().enumerate() {
        if !seen.insert(r.name.as_str()) {
            cx.add(
                vec![k("role"), i(n), k("name")],
                format!("duplicate role `{}`", r.name),
                None,
            );
        }
        if let Some(rule) = &r.rule {
            cx.rule(rule, vec![k("role"), i(n), k("rule")]);
        }
        if r.max.is_some_and(|m| m < r.min) {
            cx.add(vec![k("role"), i(n), k("max")], "max is below min", None);
        }
    }
    let mut seen = BTreeSet::new();
    for (n, f) in profile.facts.iter().enumerate() {
        if !seen.insert(f.name.as_str()) {
            cx.add(
                vec![k("fact"), i(n), k("name")],
                format!("duplicate fact `{}`", f.name),
                None,
            );
        }
        if !f.values.is_empty() && f.kind != ferry_model::profile::FactType::String {
            cx.add(
                vec![k("fact"), i(n), k("values")],
                format!(
                    "fact `{}` is {}: only a string fact may list its values",
                    f.name,
                    f.kind.as_str()
                ),
                None,
            );
        }
        let mut values = BTreeSet::new();
        for (m, v) in f.values.iter().enumerate() {
            if !values.insert(v.as_str()) {
                cx.add(
                    vec![k("fact"), i(n), k("values"), i(m)],
                    format!("duplicate value `{v}` of fact `{}`", f.name),
                    None,
                );
            }
        }
    }
    let v = &profile.versions;
    if let Some(r) = &v.rule {
        cx.rule(r, vec![k("versions"), k("rule")]);
    }
    for (n, e) in v.edges.iter().enumerate() {
        let path = vec![k("versions"), k("edge"), i(n)];
        for (m, f) in e.from.iter().enumerate() {
            cx.pattern(f, join(&path, &[k("from"), i(m)]));
        }
        cx.pattern(&e.to, join(&path, &[k("to")]));
        cx.rule(&e.rule, join(&path, &[k("rule")]));
    }
    for (n, h) in v.hops.iter().enumerate() {
        let path = vec![k("versions"), k("hop"), i(n)];
        for (m, f) in h.from.iter().enumerate() {
            cx.pattern(f, join(&path, &[k("from"), i(m)]));
        }
        cx.pattern(&h.to, join(&path, &[k("to")]));
        cx.version(&h.via, join(&path, &[k("via")]));
        cx.rule(&h.rule, join(&path, &[k("rule")]));
    }
    for (n, o) in v.os.iter().enumerate() {
        cx.pattern(
            &o.versions,
            vec![k("versions"), k("os"), i(n), k("versions")],
        );
    }
    for (n, t) in v.marketing_tags.iter().enumerate() {
        if t.is_empty() || !t.chars().all(|c| c.is_ascii_lowercase()) {
            cx.add(
                vec![k("versions"), k("marketing_tags"), i(n)],
                format!("`{t}` is not a version tag: a tag is lowercase letters (`su` in 14SU3)"),
                None,
            );
        }
    }
    if let Some(b) = &v.build_form {
        cx.version(b, vec![k("versions"), k("build_form")]);
        if v.is_marketing(b) {
            cx.add(
                vec![k("versions"), k("build_form")],
                format!("the build form `{b}` carries a marketing tag itself"),
                None,
            );
        }
    }
    for (name, build) in &v.aliases {
        let path = vec![k("versions"), k("aliases"), k(name)];
        cx.version(build, path.clone());
        if v.is_marketing(build) {
            cx.add(
                path,
                format!(
                    "`{name}` maps to `{build}`, a marketing name again: map it to a build number"
                ),
                v.build_form
                    .as_ref()
                    .map(|b| format!("a build number looks like {b}")),
            );
        }
    }
    if profile.upgrade_types.is_empty() {
        cx.add(
            vec![k("profile")],
            "a profile needs at least one [[upgrade_type]]",
            None,
        );
    }
    for (n, u) in profile.upgrade_types.iter().enumerate() {
        let path = vec![k("upgrade_type"), i(n)];
        cx.rule(&u.rule, join(&path, &[k("rule")]));
        if let Some(c) = &u.when {
            cx.condition(c, join(&path, &[k("when")]));
        } else if n + 1 != profile.upgrade_types.len() {
            cx.add(
                join(&path, &[k("when")]),
                "only the last [[upgrade_type]] may omit `when` (it is the fallback)",
                None,
            );
        }
    }
    if profile
        .upgrade_types
        .last()
        .is_some_and(|u| u.when.is_some())
    {
        let n = profile.upgrade_types.len() - 1;
        cx.add(
            vec![k("upgrade_type"), i(n), k("when")],
            "the last [[upgrade_type]] must have no `when`, so that every upgrade has a type",
            None,
        );
    }
    cx.procedure(&profile.procedure, "procedure");
    cx.in_rollback = true;
    cx.procedure(&profile.rollback, "rollback");
    cx.in_rollback = false;
    cx.twin(&profile.twin);
    cx.ssh_section();
    cx.discover_section();
    let step_ids: BTreeSet<&str> = profile
        .procedure
        .steps
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    for (n, m) in profile.measures.iter().enumerate() {
        let path = vec![k("measure"), i(n)];
        cx.rule(&m.rule, join(&path, &[k("rule")]));
        for (key, id) in [("from_step", &m.from_step), ("to_step", &m.to_step)] {
            if !step_ids.contains(id.as_str()) {
                cx.add(
                    join(&path, &[k(key)]),
                    format!("no step `{id}` in the procedure"),
                    None,
                );
            }
        }
    }
    let measure_names: BTreeSet<&str> = profile.measures.iter().map(|m| m.name.as_str()).collect();
    for (n, c) in profile.staging_costs.iter().enumerate() {
        let path = vec![k("staging_cost"), i(n)];
        cx.rule(&c.rule, join(&path, &[k("rule")]));
        if let Some(m) = &c.measure {
            if !measure_names.contains(m.as_str()) {
                cx.add(
                    join(&path, &[k("measure")]),
                    format!("no measure `{m}` in this profile"),
                    Some("name a [[measure]] of the profile".into()),
                );
            }
        }
        if let Some(w) = &c.when {
            cx.condition(w, join(&path, &[k("when")]));
        }
    }
    let mut check_ids = BTreeSet::new();
    for (n, c) in profile.checks.iter().enumerate() {
        let path = vec![k("check"), i(n)];
        if !check_ids.insert(c.id.as_str()) {
            cx.add(
                join(&path, &[k("id")]),
                format!("duplicate check id `{}`", c.id),
                None,
            );
        }
        cx.rule(&c.rule, join(&path, &[k("rule")]));
        if let Some(w) = &c.when {
            cx.condition(w, join(&path, &[k("when")]));
        }
        let tp = join(&path, &[k("test")]);
        match &c.test {
            CheckTest::Node(cond) => cx.condition(cond, join(&tp, &[k("node")])),
            CheckTest::Cluster(cond) => cx.condition(cond, join(&tp, &[k("cluster")])),
            CheckTest::VersionsMatch {
                roles, with_roles, ..
            } => {
                cx.roles(roles, &join(&tp, &[k("versions_match"), k("roles")]));
                cx.roles(
                    with_roles,
                    &join(&tp, &[k("versions_match"), k("with_roles")]),
                );
            }
            CheckTest::UniqueAcrossSite { fact } | CheckTest::ClampedParameters { fact } => {
                cx.fact(fact, tp.clone())
            }
            CheckTest::StepWithinFact { step, fact } => {
                if !step_ids.contains(step.as_str()) {
                    cx.add(
                        tp.clone(),
                        format!("no step `{step}` in the procedure"),
                        None,
                    );
                }
                cx.fact(fact, tp.clone());
            }
            CheckTest::FitsWindow {} => {}
            CheckTest::FactsMatch { fact, roles } => {
                cx.fact(fact, join(&tp, &[k("facts_match"), k("fact")]));
                cx.roles(roles, &join(&tp, &[k("facts_match"), k("roles")]));
            }
            CheckTest::MaxAge { fact, roles, .. } => {
                cx.fact(fact, tp.clone());
                cx.roles(roles, &join(&tp, &[k("max_age"), k("roles")]));
            }
        }
    }
    cx.problems
}
