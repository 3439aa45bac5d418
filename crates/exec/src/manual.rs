//! The `manual` driver: an operator runbook. For each step it prints the step's number, node,
//! title, rule IDs, instructions and verification, then waits for the operator's answer —
//! typed at the terminal (`done`, `failed REASON`, `skip`), or, without a terminal, written to
//! the journal by `ferry step done|failed|skip STEP_ID` from another shell or a script.
//!
//! Answers are kept in the journal keyed by run and step ID, so `inspect` after a crash returns
//! the answer the operator already gave and the step is not carried out twice.

use crate::driver::{Driver, DriverError, Outcome};
use crate::journal::{Answer, Journal, RunId};
use ferry_model::{Plan, PlannedStep};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

/// Where the operator's answers come from.
pub enum Input<'a> {
    /// Lines typed by the operator (`done`, `failed REASON`, `skip`).
    Lines(Box<dyn BufRead + 'a>),
    /// The journal's answers table, polled at `every`, for at most `max_wait` (`None`: no limit).
    Journal {
        every: Duration,
        max_wait: Option<Duration>,
    },
}

pub struct ManualDriver<'a> {
    journal: &'a Journal,
    numbers: HashMap<String, usize>,
    total: usize,
    input: Input<'a>,
    out: Box<dyn Write + 'a>,
    now: Box<dyn Fn() -> i64 + 'a>,
}

impl<'a> ManualDriver<'a> {
    /// `now` stamps the answers typed at the terminal (seconds since the Unix epoch).
    pub fn new(
        journal: &'a Journal,
        plan: &Plan,
        input: Input<'a>,
        out: Box<dyn Write + 'a>,
        now: Box<dyn Fn() -> i64 + 'a>,
    ) -> Self {
        let numbers = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i + 1))
            .collect();
        ManualDriver {
            journal,
            numbers,
            total: plan.steps.len(),
            input,
            out,
            now,
        }
    }

    fn show(&mut self, run: RunId, step: &PlannedStep) -> std::io::Result<()> {
        let n = self.numbers.get(&step.id).copied().unwrap_or(0);
        let o = &mut self.out;
        writeln!(o)?;
        writeln!(o, "── step {n}/{} ── {} (run {run})", self.total, step.id)?;
        writeln!(
            o,
            "node:    {}",
            step.node.as_deref().unwrap_or("(whole cluster)")
        )?;
        writeln!(o, "title:   {}", step.title)?;
        writeln!(o, "rules:   {}", step.rules.join(", "))?;
        writeln!(o, "planned: {} min", step.duration_s.div_ceil(60))?;
        if let Some(w) = &step.warning {
            writeln!(o, "warning: {w}")?;
        }
        if !step.instructions.trim().is_empty() {
            writeln!(o, "do:")?;
            for l in step.instructions.trim().lines() {
                writeln!(o, "  {l}")?;
            }
        }
        if !step.verify.trim().is_empty() {
            writeln!(o, "verify:")?;
            for l in step.verify.trim().lines() {
                writeln!(o, "  {l}")?;
            }
        }
        o.flush()
    }
}

/// Parses an operator's line: `done`, `failed REASON`, `skip`.
pub fn parse_answer(line: &str) -> Option<Answer> {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    match word.to_ascii_lowercase().as_str() {
        "done" | "d" => Some(Answer::Done),
        "skip" | "s" => Some(Answer::Skip),
        "failed" | "fail" | "f" => Some(Answer::Failed(if rest.trim().is_empty() {
            "failed by the operator".into()
        } else {
            rest.trim().to_string()
        })),
        _ => None,
    }
}

fn outcome(a: Answer) -> Outcome {
    match a {
        Answer::Done => Outcome::Done,
        Answer::Failed(r) => Outcome::Failed(r),
        Answer::Skip => Outcome::Skipped,
    }
}

impl Driver for ManualDriver<'_> {
    fn run(&mut self, run: RunId, step: &PlannedStep) -> Result<Outcome, DriverError> {
        // An answer given earlier (e.g. before a crash, or ahead of time by a script) counts.
        if let Some(a) = self.journal.answer_for(run, &step.id)? {
            self.show(run, step)?;
            writeln!(self.out, "answer:  {}", answer_word(&a))?;
            return Ok(outcome(a));
        }
        self.show(run, step)?;
        match &mut self.input {
            Input::Lines(lines) => loop {
                write!(self.out, "done / failed REASON / skip > ")?;
                self.out.flush()?;
                let mut line = String::new();
                if lines.read_line(&mut line)? == 0 {
                    return Err(DriverError::InputClosed {
                        step: step.id.clone(),
                    });
                }
                match parse_answer(&line) {
                    Some(a) => {
                        self.journal.answer(run, &step.id, &a, (self.now)())?;
                        return Ok(outcome(a));
                    }
                    None => writeln!(self.out, "please answer done, failed REASON or skip")?,
                }
            },
            Input::Journal { every, max_wait } => {
                writeln!(
                    self.out,
                    "waiting for: ferry step done|failed|skip {} --run {run}",
                    step.id
                )?;
                self.out.flush()?;
                let started = Instant::now();
                loop {
                    if let Some(a) = self.journal.answer_for(run, &step.id)? {
                        writeln!(self.out, "answer:  {}", answer_word(&a))?;
                        return Ok(outcome(a));
                    }
                    if let Some(m) = max_wait {
                        if started.elapsed() >= *m {
                            return Err(DriverError::Timeout {
                                step: step.id.clone(),
                                waited_s: m.as_secs(),
                            });
                        }
                    }
                    std::thread::sleep(*every);
                }
            }
        }
    }

    fn inspect(&mut self, run: RunId, step_id: &str) -> Result<Option<Outcome>, DriverError> {
        Ok(self.journal.answer_for(run, step_id)?.map(outcome))
    }
}

fn answer_word(a: &Answer) -> String {
    match a {
        Answer::Done => "done".into(),
        Answer::Failed(r) => format!("failed: {r}"),
        Answer::Skip => "skip".into(),
    }
}
