//! linux-ha in the twin: slots, the pair's heartbeat takeover, replication from the publisher.

use super::common::*;

#[test]
fn pubsub_rehearses_to_the_target_without_violations() {
    let r = rehearse("linux-ha-pubsub");
    assert!(failed(&r.outcomes).is_empty(), "{:?}", failed(&r.outcomes));
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert!(
        r.impact.clusters[0].on_target,
        "{:?}",
        r.impact.clusters[0].off_target
    );
}

#[test]
fn debug_print() {
    let Ok(name) = std::env::var("TWIN_DEBUG") else {
        return;
    };
    let strategy = std::env::var("TWIN_STRATEGY").ok();
    let r = rehearse_case(
        &case_with(&example(&name), strategy.as_deref()),
        &Default::default(),
        1,
    );
    for e in &r.world.trace {
        println!(
            "{:>7} {:>7} {:?} {}",
            e.start - r.world.start,
            e.end - e.start,
            e.outcome,
            e.step
        );
    }
    for l in &r.world.log {
        println!(
            "LOG {:>7} {} {} {}",
            l.time - r.world.start,
            l.node.clone().unwrap_or_default(),
            l.code,
            l.text
        );
    }
    println!("{}", serde_json::to_string_pretty(&r.impact).unwrap());
    println!("{:#?}", r.violations);
}

#[test]
fn debug_summary() {
    if std::env::var("TWIN_SUMMARY").is_err() {
        return;
    }
    for name in example_names() {
        let r = rehearse(&name);
        let f = failed(&r.outcomes);
        println!(
            "{name:28} steps {:3}/{:3} failed {:?} violations {:?} on_target {}",
            r.outcomes.len(),
            case(&name).plan.steps.len(),
            f.iter()
                .map(|(k, o)| format!("{k}: {o:?}"))
                .collect::<Vec<_>>(),
            r.violations
                .iter()
                .map(|v| format!("{:?} {}: {}", v.severity, v.rule, v.message))
                .collect::<Vec<_>>(),
            r.impact.clusters.iter().all(|c| c.on_target)
        );
    }
}
