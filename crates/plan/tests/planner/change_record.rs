//! What a change board reads: real values in the method of procedure, a backout per stage with
//! the point of no return, and times with their date and zone (a daylight-saving night too).

use crate::common::plan;
use ferry_plan::render::mop::render_mop;

/// A small CUCM cluster with IM&P, written for these tests: a publisher, two subscribers and an
/// IM&P publisher, with the ISO and its checksum, addresses and device counts given.
fn ucm_site(window: &str) -> String {
    format!(
        r#"[site]
name = "board-lab"
window = {window}

[[cluster]]
name = "ucm-b"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
targets = {{ imp_publisher = "14.0.1.13900-8" }}
facts = {{ upgrade_source = "sftp", upgrade_iso = "UCSInstall_UCOS_14.0.1.13900-155.sgn.iso", upgrade_iso_checksum = "SHA512: 9e1b7c0d" }}

[[cluster.node]]
name = "pub-b"
role = "publisher"
version = "12.5.1.17900-64"
address = "192.0.2.10"
facts = {{ devices = 0, replication_state = 2 }}

[[cluster.node]]
name = "sub-b1"
role = "subscriber"
version = "12.5.1.17900-64"
address = "192.0.2.11"
facts = {{ devices = 1500, replication_state = 2 }}

[[cluster.node]]
name = "sub-b2"
role = "subscriber"
version = "12.5.1.17900-64"
address = "192.0.2.12"
facts = {{ devices = 1300, replication_state = 2 }}

[[cluster.node]]
name = "imp-b"
role = "imp_publisher"
version = "12.5.1.17900-7"
address = "192.0.2.20"
"#
    )
}

const WINDOW_12H: &str = r#"{ start = "2026-12-05T20:00:00-05:00", hours = 12 }"#;

/// `check(mop, expected)`: every expected line is in the MOP.
fn check(mop: &str, expected: &[&str]) {
    for e in expected {
        assert!(mop.contains(e), "missing {e:?} in\n{mop}");
    }
}

#[test]
fn the_mop_names_real_versions_the_iso_addresses_and_devices_before_ucm_02() {
    // "Expected outputs name the real versions ... the ISO file name and its checksum where
    // given, node addresses, and each node's device count before the upgrade".
    let p = plan(&ucm_site(WINDOW_12H));
    let mop = render_mop(&p);
    check(
        &mop,
        &[
            "PRODUCT_VERSION is 14.0.1.13900-155",
            "PRODUCT_VERSION is 14.0.1.13900-8",
            "- **upgrade_iso:** `UCSInstall_UCOS_14.0.1.13900-155.sgn.iso`",
            "- **upgrade_iso_checksum:** `SHA512: 9e1b7c0d`",
            "| sub-b1 | subscriber | 192.0.2.11 | 12.5.1.17900-64 | 14.0.1.13900-155 | phones: 1500 |",
            "| imp-b | imp_publisher | 192.0.2.20 | 12.5.1.17900-7 | 14.0.1.13900-8 |",
        ],
    );
    assert!(!mop.contains("<target>"), "{mop}");
}

#[test]
fn a_backout_per_stage_and_the_point_of_no_return_ucm_02() {
    // "The point of no return: the last moment at which a backout still ends inside the booked
    // window. Computed from the rollback plan's length. A backout per stage (after the
    // publisher, after the subscribers, after IM&P), each with its length."
    let p = plan(&ucm_site(WINDOW_12H));
    let pnr = p
        .point_of_no_return_s
        .expect("a booked window gives a point of no return");
    assert_eq!(pnr, 12 * 3600 - p.rollback_makespan_s);
    let stages: Vec<&str> = p.backouts.iter().map(|b| b.stage.as_str()).collect();
    assert_eq!(
        stages,
        [
            "after ucm-b publisher",
            "after ucm-b subscriber",
            "after ucm-b imp_publisher"
        ]
    );
    for b in &p.backouts {
        assert!(!b.triggers.is_empty(), "{b:?}");
        assert!(b.duration_s > 0 && !b.steps.is_empty(), "{b:?}");
    }
    // Backing out after more stages undoes more; none is longer than the full rollback the
    // point of no return is computed from (which also holds the steps for a failed IM&P).
    for pair in p.backouts.windows(2) {
        assert!(pair[0].duration_s <= pair[1].duration_s, "{pair:?}");
    }
    assert!(p.backouts.last().unwrap().duration_s <= p.rollback_makespan_s);
    assert!(p.backouts[0].duration_s < p.backouts.last().unwrap().duration_s);
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["point_of_no_return_s"], serde_json::json!(pnr));
    assert_eq!(json["backouts"].as_array().map(Vec::len), Some(3));
    let mop = render_mop(&p);
    check(
        &mop,
        &[
            "## Backout plan",
            "**Triggers.**",
            "| Point of no return | T+",
            "> **Point of no return** at T+",
            "| after ucm-b publisher | T+",
            "| after ucm-b imp_publisher | T+",
        ],
    );
}

#[test]
fn every_time_a_person_reads_has_its_date_and_zone_ucm_02() {
    let p = plan(&ucm_site(WINDOW_12H));
    let mop = render_mop(&p);
    check(
        &mop,
        &[
            "| Window opens (site time) | Sat 2026-12-05 20:00 -05:00 |",
            "(Sat 2026-12-05 20:00 -05:00 site time)",
        ],
    );
    // Prepare steps carry their date and zone too (they run before the window).
    let prepare = &mop[mop.find("## Prepare").unwrap()..mop.find("## Maintenance window").unwrap()];
    assert!(prepare.contains("-05:00 site time)"), "{prepare}");
    let text = ferry_plan::render::text::render_text(&p);
    assert!(text.contains("Sat 2026-12-05 20:00 -05:00"), "{text}");
}

#[test]
fn a_window_across_a_daylight_saving_change_shows_both_offsets_ucm_02() {
    // America/New_York leaves daylight-saving time at 02:00 on Sunday 1 November 2026: the
    // clocks go back to 01:00. A 12-hour window from 20:00 on the Saturday ends at 07:00 local
    // time (not 08:00), and its times before the change read -04:00, after it -05:00.
    let p = plan(&ucm_site(
        r#"{ start = "2026-10-31T20:00", zone = "America/New_York", hours = 12 }"#,
    ));
    let w = p.window.as_ref().unwrap();
    assert_eq!(w.zone.as_deref(), Some("America/New_York"));
    assert_eq!(w.offset_s, -4 * 3600);
    assert_eq!(p.window_s, Some(12 * 3600));
    assert_eq!(
        ferry_plan::render::window_span(w, 12 * 3600),
        "2026-10-31 20:00 -04:00 to 2026-11-01 07:00 -05:00"
    );
    assert_eq!(
        ferry_plan::render::wall_clock(&p, 8 * 3600).as_deref(),
        Some("Sun 2026-11-01 03:00 -05:00")
    );
    assert_eq!(
        ferry_plan::render::wall_clock(&p, 5 * 3600).as_deref(),
        Some("Sun 2026-11-01 01:00 -04:00")
    );
    assert_eq!(
        ferry_plan::render::wall_clock(&p, 6 * 3600).as_deref(),
        Some("Sun 2026-11-01 01:00 -05:00")
    );
    let mop = render_mop(&p);
    check(
        &mop,
        &[
            "| Window opens (site time) | Sat 2026-10-31 20:00 -04:00 |",
            "| Site time zone | America/New_York",
            "| Site window | 12h 00m",
        ],
    );
}
