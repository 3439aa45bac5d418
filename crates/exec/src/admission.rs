//! One run at a time on a set of nodes: whether a new run, or the resume of one, may act on its
//! nodes now, given the other runs of the same state directory.
//!
//! A run acts on every node of every cluster it has a step in. Two runs share a node when the
//! site gives both an address and the addresses are the same, or otherwise when the node has
//! the same name (a node without an address is known by its name only). Then:
//!
//! - a run that a process carries out now (it holds the run's lock) keeps every other run off
//!   its nodes: a new run, a resume or a rollback there is refused, naming it;
//! - a run that is not complete and not carried out (paused, stopped, failed, or interrupted by
//!   a crash) keeps new `apply` runs off its nodes, unless the operator says `--supersede`:
//!   the new run starts and the unfinished one is marked as superseded by it. A run whose
//!   rollback completed, or that was superseded, is settled. Resuming or rolling back an
//!   unfinished run is what the refusal suggests, so those are not held back by it.
//!
//! The check and the new run's creation and lock happen under the state directory's admission
//! lock (`admission.lock`), so that two processes starting at once cannot both pass it.

use crate::journal::{
    Journal, JournalError, NewRun, RunId, RunInputs, RunKind, RunLock, RunStatus, RunSummary,
};
use ferry_model::Plan;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// A node a run acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// `cluster/node`, as step IDs name it.
    pub id: String,
    /// The node's name.
    pub name: String,
    /// The node's address in the site, when it has one.
    pub address: Option<String>,
}

impl NodeRef {
    /// Whether two runs' nodes are the same machine: the same address (as written, case aside)
    /// when both have one, otherwise the same name.
    pub fn same(&self, other: &NodeRef) -> bool {
        match (&self.address, &other.address) {
            (Some(a), Some(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
            _ => self.name == other.name,
        }
    }
}

/// The nodes a run of `plan` acts on: every node of every cluster it has a step in, with the
/// addresses its stored site gives them (without stored inputs: the nodes its steps name).
pub fn run_nodes(plan: &Plan, inputs: Option<&RunInputs>) -> Vec<NodeRef> {
    let clusters: BTreeSet<&str> = plan.steps.iter().map(|s| s.cluster.as_str()).collect();
    if let Some(site) = inputs.and_then(|i| crate::rollback::load_inputs(i).ok().map(|l| l.1)) {
        return site
            .clusters
            .iter()
            .filter(|c| clusters.contains(c.name.as_str()))
            .flat_map(|c| {
                c.nodes.iter().map(|n| NodeRef {
                    id: format!("{}/{}", c.name, n.name),
                    name: n.name.clone(),
                    address: n.address.clone(),
                })
            })
            .collect();
    }
    let named: BTreeSet<(&str, &str)> = plan
        .steps
        .iter()
        .filter_map(|s| s.node.as_deref().map(|n| (s.cluster.as_str(), n)))
        .collect();
    named
        .into_iter()
        .map(|(c, n)| NodeRef {
            id: format!("{c}/{n}"),
            name: n.to_string(),
            address: None,
        })
        .collect()
}

/// A run that keeps another off its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConflict {
    pub run: RunId,
    pub kind: RunKind,
    pub parent: Option<RunId>,
    pub site: String,
    pub driver: String,
    /// Its status, or `interrupted` for a run left `running` by a crash.
    pub status: String,
    /// A process carries it out now.
    pub active: bool,
    /// The nodes in common, as the refused run names them.
    pub nodes: Vec<String>,
}

/// Why a run may not start (or be resumed) now: the runs in the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConflicts {
    /// The state directory, for the commands the message suggests.
    pub state: PathBuf,
    pub conflicts: Vec<RunConflict>,
}

impl std::fmt::Display for RunConflicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.display();
        let mut sentences = Vec::new();
        for c in &self.conflicts {
            let what = match (c.kind, c.parent) {
                (RunKind::Rollback, Some(p)) => format!("rollback of run {p}, site {}", c.site),
                _ => format!("{} of site {}", c.kind.as_str(), c.site),
            };
            let what = if c.driver.is_empty() {
                what
            } else {
                format!("{what}, driver {}", c.driver)
            };
            let nodes = if c.nodes.len() > 6 {
                format!("{} and {} more", c.nodes[..6].join(", "), c.nodes.len() - 6)
            } else {
                c.nodes.join(", ")
            };
            sentences.push(if c.active {
                format!(
                    "run {} ({what}) is being carried out by another ferry process on {nodes}, \
which this run also acts on; one run at a time may act on a node: wait for it to end \
(`ferry status --state {state} {}`), or stop that process first",
                    c.run, c.run
                )
            } else {
                let back_out = if c.kind == RunKind::Apply {
                    format!(
                        ", back it out with `ferry rollback --state {state} {}`",
                        c.run
                    )
                } else {
                    String::new()
                };
                format!(
                    "run {} ({what}, {}) is not finished on {nodes}, which this run also acts on: \
continue it with `ferry resume --state {state} {}`{back_out}, or start this run anyway with \
`--supersede` (run {} is then marked as superseded by it)",
                    c.run, c.status, c.run, c.run
                )
            });
        }
        f.write_str(&sentences.join("; "))
    }
}

