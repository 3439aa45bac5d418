//! A Gantt chart of the schedule as SVG: one lane per node, bars coloured by service impact,
//! gates hatched and marked with a diamond, pauses marked with a diamond.

use super::{clock, duration, lane_of, lanes, Lane};
use ferry_model::{Impact, Phase, Plan, PlannedStep, StepKind};
use std::fmt::Write;

const MARGIN: f64 = 16.0;
const LANE_H: f64 = 26.0;
const BAR_H: f64 = 16.0;
const AXIS_H: f64 = 22.0;
const HEADING_H: f64 = 24.0;
/// Room right of the time axis for the labels of the last bars.
const RIGHT_PAD: f64 = 120.0;
/// Estimated width of one character of 11 px sans-serif text.
const CHAR_W: f64 = 6.2;
const FONT: &str = "font-family=\"Helvetica, Arial, sans-serif\"";

/// Renders the window phase of `plan` as a Gantt chart, with the prepare phase (if any) in a
/// smaller chart below it.
pub fn render_svg(plan: &Plan) -> String {
    let window: Vec<&PlannedStep> = plan
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Window)
        .collect();
    let prepare: Vec<&PlannedStep> = plan
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Prepare)
        .collect();
    let staging: Vec<&PlannedStep> = plan
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Staging)
        .collect();
    let label_w = label_width(&plan.steps);
    let mut body = title(plan);
    let mut y = 64.0;
    let main = chart(
        &window,
        plan.makespan_s,
        plan.window_s,
        label_w,
        y,
        "Maintenance window",
    );
    body.push_str(&main.svg);
    y += main.height + 8.0;
    body.push_str(&legend(y));
    y += 30.0;
    let mut width = main.width;
    if !staging.is_empty() {
        let booked = plan
            .stage
            .as_ref()
            .map(|st| (st.hours * 3600.0).round() as u64);
        let heading = match &plan.stage {
            Some(st) => format!(
                "Staging, ahead of the window: the nodes keep serving (booked from {}, not counted in the window)",
                super::site_time(Some(st), st.start_epoch_s)
            ),
            None => "Staging, ahead of the window: the nodes keep serving (not counted in the window)".to_string(),
        };
        let st = chart(&staging, plan.staging_s, booked, label_w, y + 8.0, &heading);
        body.push_str(&st.svg);
        y += st.height + 16.0;
        width = width.max(st.width);
    }
    if !prepare.is_empty() {
        let heading = "Before the window (not counted in the window)";
        let pre = chart(&prepare, plan.prepare_s, None, label_w, y + 8.0, heading);
        body.push_str(&pre.svg);
        y += pre.height + 16.0;
        width = width.max(pre.width);
    }
    let width = width.max(640.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{y:.0}\" viewBox=\"0 0 {width:.0} {y:.0}\" {FONT} font-size=\"11\">"
    );
    out.push_str(DEFS);
    let _ = writeln!(
        out,
        "<rect x=\"0\" y=\"0\" width=\"{width:.0}\" height=\"{y:.0}\" fill=\"#ffffff\"/>"
    );
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

const DEFS: &str = "<defs>\n<pattern id=\"gate\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#e4e9f0\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#5b6b80\" stroke-width=\"2\"/></pattern>\n</defs>\n";

/// Escapes text for XML content and attribute values; drops characters XML 1.0 forbids.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn label_width(steps: &[PlannedStep]) -> f64 {
    let longest = steps
        .iter()
        .map(|s| lane_of(s).label().chars().count())
        .max()
        .unwrap_or(0);
    (longest as f64 * 7.0 + 2.0 * MARGIN).clamp(80.0, 260.0)
}

