//! The `manual` driver: an operator runbook. Starting a step prints its card — number, node,
//! title, rule IDs, instructions and verification; waiting takes the operator's answers for any
//! started step — typed at the terminal (`done`, `failed REASON`, `skip`; with several steps
//! under way `N done`, `N failed REASON`, `N skip`, N being the step's number or its ID), or,
//! without a terminal, written to the journal by `ferry step done|failed|skip STEP_ID` from
//! another shell or a script.
//!
//! Answers are kept in the journal keyed by run and step ID, so `inspect` after a crash returns
//! the answer the operator already gave and the step is not carried out twice; a step whose
//! card was shown (its `started` event) but not answered is still under way.
//!
//! Deadlines: polling the journal ends at the executor's deadline (a gate's timeout); a line
//! typed at the terminal cannot be waited for with a time limit, so there the wait ends with
//! the operator's answer and a gate past its timeout is failed right after it.

use crate::driver::{Driver, DriverError, Inspection, Outcome};
use crate::journal::{Answer, AnswerGiven, Journal, RunId};
use ferry_model::{Plan, PlannedStep};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

/// Where the operator's answers come from.
pub enum Input<'a> {
    /// Lines typed by the operator.
    Lines(Box<dyn BufRead + 'a>),
    /// The journal's answers table, polled at `every`; `max_wait` bounds one wait (`None`: no
    /// limit besides the executor's deadline).
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
    /// Steps shown and not yet answered, by plan number.
    open: BTreeMap<usize, String>,
    /// Who types the answers at the terminal, journaled with them.
    by: String,
}

