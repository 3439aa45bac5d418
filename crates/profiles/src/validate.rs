//! Profile loading: TOML into `Profile`, then every cross-reference checked (roles, steps,
//! facts, versions, rule IDs), each problem located at its line and key.

use crate::diagnostic::{located, InputErrors, PathSeg, Problem, SourceFile};
use crate::site::BASE_STRATEGIES;
use ferry_model::profile::{CheckTest, Condition, FactTest, Procedure, StepSelector, VersionTest};
use ferry_model::{Profile, VendorVersion, VersionPattern};
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
    problems: Vec<Problem>,
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
            Condition::FirstLeg(_) | Condition::LastLeg(_) => {}
            Condition::AnyNode(t) => {
                self.roles(&t.roles, &join(&path, &[k("any_node"), k("roles")]));
                self.condition(&t.test, join(&path, &[k("any_node"), k("test")]));
            }
        }
    }

    fn fact_test(&mut self, t: &FactTest, path: Path) {
        self.fact(&t.name, join(&path, &[k("name")]));
        if let Some(item) = &t.any_item {
            self.item_test(item, join(&path, &[k("any_item")]));
        }
        self.fact_ops(t, path);
    }

    /// A test on list items: `name` is a field of the items, not a declared fact.
    fn item_test(&mut self, t: &FactTest, path: Path) {
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
        }
        for (n, o) in proc.orders.iter().enumerate() {
            let path = vec![k(base), k("order"), i(n)];
            self.rule(&o.rule, join(&path, &[k("rule")]));
            self.selector(&o.before, &ids, join(&path, &[k("before")]));
            self.selector(&o.then, &ids, join(&path, &[k("then")]));
            if let Some(c) = &o.when {
                self.condition(c, join(&path, &[k("when")]));
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
        problems: Vec::new(),
    };
    if profile.profile.name.is_empty() {
        cx.add(vec![k("profile"), k("name")], "profile name is empty", None);
    }
    for (n, r) in profile.profile.version_roles.iter().enumerate() {
        cx.role(r, vec![k("profile"), k("version_roles"), i(n)]);
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
    cx.procedure(&profile.rollback, "rollback");
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