fn title(plan: &Plan) -> String {
    let mut sub = format!(
        "lower bound {}, one at a time {}",
        duration(plan.lower_bound_s),
        duration(plan.sequential_s)
    );
    if let Some(v) = super::window_verdict(plan) {
        let _ = write!(sub, ", site window {v}");
    }
    format!(
        "<text x=\"{MARGIN:.0}\" y=\"26\" font-size=\"16\" font-weight=\"bold\">{}: estimated window {}</text>\n<text x=\"{MARGIN:.0}\" y=\"46\" font-size=\"12\" fill=\"#444444\">{}</text>\n",
        esc(&plan.site),
        duration(plan.makespan_s),
        esc(&sub)
    )
}

/// Where time sits on the page.
struct Scale {
    /// x of time zero.
    x0: f64,
    px_per_s: f64,
    /// End of the axis in seconds: the span rounded up to a half hour.
    end_s: u64,
    /// Seconds between labelled ticks.
    tick_s: u64,
}

impl Scale {
    fn new(span_s: u64, x0: f64) -> Self {
        let end_s = span_s.div_ceil(1800).max(1).saturating_mul(1800);
        let hours = end_s as f64 / 3600.0;
        let width = (hours * 240.0).clamp(480.0, 2400.0);
        let px_per_s = width / end_s as f64;
        let tick_s = [1800, 3600, 7200, 10800, 21600, 43200, 86400]
            .into_iter()
            .find(|t| *t as f64 * px_per_s >= 48.0)
            // Whole days, at most about 50 ticks however long the span.
            .unwrap_or_else(|| end_s.div_ceil(50 * 86400).max(1).saturating_mul(86400));
        Scale {
            x0,
            px_per_s,
            end_s,
            tick_s,
        }
    }

    fn x(&self, s: u64) -> f64 {
        self.x0 + s as f64 * self.px_per_s
    }

    fn right(&self) -> f64 {
        self.x(self.end_s)
    }
}

struct Chart {
    svg: String,
    height: f64,
    width: f64,
}

/// One Gantt chart: heading, time axis, lanes and bars; its top-left corner at (0, `y0`).
fn chart(
    steps: &[&PlannedStep],
    span_s: u64,
    window_s: Option<u64>,
    label_w: f64,
    y0: f64,
    heading: &str,
) -> Chart {
    let span_s = steps
        .iter()
        .map(|s| s.end_s())
        .max()
        .unwrap_or(0)
        .max(span_s);
    let scale = Scale::new(span_s, MARGIN + label_w);
    let lanes = lanes(steps);
    let top = y0 + HEADING_H + AXIS_H;
    let bottom = top + lanes.len().max(1) as f64 * LANE_H;
    let mut svg = format!(
        "<g class=\"chart\">\n<text x=\"{MARGIN:.0}\" y=\"{:.1}\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
        y0 + 16.0,
        esc(heading)
    );
    svg.push_str(&lane_backgrounds(&lanes, &scale, top));
    svg.push_str(&axis(&scale, top, bottom));
    if lanes.is_empty() {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#666666\">no steps</text>",
            scale.x0 + 6.0,
            top + 17.0
        );
    }
    for (i, lane) in lanes.iter().enumerate() {
        let y = top + i as f64 * LANE_H;
        let in_lane: Vec<&PlannedStep> = steps
            .iter()
            .copied()
            .filter(|s| lane_of(s) == *lane)
            .collect();
        for s in &in_lane {
            svg.push_str(&bar(s, &in_lane, &scale, y));
        }
    }
    if let Some(w) = window_s.filter(|w| *w <= scale.end_s) {
        svg.push_str(&marker(
            scale.x(w),
            top,
            bottom,
            "#c0392b",
            "site window ends",
        ));
    }
    svg.push_str("</g>\n");
    Chart {
        svg,
        height: bottom - y0,
        width: scale.right() + RIGHT_PAD,
    }
}

