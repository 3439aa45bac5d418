//! The method of procedure as one self-contained HTML page a change board can file: the MOP's
//! Markdown turned into HTML, the Gantt chart inline, and print CSS so that the browser's
//! "Print to PDF" gives a clean document (no scripts, no fonts or images fetched).

use super::mop::{render_mop_with, Risk};
use ferry_model::Plan;
use std::fmt::Write;

const STYLE: &str = "
body { font: 11pt/1.45 -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #111; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.7rem; border-bottom: 2px solid #333; }
h2 { font-size: 1.3rem; margin-top: 2rem; border-bottom: 1px solid #999; }
h3 { font-size: 1.05rem; margin-top: 1.3rem; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0; font-size: .92rem; }
th, td { border: 1px solid #bbb; padding: .25rem .45rem; text-align: left; vertical-align: top; }
th { background: #eee; }
code { font: .9em ui-monospace, Menlo, Consolas, monospace; background: #f3f3f3; padding: 0 .15rem; }
blockquote { margin: .6rem 0; padding: .3rem .8rem; border-left: 4px solid #c60; background: #fff6ec; }
ul { padding-left: 1.4rem; }
li.check { list-style: none; margin-left: -1.3rem; }
li.check::before { content: '\\2610\\00a0'; }
.gantt svg { width: 100%; height: auto; }
@page { size: A4; margin: 15mm 12mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 9.5pt; }
  h2 { break-before: auto; break-after: avoid; }
  h3 { break-after: avoid; }
  table, blockquote, li, .gantt { break-inside: avoid; }
  .gantt { break-before: page; }
}
";

/// Renders the MOP (with the risk summary of a rehearsal, when given) and the Gantt chart as one
/// HTML page.
pub fn render_html(plan: &Plan, risk: Option<&Risk>) -> String {
    let mop = render_mop_with(plan, risk);
    let mut out =
        String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(
        out,
        "<title>Method of procedure: upgrade of {}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        escape(&plan.site)
    );
    out.push_str(&markdown(&mop));
    out.push_str("<section class=\"gantt\">\n<h2>Gantt chart</h2>\n");
    let svg = super::svg::render_svg(plan);
    // The SVG's own XML declaration has no place inside HTML.
    out.push_str(
        svg.trim_start_matches(|c| c != '<')
            .trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
            .trim_start(),
    );
    out.push_str("</section>\n</body>\n</html>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline Markdown as the MOP writes it: `code`, **bold**, _italic_, `\<` and `\|` escapes.
fn inline(text: &str) -> String {
    let text = text.replace("\\<", "<").replace("\\|", "|");
    let mut out = String::new();
    let mut rest = text.as_str();
    let mut bold = false;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('`') {
            if let Some(end) = r.find('`') {
                let _ = write!(out, "<code>{}</code>", escape(&r[..end]));
                rest = &r[end + 1..];
                continue;
            }
        }
        if let Some(r) = rest.strip_prefix("**") {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix("_(") {
            if let Some(end) = r.find(")_") {
                let _ = write!(out, "<em>({})</em>", escape(&r[..end]));
                rest = &r[end + 2..];
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push_str(&escape(&c.to_string()));
        rest = &rest[c.len_utf8()..];
    }
    if bold {
        out.push_str("</strong>");
    }
    out
}

/// Splits a Markdown table row into its cells (`\|` stays inside a cell).
fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|');
    let row = row.strip_suffix('|').unwrap_or(row);
    let mut out = vec![String::new()];
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push_str("\\|");
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The MOP's Markdown (headings, paragraphs, lists, checkboxes, block quotes, tables) as HTML.
fn markdown(md: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    let mut list: Option<&str> = None;
    let close_list = |out: &mut String, list: &mut Option<&str>| {
        if let Some(tag) = list.take() {
            let _ = writeln!(out, "</{tag}>");
        }
    };
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        let nested = line.len() - t.len() >= 2;
        if let Some(h) = t.strip_prefix('#') {
            close_list(&mut out, &mut list);
            let level = 1 + h.chars().take_while(|c| *c == '#').count();
            let _ = writeln!(out, "<h{level}>{}</h{level}>", inline(t[level..].trim()));
        } else if t.starts_with('|') {
            close_list(&mut out, &mut list);
            out.push_str("<table>\n");
            let header = cells(t);
            let mut j = i + 1;
            let has_rule = lines
                .get(j)
                .is_some_and(|l| l.trim_start().starts_with("|---"));
            if has_rule {
                out.push_str("<thead><tr>");
                for c in &header {
                    let _ = write!(out, "<th>{}</th>", inline(c));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                j += 1;
            } else {
                j = i;
                out.push_str("<tbody>\n");
            }
            while j < lines.len() && lines[j].trim_start().starts_with('|') {
                out.push_str("<tr>");
                for c in cells(lines[j]) {
                    let _ = write!(out, "<td>{}</td>", inline(&c));
                }
                out.push_str("</tr>\n");
                j += 1;
            }
            out.push_str("</tbody></table>\n");
            i = j;
            continue;
        } else if let Some(q) = t.strip_prefix("> ") {
            close_list(&mut out, &mut list);
            let _ = writeln!(out, "<blockquote>{}</blockquote>", inline(q));
        } else if let Some(item) = t.strip_prefix("- ") {
            if list.is_none() {
                out.push_str("<ul>\n");
                list = Some("ul");
            }
            let style = if nested {
                " style=\"margin-left:1.2rem\""
            } else {
                ""
            };
            match item.strip_prefix("[ ] ") {
                Some(check) => {
                    let _ = writeln!(out, "<li class=\"check\"{style}>{}</li>", inline(check));
                }
                None => {
                    let _ = writeln!(out, "<li{style}>{}</li>", inline(item));
                }
            }
        } else if t.is_empty() {
            close_list(&mut out, &mut list);
        } else {
            close_list(&mut out, &mut list);
            let _ = writeln!(out, "<p>{}</p>", inline(t));
        }
        i += 1;
    }
    close_list(&mut out, &mut list);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_lists_and_quotes_become_html() {
        let md = "# T &\n\n| A | B |\n|---|---|\n| `x` | a \\| b |\n\n- [ ] **Verify:** ok\n- plain\n\n> **Warning:** hot\n";
        let html = markdown(md);
        assert!(html.contains("<h1>T &amp;</h1>"), "{html}");
        assert!(html.contains("<th>A</th><th>B</th>"), "{html}");
        assert!(
            html.contains("<td><code>x</code></td><td>a | b</td>"),
            "{html}"
        );
        assert!(
            html.contains("<li class=\"check\"><strong>Verify:</strong> ok</li>"),
            "{html}"
        );
        assert!(
            html.contains("<blockquote><strong>Warning:</strong> hot</blockquote>"),
            "{html}"
        );
    }

    #[test]
    fn the_page_is_self_contained_with_print_css() {
        let html = render_html(&crate::render::sample_plan(), None);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("@media print"));
        assert!(html.contains("<svg"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") || !html.contains("src=\"http"));
        assert!(html.contains("Lab &amp; &lt;Test&gt;"), "{}", &html[..600]);
    }
}