/// Records a new run of `plan` and locks it, if no other run is in the way of its nodes (see
/// the module documentation): the check, the run's creation (marking the runs it supersedes)
/// and its lock happen under the admission lock.
pub fn begin_run(
    journal: &Journal,
    plan: &Plan,
    now: i64,
    new: &NewRun,
) -> Result<(RunId, RunLock), JournalError> {
    let _admission = journal.lock_admission()?;
    // A rollback is what an unfinished run's refusal suggests: only runs under way stop it.
    let in_the_way = conflicts(journal, plan, new.inputs.as_ref(), |_| {
        new.kind == RunKind::Rollback
    })?;
    let (active, unfinished): (Vec<_>, Vec<_>) = in_the_way.into_iter().partition(|c| c.active);
    if !active.is_empty() || (!unfinished.is_empty() && !new.supersede) {
        let conflicts = if active.is_empty() {
            unfinished
        } else {
            active
        };
        return Err(refusal(journal, conflicts));
    }
    let superseded: Vec<RunId> = unfinished.iter().map(|c| c.run).collect();
    let run = journal.create_run_superseding(plan, now, new, &superseded)?;
    let lock = journal.lock_run(run)?;
    Ok((run, lock))
}

/// Whether `run` (whose lock the caller holds) may be resumed: no other process carries out a
/// run on its nodes now.
pub fn admit_resume(journal: &Journal, run: RunId) -> Result<(), JournalError> {
    if journal.dir().is_none() {
        return Ok(());
    }
    let _admission = journal.lock_admission()?;
    let plan = journal.plan(run)?;
    let inputs = journal.inputs(run)?;
    let active: Vec<RunConflict> = conflicts(journal, &plan, inputs.as_ref(), |_| true)?
        .into_iter()
        .filter(|c| c.active && c.run != run)
        .collect();
    if active.is_empty() {
        Ok(())
    } else {
        Err(refusal(journal, active))
    }
}

fn refusal(journal: &Journal, conflicts: Vec<RunConflict>) -> JournalError {
    JournalError::Conflict(RunConflicts {
        state: journal.dir().map(PathBuf::from).unwrap_or_default(),
        conflicts,
    })
}

/// The runs not complete that share a node with a run of `plan`: those carried out now, and
/// the unfinished ones that are not settled (superseded, or rolled back by a complete
/// rollback). Runs this handle holds are left out, and so are the runs no process carries out
/// for which `skip_unless_active` says so.
fn conflicts(
    journal: &Journal,
    plan: &Plan,
    inputs: Option<&RunInputs>,
    skip_unless_active: impl Fn(&RunSummary) -> bool,
) -> Result<Vec<RunConflict>, JournalError> {
    if journal.dir().is_none() {
        return Ok(Vec::new());
    }
    let runs = journal.runs()?;
    let mine: Vec<NodeRef> = run_nodes(plan, inputs);
    let mut out = Vec::new();
    for r in runs.iter().filter(|r| r.status != RunStatus::Complete) {
        let own = journal.holds(r.id);
        let active = !own && journal.run_is_active(r.id)?;
        if own || (!active && skip_unless_active(r)) {
            continue;
        }
        if !active {
            let rolled_back = runs.iter().any(|x| {
                x.kind == RunKind::Rollback
                    && x.parent == Some(r.id)
                    && x.status == RunStatus::Complete
            });
            if r.superseded_by.is_some() || rolled_back {
                continue;
            }
        }
        let theirs = run_nodes(&journal.plan(r.id)?, journal.inputs(r.id)?.as_ref());
        let common: Vec<String> = mine
            .iter()
            .filter(|n| theirs.iter().any(|t| t.same(n)))
            .map(|n| n.id.clone())
            .collect();
        if common.is_empty() {
            continue;
        }
        out.push(RunConflict {
            run: r.id,
            kind: r.kind,
            parent: r.parent,
            site: r.site.clone(),
            driver: r.driver.clone(),
            status: if r.status == RunStatus::Running && !active {
                "interrupted".into()
            } else {
                r.status.as_str().into()
            },
            active,
            nodes: common,
        });
    }
    Ok(out)
}