fn lane_backgrounds(lanes: &[Lane], scale: &Scale, top: f64) -> String {
    let mut out = String::new();
    for (i, lane) in lanes.iter().enumerate() {
        let y = top + i as f64 * LANE_H;
        let fill = if i % 2 == 0 { "#f4f6f9" } else { "#ffffff" };
        let _ = writeln!(
            out,
            "<rect x=\"{MARGIN:.0}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{LANE_H:.1}\" fill=\"{fill}\"/>",
            scale.right() - MARGIN
        );
        if i > 0 && lanes[i - 1].cluster != lane.cluster {
            let _ = writeln!(
                out,
                "<line x1=\"{MARGIN:.0}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#8a94a3\"/>",
                scale.right()
            );
        }
        let style = if lane.node.is_none() {
            " font-style=\"italic\" font-weight=\"bold\""
        } else {
            ""
        };
        let full = match lane.node {
            Some(n) => format!("{}/{n}", lane.cluster),
            None => format!("{} (cluster-wide steps)", lane.cluster),
        };
        let _ = writeln!(
            out,
            "<text class=\"lane\" x=\"{:.1}\" y=\"{:.1}\"{style}><title>{}</title>{}</text>",
            MARGIN + 4.0,
            y + 17.0,
            esc(&full),
            esc(lane.label())
        );
    }
    out
}

fn axis(scale: &Scale, top: f64, bottom: f64) -> String {
    let mut out = String::new();
    let mut t = 0;
    while t <= scale.end_s && scale.tick_s > 0 {
        let x = scale.x(t);
        let hour = t % 3600 == 0;
        let (stroke, label_size) = if hour {
            ("#b5bdc8", 11)
        } else {
            ("#dde2e8", 10)
        };
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"{stroke}\"/>",
            top - 4.0
        );
        let _ = writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"{label_size}\" text-anchor=\"middle\" fill=\"#444444\">{}</text>",
            top - 8.0,
            clock(t)
        );
        match t.checked_add(scale.tick_s) {
            Some(next) => t = next,
            None => break,
        }
    }
    let _ = writeln!(
        out,
        "<line x1=\"{:.1}\" y1=\"{bottom:.1}\" x2=\"{:.1}\" y2=\"{bottom:.1}\" stroke=\"#8a94a3\"/>",
        scale.x0,
        scale.right()
    );
    out
}

fn marker(x: f64, top: f64, bottom: f64, colour: &str, label: &str) -> String {
    format!(
        "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\" font-size=\"10\">{label}</text>\n",
        top - 4.0,
        x + 4.0,
        bottom + 12.0
    )
}

pub(crate) fn impact_colour(impact: Impact) -> &'static str {
    match impact {
        Impact::None => "#8fa8c8",
        Impact::Degraded => "#f2a93b",
        Impact::Down => "#d9534f",
    }
}

fn diamond(x: f64, y: f64, fill: &str) -> String {
    format!(
        "<path d=\"M {x:.1} {:.1} L {:.1} {y:.1} L {x:.1} {:.1} L {:.1} {y:.1} Z\" fill=\"{fill}\" stroke=\"#ffffff\"/>\n",
        y - 7.0,
        x + 7.0,
        y + 7.0,
        x - 7.0
    )
}

/// The text shown on or beside a bar.
fn bar_label(s: &PlannedStep) -> String {
    match s.kind {
        StepKind::Action => s.action.clone(),
        StepKind::Gate => format!("gate: {}", s.action),
        StepKind::Pause => format!("pause: {}", s.action),
        StepKind::Sync => format!("sync: {}", s.rules.join(", ")),
    }
}

fn tooltip(s: &PlannedStep) -> String {
    let mut t = format!(
        "{}\n{}\n{} to {} ({}), impact {}",
        s.id,
        s.title,
        clock(s.start_s),
        clock(s.end_s()),
        duration(s.duration_s),
        s.impact.as_str()
    );
    if !s.rules.is_empty() {
        let _ = write!(t, "\nrules: {}", s.rules.join(", "));
    }
    format!("<title>{}</title>", esc(&t))
}

