//! The example sites built into the binary, so `ferry demo` works on a fresh machine.

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

pub fn get(name: &str) -> Option<&'static str> {
    EXAMPLES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn names() -> Vec<&'static str> {
    EXAMPLES.iter().map(|(n, _)| *n).collect()
}

/// The example `text` with its booked window starting at `start` (`now`, rounded down to the
/// minute and written in the example's own zone, or an RFC 3339 time), its length kept; a
/// staging period it books moves with it.
pub fn with_window_start(name: &str, text: &str, start: &str) -> Result<String, String> {
    let line_at = text
        .lines()
        .position(|l| l.trim_start().starts_with("window") && l.contains("start"))
        .ok_or_else(|| format!("example `{name}` books no window"))?;
    let line = text.lines().nth(line_at).unwrap_or_default();
    let (before, rest) = line
        .split_once("start = \"")
        .ok_or_else(|| format!("example `{name}`: its window line has no `start = \"…\"`"))?;
    let (old, after) = rest
        .split_once('"')
        .ok_or_else(|| format!("example `{name}`: its window start is not closed"))?;
    let new = if start == "now" {
        let offset = utc_offset(old)
            .ok_or_else(|| format!("example `{name}`: window start `{old}` has no offset"))?;
        jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::fixed(offset))
            .strftime("%Y-%m-%dT%H:%M:00%:z")
            .to_string()
    } else {
        start
            .parse::<jiff::Timestamp>()
            .map_err(|e| {
                format!(
                    "--window-start `{start}`: not `now` nor an RFC 3339 time with its offset \
(2026-12-05T22:00:00-05:00): {e}"
                )
            })
            .map(|_| start.to_string())?
    };
    let mut out: Vec<String> = text.lines().map(str::to_string).collect();
    out[line_at] = format!("{before}start = \"{new}\"{after}");
    // A staging period keeps its place before the window.
    let shift = match (
        old.parse::<jiff::Timestamp>(),
        new.parse::<jiff::Timestamp>(),
    ) {
        (Ok(a), Ok(b)) => b.as_second() - a.as_second(),
        _ => 0,
    };
    if let Some(at) = out
        .iter()
        .position(|l| l.trim_start().starts_with("stage") && l.contains("start = \""))
    {
        let line = out[at].clone();
        if let Some((head, rest)) = line.split_once("start = \"") {
            if let Some((stage_old, tail)) = rest.split_once('"') {
                let moved = stage_old
                    .parse::<jiff::Timestamp>()
                    .ok()
                    .zip(utc_offset(stage_old))
                    .and_then(|(t, offset)| {
                        jiff::Timestamp::from_second(t.as_second() + shift)
                            .ok()
                            .map(|t| {
                                t.to_zoned(jiff::tz::TimeZone::fixed(offset))
                                    .strftime("%Y-%m-%dT%H:%M:%S%:z")
                                    .to_string()
                            })
                    });
                if let Some(moved) = moved {
                    out[at] = format!("{head}start = \"{moved}\"{tail}");
                }
            }
        }
    }
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    Ok(joined)
}

/// The UTC offset an RFC 3339 time is written with (`-05:00`, `Z`).
fn utc_offset(rfc3339: &str) -> Option<jiff::tz::Offset> {
    let ts: jiff::Timestamp = rfc3339.parse().ok()?;
    let dt: jiff::civil::DateTime = rfc3339.get(..19)?.parse().ok()?;
    let local = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    jiff::tz::Offset::from_seconds((local.as_second() - ts.as_second()) as i32).ok()
}
