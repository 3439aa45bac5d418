//! What a change board files: the MOP of `ucm-standard` and `cms-ha` as HTML printable to PDF,
//! with real versions, the point of no return, a backout per stage, dates with zones and the
//! risk summary of a rehearsal; the change record from `[site.change]`, checked at its line.
//! The HTML is printed to PDF by a real browser (headless Chromium) and the PDF's text is
//! checked too: what the board files is the PDF.

use super::{ferry, stderr, stdout, Scratch};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The text of `html` printed to PDF by headless Chromium (`pdftotext`, whitespace folded to
/// single spaces, so that a table cell wrapped over two lines reads as one phrase).
fn printed_to_pdf(html: &str, tag: &str) -> String {
    let dir = Scratch::new(tag);
    let page = dir.path("mop.html");
    let pdf = dir.path("mop.pdf");
    std::fs::write(&page, html).expect("write the page");
    let browser = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("a headless Chromium to print the MOP to PDF: apt-get install chromium poppler-utils (.ci/run installs them)");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            &format!("--user-data-dir={}", dir.path("profile")),
            &format!("--print-to-pdf={pdf}"),
            &format!("file://{page}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    // A guard, not a timing: a browser that never ends is killed and the test fails.
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for chromium") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not print the MOP within 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium failed: {status}");
    let text = Command::new("pdftotext")
        .args([&pdf, "-"])
        .output()
        .expect("pdftotext (apt-get install poppler-utils)");
    assert!(text.status.success(), "pdftotext failed on {pdf}");
    String::from_utf8_lossy(&text.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `check_pdf(site, expected)`: the MOP of `site` printed to PDF holds every expected phrase.
fn check_pdf(site: &str, html: &str, expected: &[&str]) {
    let text = printed_to_pdf(html, &site.replace(':', "-"));
    for e in expected {
        assert!(text.contains(e), "{site}: the PDF misses {e:?}");
    }
}

/// `check(site, expected)`: the HTML MOP of `site` (risk figures from 3 rehearsals, `--runs 3`) holds every
/// expected text.
fn check(site: &str, expected: &[&str]) -> String {
    let o = ferry(&["plan", site, "--format", "html", "--runs", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let html = stdout(&o);
    for e in expected {
        assert!(html.contains(e), "{site}: missing {e:?}");
    }
    // Printable and self-contained: print CSS, the Gantt inline, nothing fetched, no script.
    for e in ["<!DOCTYPE html>", "@media print", "@page", "<svg"] {
        assert!(html.contains(e), "{site}: missing {e:?}");
    }
    assert!(
        !html.contains("<script") && !html.contains("src=\""),
        "{site}"
    );
    html
}

#[test]
fn ucm_standard_mop_for_a_board_ucm_02() {
    let html = check(
        "example:ucm-standard",
        &[
            // Real versions in the expected outputs, not "<target>".
            "PRODUCT_VERSION is 14.0.1.13900-155",
            "PRODUCT_VERSION is 14.0.1.13900-8",
            // Addresses and device counts before, to compare after.
            "<td>cucm-sub1</td><td>subscriber</td><td>10.10.1.11</td>",
            "phones: 2600",
            // The point of no return: a 3h16m rollback in a 12 h window.
            "T+8:44 (Sun 2026-12-06 04:44 -05:00): the last moment at which the full rollback (3h 16m)",
            // A backout per stage.
            "<td>after ucm-hq publisher</td>",
            "<td>after ucm-hq subscriber</td>",
            "<td>after ucm-hq imp_publisher</td>",
            "<td>after ucm-hq imp_subscriber</td>",
            // Dates with zones.
            "<td>Window opens (site time)</td><td>Sat 2026-12-05 20:00 -05:00</td>",
            "Sat 2026-12-05 20:00 -05:00 site time",
            // The risk summary from the rehearsal.
            "From 3 rehearsal(s)",
            "<td>Window P50</td>",
            "<td>P(fit in the booked window)</td>",
            "calls failed (median)",
            // What the site does not give says what to fill in.
            "<strong>Change ID:</strong> <em>(fill in)</em>",
        ],
    );
    assert!(
        !html.contains("&lt;target&gt;"),
        "a placeholder left in the MOP"
    );
    check_pdf(
        "example:ucm-standard",
        &html,
        &[
            "PRODUCT_VERSION is 14.0.1.13900-155",
            "Point of no return",
            "T+8:44 (Sun 2026-12-06 04:44 -05:00)",
            "after ucm-hq publisher",
            "after ucm-hq subscriber",
            "after ucm-hq imp_publisher",
            "Sat 2026-12-05 20:00 -05:00",
            "Window P50",
            "P(fit in the booked window)",
        ],
    );
}

#[test]
fn cms_ha_mop_for_a_board_cms_02() {
    let html = check(
        "example:cms-ha",
        &[
            "cms-ha runs CMS R21.0",
            "Upgrade cms-orig from R19.1 to R21.0",
            "<td>cms-orig</td><td>original</td><td>10.20.1.15</td><td>R19.1</td><td>R21.0</td>",
            "Point of no return",
            "<td>after cms new_ha</td>",
            "<td>after cms original</td>",
            "Sat 2026-12-05 18:00 -05:00",
            "HA pairs: minutes without redundancy (median)",
        ],
    );
    check_pdf(
        "example:cms-ha",
        &html,
        &[
            "Upgrade cms-orig from R19.1 to R21.0",
            "Point of no return",
            "after cms new_ha",
            "after cms original",
            "Sat 2026-12-05 18:00 -05:00",
            "HA pairs: minutes without redundancy (median)",
        ],
    );
}

#[test]
fn the_sample_mop_in_docs_is_current() {
    let o = ferry(&[
        "plan",
        "example:ucm-standard",
        "--format",
        "html",
        "--runs",
        "10",
    ]);
    let want = stdout(&o);
    let path = format!("{}/../../docs/sample-mop.html", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("FERRY_UPDATE_SAMPLES").is_some() {
        std::fs::write(&path, &want).expect("write the sample");
    }
    let have = std::fs::read_to_string(&path).expect("docs/sample-mop.html");
    assert!(
        have == want,
        "docs/sample-mop.html is out of date: FERRY_UPDATE_SAMPLES=1 cargo test -p ferry-cli --test cli -- the_sample_mop (or ferry plan example:ucm-standard --format html --runs 10 -o docs/sample-mop.html)"
    );
}

const CHANGE_SITE: &str = r#"[site]
name = "board-change"
window = { start = "2026-03-07T22:00", zone = "Europe/London", hours = 6 }

[site.change]
id = "CHG0042"
vendor_case = "Vendor case 77-1234"
contact = [{ role = "Implementer", name = "R. Diaz", phone = "+44 20 7946 0000" }]
escalation = [{ role = "Duty manager", name = "K. Obi", phone = "+44 20 7946 0001" }]
communication = [{ who = "all users", when = "48 h before the window", how = "email" }]
checkpoint = [{ at = "T-0:30", criteria = "backups verified" }]

[[cluster]]
name = "cache"
profile = "linux-ha"
target = "3.1.0"

[[cluster.node]]
name = "cache-1"
role = "publisher"
version = "3.0.2"

[[cluster.node]]
name = "cache-2"
role = "subscriber"
version = "3.0.2"
"#;

#[test]
fn the_change_record_comes_from_the_site_and_a_bad_checkpoint_is_located() {
    let dir = Scratch::new("board-change");
    let site = dir.path("site.toml");
    std::fs::write(&site, CHANGE_SITE).unwrap();
    let o = ferry(&["plan", &site, "--format", "mop"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mop = stdout(&o);
    for e in [
        "- **Change ID:** CHG0042",
        "- **Vendor support case:** Vendor case 77-1234",
        "| 1 | Implementer | R. Diaz | +44 20 7946 0000 |  |",
        "| 1 | Duty manager | K. Obi | +44 20 7946 0001 |  |",
        "| all users | 48 h before the window | email |",
        "| T-0:30 (Sat 2026-03-07 21:30 +00:00) | backups verified | go / no-go |",
        "| Site time zone | Europe/London",
    ] {
        assert!(mop.contains(e), "missing {e:?} in\n{mop}");
    }
    std::fs::write(
        &site,
        CHANGE_SITE.replace("at = \"T-0:30\"", "at = \"half an hour before\""),
    )
    .unwrap();
    let o = ferry(&["plan", &site]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("site.change.checkpoint[0].at"), "{err}");
    assert!(
        err.contains("not a time from the window's opening"),
        "{err}"
    );
    assert!(err.contains("site.toml:11"), "{err}");
}