/// One step's bar (or marker), with its label inside, beside it, or left out when there is no
/// room; the tooltip always names the step.
fn bar(s: &PlannedStep, lane: &[&PlannedStep], scale: &Scale, lane_y: f64) -> String {
    let x = scale.x(s.start_s);
    let w = (s.duration_s as f64 * scale.px_per_s).max(2.0);
    let y = lane_y + (LANE_H - BAR_H) / 2.0;
    let mid = lane_y + LANE_H / 2.0;
    let mut out = format!("<g class=\"step\">{}\n", tooltip(s));
    let (fill, stroke) = match s.kind {
        StepKind::Gate => ("url(#gate)", impact_colour(s.impact)),
        _ => (impact_colour(s.impact), "#ffffff"),
    };
    if s.duration_s > 0 || s.kind == StepKind::Action {
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{BAR_H:.1}\" rx=\"2\" fill=\"{fill}\" stroke=\"{stroke}\"/>"
        );
    }
    match s.kind {
        StepKind::Gate => out.push_str(&diamond(x + w, mid, "#34495e")),
        StepKind::Pause => out.push_str(&diamond(x, mid, "#8e44ad")),
        StepKind::Sync => out.push_str(&diamond(x, mid, "#7f8c8d")),
        StepKind::Action => {}
    }
    out.push_str(&label(s, lane, scale, x, w, mid));
    out.push_str("</g>\n");
    out
}

/// A label candidate for a bar: the full text, then a shorter one.
fn label_texts(s: &PlannedStep, w: f64) -> [String; 2] {
    let full = bar_label(s);
    let short = match s.kind {
        StepKind::Gate => "gate".to_string(),
        StepKind::Pause => "pause".to_string(),
        StepKind::Sync => "sync".to_string(),
        StepKind::Action => {
            let fit = ((w - 8.0) / CHAR_W).floor() as usize;
            let short: String = full.chars().take(fit.saturating_sub(2)).collect();
            if fit >= 4 {
                format!("{short}..")
            } else {
                String::new()
            }
        }
    };
    [full, short]
}

fn label(
    s: &PlannedStep,
    lane: &[&PlannedStep],
    scale: &Scale,
    x: f64,
    w: f64,
    mid: f64,
) -> String {
    let y = mid + 4.0;
    let inside_colour = match (s.kind, s.impact) {
        (StepKind::Action, Impact::Down) => "#ffffff",
        _ => "#1b1b1b",
    };
    let has_bar = s.kind != StepKind::Pause || s.duration_s > 0;
    let next_x = lane
        .iter()
        .filter(|o| o.id != s.id && o.start_s >= s.end_s())
        .map(|o| scale.x(o.start_s))
        .fold(scale.right() + RIGHT_PAD, f64::min);
    let after = x
        + w
        + if s.kind == StepKind::Action {
            4.0
        } else {
            10.0
        };
    for text in label_texts(s, w).iter().filter(|t| !t.is_empty()) {
        let text_w = text.chars().count() as f64 * CHAR_W;
        if has_bar && text_w + 8.0 <= w {
            let mut t = text_at(x + 4.0, y, inside_colour, text);
            if s.kind == StepKind::Gate {
                // A white halo keeps the text readable over the hatching.
                t = t.replacen(
                    "<text ",
                    "<text paint-order=\"stroke\" stroke=\"#ffffff\" stroke-width=\"3\" ",
                    1,
                );
            }
            return t;
        }
        if after + text_w + 4.0 <= next_x {
            return text_at(after, y, "#1b1b1b", text);
        }
    }
    String::new()
}

fn text_at(x: f64, y: f64, colour: &str, text: &str) -> String {
    format!(
        "<text x=\"{x:.1}\" y=\"{y:.1}\" fill=\"{colour}\">{}</text>\n",
        esc(text)
    )
}

