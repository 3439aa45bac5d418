//! The booked maintenance window as the executor judges it before window work starts: closed,
//! too short for the work the plan has left in it, or too short for the next step — and what
//! the operator reads about it, with dates in the site's zone and what to change.

use ferry_model::{Phase, Plan};
use ferry_plan::render::{duration, site_time, window_span};

/// Why window work is not started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowRefusal {
    /// The booked window ended before the run (re)started.
    Closed { now: i64, end: i64 },
    /// What is left of the window is shorter than the window work the plan has left.
    TooShort {
        now: i64,
        end: i64,
        /// The least time the plan's window work left takes, as planned (seconds).
        remaining_s: u64,
    },
    /// One step would end after the window.
    StepOverruns {
        now: i64,
        end: i64,
        step: String,
        duration_s: u64,
    },
}

/// The least time the plan's window work left can take: its longest chain of steps through
/// their `after` edges, each step weighing what `left` says it still needs (`None`: settled;
/// a step under way needs its planned length less the time it has run). Limits can only make
/// it longer, so a window shorter than this cannot hold the work as planned. `None` when no
/// window step is left.
pub fn remaining_window_work(plan: &Plan, left: impl Fn(usize) -> Option<u64>) -> Option<u64> {
    remaining_work(plan, &[Phase::Window], left)
}

/// As `remaining_window_work`, counting the steps of `phases`: with the window already open,
/// staging steps still to run hold back the window steps that wait for them, so they count.
pub fn remaining_work(
    plan: &Plan,
    phases: &[Phase],
    left: impl Fn(usize) -> Option<u64>,
) -> Option<u64> {
    let n = plan.steps.len();
    let need: Vec<Option<u64>> = (0..n)
        .map(|i| {
            phases
                .contains(&plan.steps[i].phase)
                .then(|| left(i))
                .flatten()
        })
        .collect();
    let window_left = (0..n).any(|i| need[i].is_some() && plan.steps[i].phase == Phase::Window);
    if !window_left {
        return None;
    }
    let index = plan.step_index();
    // Kahn's order over the steps left, each finishing at its need after its latest
    // predecessor left.
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut preds_left = vec![0u32; n];
    for (i, s) in plan.steps.iter().enumerate() {
        if need[i].is_none() {
            continue;
        }
        for a in &s.after {
            if let Some(&p) = index.get(a.as_str()) {
                if need[p].is_some() {
                    succs[p].push(i);
                    preds_left[i] += 1;
                }
            }
        }
    }
    let mut ready: Vec<usize> = (0..n)
        .filter(|&i| need[i].is_some() && preds_left[i] == 0)
        .collect();
    let mut begins = vec![0u64; n];
    let mut longest = 0;
    while let Some(i) = ready.pop() {
        let ends = begins[i] + need[i].unwrap_or(0);
        longest = longest.max(ends);
        for &j in &succs[i] {
            begins[j] = begins[j].max(ends);
            preds_left[j] -= 1;
            if preds_left[j] == 0 {
                ready.push(j);
            }
        }
    }
    Some(longest)
}

/// The check before any window work of a run starts (`apply` and `resume`): `end` is the
/// booked window's end, `remaining_s` the window work left.
pub fn judge_run(now: i64, end: i64, remaining_s: u64) -> Option<WindowRefusal> {
    if now >= end {
        Some(WindowRefusal::Closed { now, end })
    } else if now.saturating_add(remaining_s as i64) > end {
        Some(WindowRefusal::TooShort {
            now,
            end,
            remaining_s,
        })
    } else {
        None
    }
}

/// Where the plan's site came from, for the remedy: a built-in example cannot be edited in
/// place.
#[derive(Debug, Clone, Copy)]
pub struct Remedy<'a> {
    pub run: i64,
    /// The site's name as given (`site.toml`, `example:NAME`).
    pub site: &'a str,
}

impl WindowRefusal {
    /// What the operator reads: what happened, in dates with their zone, and what to change.
    pub fn message(&self, plan: &Plan, remedy: Remedy<'_>) -> String {
        let w = plan.window.as_ref();
        let booked = match (w, plan.window_s) {
            (Some(w), Some(len)) => format!("the booked window {}", window_span(w, len)),
            _ => "the booked window".to_string(),
        };
        let at = |t: i64| site_time(w, t);
        let what = match self {
            WindowRefusal::Closed { now, .. } => format!(
                "{booked} has closed (it is now {}); no step of the window was started",
                at(*now)
            ),
            WindowRefusal::TooShort {
                now,
                end,
                remaining_s,
            } => {
                let ends = now.saturating_add(*remaining_s as i64);
                format!(
                    "the window work left in the plan (at least {} as planned: its longest chain of steps) \
does not fit in what is left of {booked} (it is now {}: it would end at {} at the earliest, {} after \
the window closes); no step of the window was started",
                    duration(*remaining_s),
                    at(*now),
                    at(ends),
                    duration((ends - end).max(0) as u64)
                )
            }
            WindowRefusal::StepOverruns {
                now,
                end,
                step,
                duration_s,
            } => {
                let ends = now.saturating_add(*duration_s as i64);
                format!(
                    "step `{step}` ({}) would end at {}, {} after {booked} closes; not started",
                    duration(*duration_s),
                    at(ends),
                    duration((ends - end).max(0) as u64)
                )
            }
        };
        format!("{what}. {}", remedy.text())
    }
}

impl Remedy<'_> {
    fn text(&self) -> String {
        let rebook = match self.site.strip_prefix("example:") {
            Some(name) => format!(
                "This built-in example books a fixed window: write it out with its window booked from now \
(`ferry examples {name} --window-start now > site.toml`, or edit `[site] window` in the copy), make \
its plan (`ferry plan site.toml --format json -o plan.json`) and apply that"
            ),
            None => format!(
                "Book a new window in the site file (`[site] window` of {}), make the plan again and apply it",
                self.site
            ),
        };
        format!(
            "{rebook}; or go on knowingly outside the booked window with `ferry resume {} --ignore-window`",
            self.run
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_run_tells_closed_from_too_short_from_fitting() {
        let check = |now: i64, remaining: u64, expected: Option<&str>| {
            let got = judge_run(now, 1_000, remaining).map(|r| match r {
                WindowRefusal::Closed { .. } => "closed",
                WindowRefusal::TooShort { .. } => "too short",
                WindowRefusal::StepOverruns { .. } => "step",
            });
            assert_eq!(got, expected, "now {now}, remaining {remaining}");
        };
        check(1_000, 0, Some("closed"));
        check(2_000, 10, Some("closed"));
        check(900, 101, Some("too short"));
        check(900, 100, None);
        check(0, 0, None);
    }
}
