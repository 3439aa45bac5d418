//! A service's files under the agent's directory: the A/B slots with their `slot.json`, the
//! `current` link (switched by an atomic rename), configuration, snapshots, data and logs.

use ferry_model::agent::{SlotVersion, SnapshotInfo};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One of the two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    pub fn parse(s: &str) -> Option<Slot> {
        match s {
            "a" => Some(Slot::A),
            "b" => Some(Slot::B),
            _ => None,
        }
    }
}

/// What a slot holds (`slot.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    pub version: String,
    /// SHA-256 of the package archive, hex.
    pub sha256: String,
    /// Unix time of the stage.
    #[serde(default)]
    pub staged: i64,
}

/// The paths of one service (`DIR/services/NAME`).
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

impl Layout {
    pub fn new(agent_dir: &Path, service: &str) -> Layout {
        Layout {
            root: agent_dir.join("services").join(service),
        }
    }
    pub fn slot(&self, s: Slot) -> PathBuf {
        self.root.join("slots").join(s.as_str())
    }
    pub fn staging(&self) -> PathBuf {
        self.root.join("slots").join(".staging")
    }
    pub fn current(&self) -> PathBuf {
        self.root.join("current")
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config")
    }
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn log_file(&self) -> PathBuf {
        self.logs().join("service.log")
    }
    /// The process the agent runs: `PID STARTTIME SLOT`.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("service.pid")
    }
    /// The pid file being written, renamed over `pid_file` once whole.
    pub fn pid_file_new(&self) -> PathBuf {
        self.root.join(".service.pid.new")
    }
    /// Environment for a systemd unit (`EnvironmentFile=`).
    pub fn env_file(&self) -> PathBuf {
        self.root.join("service.env")
    }

    /// Creates the directories.
    pub fn ensure(&self) -> std::io::Result<()> {
        for d in [
            self.root.join("slots"),
            self.slot(Slot::A),
            self.slot(Slot::B),
            self.config(),
            self.snapshots(),
            self.data(),
            self.logs(),
        ] {
            std::fs::create_dir_all(&d).map_err(|e| io_err("cannot create", &d, e))?;
        }
        Ok(())
    }

    /// The slot `current` points at.
    pub fn active(&self) -> Option<Slot> {
        let target = std::fs::read_link(self.current()).ok()?;
        Slot::parse(target.file_name()?.to_str()?)
    }

    /// The slot the next stage fills: the one not active (`a` when none is).
    pub fn inactive(&self) -> Slot {
        self.active().map(Slot::other).unwrap_or(Slot::A)
    }

    pub fn info(&self, s: Slot) -> Option<SlotInfo> {
        let text = std::fs::read_to_string(self.slot(s).join("slot.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn version(&self, s: Slot) -> Option<SlotVersion> {
        self.info(s).map(|i| SlotVersion {
            slot: s.as_str().to_string(),
            version: i.version,
        })
    }

    /// (active, inactive) as the API reports them.
    pub fn versions(&self) -> (Option<SlotVersion>, Option<SlotVersion>) {
        match self.active() {
            Some(a) => (self.version(a), self.version(a.other())),
            None => (None, self.version(Slot::A).or(self.version(Slot::B))),
        }
    }

    /// Points `current` at `slot` (or removes it) with an atomic rename, then syncs the directory.
    pub fn set_active(&self, slot: Option<Slot>) -> std::io::Result<()> {
        let cur = self.current();
        match slot {
            Some(s) => {
                let tmp = self.root.join(".current.new");
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(Path::new("slots").join(s.as_str()), &tmp)
                    .map_err(|e| io_err("cannot create", &tmp, e))?;
                std::fs::rename(&tmp, &cur).map_err(|e| io_err("cannot replace", &cur, e))?;
            }
            None => match std::fs::remove_file(&cur) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("cannot remove", &cur, e)),
            },
        }
        sync_dir(&self.root)
    }

    /// Replaces `slot`'s content with the unpacked `staging` directory and records what it holds.
    pub fn install(&self, slot: Slot, info: &SlotInfo) -> std::io::Result<()> {
        let dest = self.slot(slot);
        let staging = self.staging();
        std::fs::write(
            staging.join("slot.json"),
            serde_json::to_string_pretty(info).unwrap_or_default(),
        )
        .map_err(|e| io_err("cannot write", &staging, e))?;
        self.empty(slot)?;
        let _ = std::fs::remove_dir(&dest);
        std::fs::rename(&staging, &dest).map_err(|e| io_err("cannot move into", &dest, e))?;
        sync_dir(&self.root.join("slots"))
    }

    /// Empties a slot (the directory stays).
    pub fn empty(&self, slot: Slot) -> std::io::Result<()> {
        let dest = self.slot(slot);
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(|e| io_err("cannot empty", &dest, e))?;
        }
        std::fs::create_dir_all(&dest).map_err(|e| io_err("cannot create", &dest, e))
    }

    /// Every snapshot, oldest first.
    pub fn snapshot_list(&self) -> Vec<SnapshotInfo> {
        let mut v: Vec<SnapshotInfo> = std::fs::read_dir(self.snapshots())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read_to_string(e.path().join("snapshot.json")).ok())
                    .filter_map(|t| serde_json::from_str(&t).ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a: &SnapshotInfo, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        v
    }

    /// Whether a snapshot ID names a snapshot of this service (IDs are the agent's own names).
    pub fn snapshot_exists(&self, id: &str) -> bool {
        crate::config::is_plain_name(id)
            && self.snapshots().join(id).join("snapshot.json").is_file()
    }

    /// Copies the configuration directory into a new snapshot tagged with `op` and `time`.
    pub fn take_snapshot(&self, op: &str, time: i64) -> std::io::Result<SnapshotInfo> {
        use sha2::Digest;
        let stamp = utc_stamp(time);
        let mut n = 0u32;
        let (id, dir) = loop {
            let h = sha2::Sha256::digest(format!("{op}\n{time}\n{n}").as_bytes());
            let id = format!("{stamp}-{:02x}{:02x}", h[0], h[1]);
            let dir = self.snapshots().join(&id);
            if !dir.exists() {
                break (id, dir);
            }
            n += 1;
        };
        let tmp = self.snapshots().join(format!(".{id}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        copy_tree(&self.config(), &tmp.join("config"))?;
        let info = SnapshotInfo {
            id: id.clone(),
            op: op.to_string(),
            time,
        };
        std::fs::write(
            tmp.join("snapshot.json"),
            serde_json::to_string_pretty(&info).unwrap_or_default(),
        )
        .map_err(|e| io_err("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &dir).map_err(|e| io_err("cannot create", &dir, e))?;
        sync_dir(&self.snapshots())?;
        Ok(info)
    }

    /// Puts a snapshot's configuration back in place of the present one.
    pub fn restore_snapshot(&self, id: &str) -> std::io::Result<()> {
        let src = self.snapshots().join(id).join("config");
        let tmp = self.root.join(".config.restore");
        let _ = std::fs::remove_dir_all(&tmp);
        copy_tree(&src, &tmp)?;
        let old = self.root.join(".config.old");
        let _ = std::fs::remove_dir_all(&old);
        let cfg = self.config();
        if cfg.exists() {
            std::fs::rename(&cfg, &old).map_err(|e| io_err("cannot move", &cfg, e))?;
        }
        std::fs::rename(&tmp, &cfg).map_err(|e| io_err("cannot move into", &cfg, e))?;
        let _ = std::fs::remove_dir_all(&old);
        sync_dir(&self.root)
    }

    /// Removes what an interrupted stage or snapshot left.
    pub fn clean_leftovers(&self) {
        let _ = std::fs::remove_dir_all(self.staging());
        let _ = std::fs::remove_file(self.root.join(".current.new"));
        let _ = std::fs::remove_file(self.pid_file_new());
        let _ = std::fs::remove_dir_all(self.root.join(".config.restore"));
        if let Ok(rd) = std::fs::read_dir(self.snapshots()) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with('.') {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        // A restore interrupted between its two renames leaves the old configuration aside.
        let old = self.root.join(".config.old");
        if old.exists() && !self.config().exists() {
            let _ = std::fs::rename(&old, self.config());
        }
        let _ = std::fs::remove_dir_all(old);
    }
}

/// Copies a directory tree (files, directories, symbolic links as links).
pub fn copy_tree(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| io_err("cannot create", dest, e))?;
    let rd = match std::fs::read_dir(src) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("cannot read", src, e)),
    };
    for e in rd {
        let e = e.map_err(|e| io_err("cannot read", src, e))?;
        let from = e.path();
        let to = dest.join(e.file_name());
        let ft = e.file_type().map_err(|e| io_err("cannot read", &from, e))?;
        if ft.is_symlink() {
            let target = std::fs::read_link(&from).map_err(|e| io_err("cannot read", &from, e))?;
            std::os::unix::fs::symlink(target, &to).map_err(|e| io_err("cannot create", &to, e))?;
        } else if ft.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            std::fs::copy(&from, &to).map_err(|e| io_err("cannot copy", &from, e))?;
        }
    }
    Ok(())
}

/// Makes a directory's entries (renames, new files) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("cannot sync", dir, e))
}

/// `YYYYMMDDTHHMMSS` of a Unix time, in UTC.
pub fn utc_stamp(t: i64) -> String {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        for (t, s) in [
            (0, "19700101T000000"),
            (1_796_515_213, "20261206T000013"),
            (951_782_400, "20000229T000000"),
        ] {
            assert_eq!(utc_stamp(t), s, "{t}");
        }
    }
}