fn legend(y: f64) -> String {
    let mut out = String::from("<g class=\"legend\">\n");
    let mut x = MARGIN;
    let items = [
        ("no impact", impact_colour(Impact::None)),
        ("degraded", impact_colour(Impact::Degraded)),
        ("down", impact_colour(Impact::Down)),
        ("gate (wait for a condition)", "url(#gate)"),
    ];
    for (text, fill) in items {
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"18\" height=\"12\" rx=\"2\" fill=\"{fill}\" stroke=\"#8a94a3\"/><text x=\"{:.1}\" y=\"{:.1}\">{text}</text>",
            y + 6.0,
            x + 24.0,
            y + 16.0
        );
        x += 24.0 + text.len() as f64 * CHAR_W + 6.0;
    }
    out.push_str(&diamond(x + 7.0, y + 12.0, "#8e44ad"));
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\">pause (approval)</text>",
        x + 20.0,
        y + 16.0
    );
    out.push_str("</g>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::sample_plan;

    fn window_chart(svg: &str) -> &str {
        let start = svg.find("Maintenance window").unwrap();
        let end = svg[start..].find("</g>\n<g class=\"legend\"").unwrap() + start;
        &svg[start..end]
    }

    #[test]
    fn is_an_svg_document_with_balanced_groups() {
        let svg = render_svg(&sample_plan());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<g ").count(), svg.matches("</g>").count());
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn titles_the_chart_with_site_and_window_and_escapes_it() {
        let svg = render_svg(&sample_plan());
        assert!(svg.contains("Lab &amp; &lt;Test&gt;: estimated window 1h 45m"));
        assert!(svg.contains("Switch pub &amp; reboot"));
        assert!(svg.contains("Install &lt;new&gt; version"));
        assert!(!svg.contains("<new>") && !svg.contains("<Test>"));
        assert!(!svg.contains("& "));
    }

    #[test]
    fn has_one_lane_per_node_and_one_for_cluster_wide_steps() {
        let svg = render_svg(&sample_plan());
        let chart = window_chart(&svg);
        assert_eq!(chart.matches("class=\"lane\"").count(), 3);
        for label in [">cucm</text>", ">pub</text>", ">sub1</text>"] {
            assert_eq!(chart.matches(label).count(), 1, "{label}");
        }
    }

    #[test]
    fn draws_window_steps_on_the_main_chart_and_prepare_steps_apart() {
        let svg = render_svg(&sample_plan());
        let chart = window_chart(&svg);
        assert_eq!(chart.matches("class=\"step\"").count(), 6);
        assert!(!chart.contains("cucm/backup"));
        let prepare = svg.find("Before the window").unwrap();
        assert!(svg[prepare..].contains("cucm/backup"));
    }

    #[test]
    fn colours_by_impact_and_marks_gates_and_pauses() {
        let svg = render_svg(&sample_plan());
        assert!(svg.contains(impact_colour(Impact::Down)));
        assert!(svg.contains(impact_colour(Impact::Degraded)));
        assert!(svg.contains("fill=\"url(#gate)\""));
        assert!(svg.contains(">gate</text>"));
        assert!(svg.contains(">pause: approve</text>"));
        assert!(svg.contains(">install</text>"));
    }

    #[test]
    fn labels_hour_and_half_hour_ticks() {
        let svg = render_svg(&sample_plan());
        let chart = window_chart(&svg);
        for tick in [">0:00<", ">0:30<", ">1:00<", ">1:30<", ">2:00<"] {
            assert!(chart.contains(tick), "{tick}");
        }
        assert!(!chart.contains(">2:30<"));
    }

    #[test]
    fn is_deterministic() {
        let plan = sample_plan();
        assert_eq!(render_svg(&plan), render_svg(&plan));
    }

    #[test]
    fn renders_an_empty_plan() {
        let mut plan = sample_plan();
        plan.steps.clear();
        let svg = render_svg(&plan);
        assert!(svg.contains("no steps"));
        assert!(svg.ends_with("</svg>\n"));
    }
}