impl<'a> ManualDriver<'a> {
    /// `now` is the driver's clock (seconds since the Unix epoch): it stamps typed answers and
    /// is compared with the executor's deadlines.
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
            open: BTreeMap::new(),
            by: String::new(),
        }
    }

    /// The operator who types the answers (journaled with each one).
    pub fn answered_by(mut self, by: &str) -> Self {
        self.by = by.to_string();
        self
    }

    fn number(&self, id: &str) -> usize {
        self.numbers.get(id).copied().unwrap_or(0)
    }

    fn show(&mut self, run: RunId, step: &PlannedStep, note: &str) -> std::io::Result<()> {
        let n = self.number(&step.id);
        let o = &mut self.out;
        writeln!(o)?;
        writeln!(
            o,
            "── step {n}/{} ── {} (run {run}){note}",
            self.total, step.id
        )?;
        writeln!(
            o,
            "node:    {}",
            step.node.as_deref().unwrap_or("(whole cluster)")
        )?;
        writeln!(o, "title:   {}", step.title)?;
        writeln!(o, "rules:   {}", step.rules.join(", "))?;
        writeln!(o, "planned: {} min", step.duration_s.div_ceil(60))?;
        if let Some(t) = step.timeout_s {
            writeln!(o, "timeout: {} min", t.div_ceil(60))?;
        }
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

    /// An answer in the journal for a step under way (given ahead of time, or by `ferry step`).
    fn answered(&mut self, run: RunId) -> Result<Option<(String, Outcome)>, DriverError> {
        if self.open.is_empty() {
            return Ok(None);
        }
        let answers = self.journal.answers(run)?;
        let found = self
            .open
            .iter()
            .find_map(|(&n, id)| answers.get(id).map(|a| (n, id.clone(), a.clone())));
        Ok(match found {
            Some((n, id, a)) => {
                self.open.remove(&n);
                writeln!(self.out, "answer:  {id}: {}", answer_word(&a))?;
                Some((id, outcome(a)))
            }
            None => None,
        })
    }

    /// The step a typed line is about, and the answer: `done` with one step under way, or
    /// `N done` / `STEP_ID done` with any number.
    fn parse_typed(&self, line: &str) -> Option<(usize, Answer)> {
        let line = line.trim();
        if let Some(a) = parse_answer(line) {
            return match self.open.len() {
                1 => self.open.keys().next().map(|&n| (n, a)),
                _ => None,
            };
        }
        let (first, rest) = line.split_once(char::is_whitespace)?;
        let n = match first.parse::<usize>() {
            Ok(n) => n,
            Err(_) => self.numbers.get(first).copied()?,
        };
        self.open.contains_key(&n).then_some(())?;
        Some((n, parse_answer(rest)?))
    }

    /// The next line typed at the terminal; `None` when the input ended (or is not typed).
    fn read_typed(&mut self) -> std::io::Result<Option<String>> {
        let Input::Lines(lines) = &mut self.input else {
            return Ok(None);
        };
        let mut line = String::new();
        Ok((lines.read_line(&mut line)? > 0).then_some(line))
    }

    fn prompt(&mut self) -> std::io::Result<()> {
        if self.open.len() == 1 {
            write!(self.out, "done / failed REASON / skip > ")?;
        } else {
            writeln!(self.out, "\nunder way:")?;
            for (n, id) in &self.open {
                writeln!(self.out, "  {n:>4}  {id}")?;
            }
            write!(
                self.out,
                "N done / N failed REASON / N skip (N: the step's number or ID) > "
            )?;
        }
        self.out.flush()
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

/// What an operator's answer makes of a step.
pub(crate) fn outcome_of(a: Answer) -> Outcome {
    outcome(a)
}

fn outcome(a: Answer) -> Outcome {
    match a {
        Answer::Done => Outcome::Done,
        Answer::Failed(r) => Outcome::Failed(r),
        Answer::Skip => Outcome::Skipped,
    }
}

impl Driver for ManualDriver<'_> {
    fn now(&self) -> i64 {
        (self.now)()
    }

    fn start(&mut self, run: RunId, step: &PlannedStep) -> Result<(), DriverError> {
        let n = self.number(&step.id);
        if self.open.insert(n, step.id.clone()).is_none() {
            self.show(run, step, "")?;
        }
        Ok(())
    }

    fn wait(
        &mut self,
        run: RunId,
        deadline: Option<i64>,
    ) -> Result<Option<(String, Outcome)>, DriverError> {
        if let Some(found) = self.answered(run)? {
            return Ok(Some(found));
        }
        if self.open.is_empty() {
            // Nothing to answer (the run waits for its window): the clock runs to the deadline.
            if let Some(d) = deadline {
                sleep_until(&*self.now, d);
            }
            return Ok(None);
        }
        let (every, max_wait) = match &self.input {
            Input::Journal { every, max_wait } => (*every, *max_wait),
            Input::Lines(_) => loop {
                self.prompt()?;
                let Some(line) = self.read_typed()? else {
                    let step = self.open.values().next().cloned().unwrap_or_default();
                    return Err(DriverError::InputClosed { step });
                };
                // An answer given meanwhile with `ferry step` counts too.
                if let Some(found) = self.answered(run)? {
                    return Ok(Some(found));
                }
                match self.parse_typed(&line) {
                    Some((n, a)) => {
                        let id = self.open.remove(&n).unwrap_or_default();
                        let given = AnswerGiven {
                            by: self.by.clone(),
                            early: false,
                        };
                        self.journal
                            .answer_given(run, &id, &a, (self.now)(), &given)?;
                        return Ok(Some((id, outcome(a))));
                    }
                    None if self.open.len() == 1 => {
                        writeln!(self.out, "please answer done, failed REASON or skip")?
                    }
                    None => writeln!(
                        self.out,
                        "please answer N done, N failed REASON or N skip, N being a number listed above or the step's ID"
                    )?,
                }
            },
        };
        let listed: Vec<String> = self.open.values().cloned().collect();
        for id in &listed {
            writeln!(
                self.out,
                "waiting for: ferry step done|failed|skip {id} --run {run}"
            )?;
        }
        self.out.flush()?;
        let began = Instant::now();
        loop {
            if let Some(found) = self.answered(run)? {
                return Ok(Some(found));
            }
            if deadline.is_some_and(|d| (self.now)() >= d) {
                return Ok(None);
            }
            if let Some(m) = max_wait {
                if began.elapsed() >= m {
                    return Err(DriverError::Timeout {
                        step: listed.join(", "),
                        waited_s: m.as_secs(),
                    });
                }
            }
            std::thread::sleep(every);
        }
    }

    fn cancel(&mut self, _run: RunId, step_id: &str) -> Result<(), DriverError> {
        let n = self.number(step_id);
        if self.open.remove(&n).is_some() {
            writeln!(
                self.out,
                "no longer waiting for {step_id}: it passed its timeout"
            )?;
        }
        Ok(())
    }

    fn inspect(&mut self, run: RunId, step: &PlannedStep) -> Result<Inspection, DriverError> {
        if let Some(a) = self.journal.answer_for(run, &step.id)? {
            return Ok(Inspection::Ended(outcome(a)));
        }
        // Shown before the interruption and not answered: still the operator's to answer.
        let n = self.number(&step.id);
        self.open.insert(n, step.id.clone());
        self.show(
            run,
            step,
            " — shown before the interruption, not answered yet",
        )?;
        Ok(Inspection::Running)
    }
}

/// Sleeps until the clock `now` reads `deadline`, in steps of at most a second, so that a clock
/// set forward meanwhile is noticed.
pub(crate) fn sleep_until(now: &dyn Fn() -> i64, deadline: i64) {
    loop {
        let left = deadline - now();
        if left <= 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis((left.min(1) * 1000) as u64));
    }
}

fn answer_word(a: &Answer) -> String {
    match a {
        Answer::Done => "done".into(),
        Answer::Failed(r) => format!("failed: {r}"),
        Answer::Skip => "skip".into(),
    }
}
