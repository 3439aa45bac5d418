//! `validate` on plans edited by hand: every number within the range the planner makes, the
//! error naming the step, group or key; a cycle named by its steps.

use super::{example_plan, made_up, step};
use ferry_exec::{validate, ExecError, Options};
use ferry_model::{Plan, StepKind};

/// `(what the edit does, the edit, a fragment the error must hold or None when valid)`.
fn check(what: &str, edit: impl Fn(&mut Plan), expected: Option<&str>) {
    let mut plan = example_plan("linux-ha-pair");
    edit(&mut plan);
    match (validate(&plan, &Options::default()), expected) {
        (Ok(()), None) => {}
        (Err(ExecError::BadPlan(m)), Some(want)) => {
            assert!(m.contains(want), "{what}: {m:?} lacks {want:?}")
        }
        (got, want) => panic!("{what}: got {got:?}, expected {want:?}"),
    }
}

#[test]
fn numbers_a_hand_edited_plan_holds_are_checked_with_the_step_named() {
    check("as planned", |_| {}, None);
    check(
        "a step of 2^64-1 s",
        |p| p.steps[2].duration_s = u64::MAX,
        Some("`duration_s` is 18446744073709551615"),
    );
    let id = example_plan("linux-ha-pair").steps[2].id.clone();
    check(
        "the step is named",
        |p| p.steps[2].duration_s = u64::MAX,
        Some(&format!("step `{id}`")),
    );
    check(
        "a start past every sum",
        |p| p.steps[0].start_s = u64::MAX - 1,
        Some("`start_s`"),
    );
    check(
        "a timeout of 2^64-1 s",
        |p| {
            if let Some(s) = p.steps.iter_mut().find(|s| s.timeout_s.is_some()) {
                s.timeout_s = Some(u64::MAX);
            } else {
                p.steps[0].timeout_s = Some(u64::MAX);
            }
        },
        Some("`timeout_s`"),
    );
    check(
        "a makespan of 2^64-1 s",
        |p| p.makespan_s = u64::MAX,
        Some("`makespan_s`"),
    );
    check(
        "a window of inf hours",
        |p| p.window.as_mut().unwrap().hours = f64::INFINITY,
        Some("`window.hours`"),
    );
    check(
        "a window start past year 9999",
        |p| p.window.as_mut().unwrap().start_epoch_s = i64::MAX,
        Some("`window.start_epoch_s`"),
    );
}

#[test]
fn a_cycle_of_after_lists_names_its_steps() {
    let plan = made_up(
        vec![
            step("c/a", &["c/b"], 60, StepKind::Action),
            step("c/b", &["c/a"], 60, StepKind::Action),
            step("c/z", &[], 60, StepKind::Action),
        ],
        vec![],
    );
    match validate(&plan, &Options::default()) {
        Err(ExecError::BadPlan(m)) => assert!(m.contains("through c/a, c/b"), "{m}"),
        other => panic!("{other:?}"),
    }
}
