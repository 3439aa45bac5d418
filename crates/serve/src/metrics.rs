//! `/metrics` in the Prometheus text format: runs by state and approvals pending (read from the
//! store at each scrape), step durations by profile, action and outcome (timed as steps end).
//! No label carries a run's number: a label per run would grow without bound.

use crate::runs::waiting_for_approval;
use crate::store::Store;
use ferry_exec::RunStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunState {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    profile: String,
    action: String,
    outcome: String,
}

type StepHistograms = Family<StepLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    runs: Family<RunState, Gauge>,
    approvals_pending: Gauge,
    steps: StepHistograms,
    webhooks_failed: Counter,
}

fn step_histogram() -> Histogram {
    // 10 s to about 11 h.
    Histogram::new(exponential_buckets(10.0, 2.0, 13))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ferry");
        let runs = Family::<RunState, Gauge>::default();
        registry.register("runs", "Runs in the journal by state", runs.clone());
        let approvals_pending = Gauge::default();
        registry.register(
            "approvals_pending",
            "Pause steps of paused runs waiting for an approval",
            approvals_pending.clone(),
        );
        let steps: StepHistograms =
            Family::new_with_constructor(step_histogram as fn() -> Histogram);
        registry.register(
            "step_duration_seconds",
            "Step durations (driver clock) by profile, action and outcome",
            steps.clone(),
        );
        let webhooks_failed = Counter::default();
        registry.register(
            "webhook_deliveries_failed",
            "Webhook delivery attempts that failed (no answer, or not a 2xx status)",
            webhooks_failed.clone(),
        );
        Metrics {
            webhooks_failed,
            registry,
            runs,
            approvals_pending,
            steps,
        }
    }

    pub fn webhook_failed(&self) {
        self.webhooks_failed.inc();
    }

    pub fn step_ended(&self, profile: &str, action: &str, outcome: &str, seconds: f64) {
        self.steps
            .get_or_create(&StepLabels {
                profile: profile.into(),
                action: action.into(),
                outcome: outcome.into(),
            })
            .observe(seconds);
    }

    /// The text of a scrape: the gauges read again from `store` first.
    pub fn render(&self, store: &dyn Store) -> Result<String, String> {
        let runs = store.runs().map_err(|e| e.to_string())?;
        self.runs.clear();
        for s in [
            RunStatus::Running,
            RunStatus::Paused,
            RunStatus::Stopped,
            RunStatus::Failed,
            RunStatus::Complete,
        ] {
            let n = runs.iter().filter(|r| r.status == s).count();
            self.runs
                .get_or_create(&RunState {
                    state: s.as_str().into(),
                })
                .set(n as i64);
        }
        let mut pending = 0;
        for r in runs.iter().filter(|r| r.status == RunStatus::Paused) {
            let record = store.run(r.id).map_err(|e| e.to_string())?;
            pending += waiting_for_approval(&record).len();
        }
        self.approvals_pending.set(pending as i64);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| e.to_string())?;
        Ok(text)
    }
}
