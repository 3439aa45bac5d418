//! The `twin` driver: carries a plan out against the **simulated** digital twin of the site
//! (`ferry-twin`), in virtual time — or paced to real time with a speed factor, for a demo.
//!
//! The world can live in memory (a rehearsal) or in the journal's driver state (`ferry apply
//! --driver twin`): then it is saved after every change, so that a run killed at any moment
//! resumes on the world exactly as the twin left it. The twin's own record of every step (how
//! many times its effects were applied, how it ended) answers `inspect` after a crash.

use crate::driver::{Driver, DriverError, Inspection, Outcome};
use crate::journal::{Journal, RunId};
use ferry_model::{Facts, PlannedStep, Profile};
use ferry_twin::{StepStatus, World};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Key of the twin's world in the journal's driver state.
pub const TWIN_STATE: &str = "twin";

/// What the journal keeps of a twin: its world and the inputs it was built from.
#[derive(Serialize, Deserialize)]
struct Saved {
    input_hash: String,
    world: World,
}

pub struct TwinDriver<'j> {
    world: World,
    input_hash: String,
    store: Option<&'j Journal>,
    /// Virtual seconds per real second; `None`: as fast as possible.
    speed: Option<f64>,
}

impl<'j> TwinDriver<'j> {
    /// A twin in memory (a rehearsal).
    pub fn new(world: World) -> TwinDriver<'static> {
        TwinDriver {
            world,
            input_hash: String::new(),
            store: None,
            speed: None,
        }
    }

    /// The twin saved in `journal` for these inputs, or a new one from `build` (saved at once).
    /// A twin saved for other inputs is replaced.
    pub fn persistent(
        journal: &'j Journal,
        input_hash: &str,
        profiles: &BTreeMap<String, Profile>,
        build: impl FnOnce() -> Result<World, ferry_twin::TwinError>,
    ) -> Result<TwinDriver<'j>, DriverError> {
        let saved = journal
            .driver_state(TWIN_STATE)?
            .and_then(|text| serde_json::from_str::<Saved>(&text).ok())
            .filter(|s| s.input_hash == input_hash);
        let world = match saved {
            Some(mut s) => {
                s.world
                    .attach(profiles)
                    .map_err(|e| DriverError::Other(e.to_string()))?;
                s.world
            }
            None => build().map_err(|e| DriverError::Other(e.to_string()))?,
        };
        let d = TwinDriver {
            world,
            input_hash: input_hash.to_string(),
            store: Some(journal),
            speed: None,
        };
        d.save()?;
        Ok(d)
    }

    /// Paces virtual time: `speed` virtual seconds pass per real second.
    pub fn with_speed(mut self, speed: Option<f64>) -> Self {
        self.speed = speed.filter(|s| *s > 0.0);
        self
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn into_world(self) -> World {
        self.world
    }

    fn save(&self) -> Result<(), DriverError> {
        let Some(j) = self.store else {
            return Ok(());
        };
        let text = serde_json::to_string(&Saved {
            input_hash: self.input_hash.clone(),
            world: self.world.clone(),
        })
        .map_err(|e| DriverError::Other(format!("cannot save the twin: {e}")))?;
        j.put_driver_state(TWIN_STATE, &text)?;
        Ok(())
    }
}

/// The twin saved in a journal, if any (with its profiles attached).
pub fn saved_world(
    journal: &Journal,
    profiles: &BTreeMap<String, Profile>,
) -> Result<Option<World>, DriverError> {
    let Some(text) = journal.driver_state(TWIN_STATE)? else {
        return Ok(None);
    };
    let mut s: Saved = serde_json::from_str(&text)
        .map_err(|e| DriverError::Other(format!("the saved twin cannot be read: {e}")))?;
    s.world
        .attach(profiles)
        .map_err(|e| DriverError::Other(e.to_string()))?;
    Ok(Some(s.world))
}

impl Driver for TwinDriver<'_> {
    fn now(&self) -> i64 {
        self.world.now
    }

    /// Begins the step in the world. The world is saved when a step ends (before `wait`
    /// reports it), not here: after a crash a step the saved world has not seen begins again,
    /// from the saved state, which is safe because nothing of it had taken effect there.
    fn start(&mut self, run: RunId, step: &PlannedStep) -> Result<(), DriverError> {
        self.world.begin(run, step);
        Ok(())
    }

    fn wait(
        &mut self,
        run: RunId,
        deadline: Option<i64>,
    ) -> Result<Option<(String, Outcome)>, DriverError> {
        let before = self.world.now;
        // With nothing under way (waiting for the booked window to open), virtual time jumps
        // to the deadline at once, even when paced.
        let idle = self.world.running().next().is_none();
        let ended = loop {
            match self.world.advance(deadline) {
                Some((r, id, o)) if r == run => break Some((id, o)),
                // A step of another run (it cannot happen in one process; ignore it).
                Some(_) => continue,
                None => break None,
            }
        };
        if let Some(speed) = self.speed.filter(|_| !idle) {
            let real = (self.world.now - before) as f64 / speed;
            if real > 0.0 {
                std::thread::sleep(std::time::Duration::from_secs_f64(real.min(3600.0)));
            }
        }
        if ended.is_some() {
            // Saved before the executor records the end: what the journal says ended, the
            // saved world has ended too.
            self.save()?;
        }
        if ended.is_none() && deadline.is_none() {
            return Err(DriverError::Other(
                "the twin has nothing left to happen while steps are under way".into(),
            ));
        }
        Ok(ended)
    }

    fn cancel(&mut self, run: RunId, step_id: &str) -> Result<(), DriverError> {
        self.world.cancel(run, step_id);
        self.save()
    }

    fn inspect(&mut self, run: RunId, step: &PlannedStep) -> Result<Inspection, DriverError> {
        Ok(match self.world.status(run, &step.id) {
            None => Inspection::NotStarted,
            Some(StepStatus::Running) => Inspection::Running,
            Some(StepStatus::Ended(o)) => Inspection::Ended(o),
        })
    }

    fn observe(&mut self) -> Result<BTreeMap<String, Facts>, DriverError> {
        Ok(self.world.observe())
    }
}
