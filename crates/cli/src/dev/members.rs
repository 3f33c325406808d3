//! The members' processes: started, killed (SIGKILL), paused (SIGSTOP), resumed (SIGCONT) and
//! restarted with the same command, data directory and (appended) log file.
//!
//! Every call is made from the thread that runs `tally dev`'s main loop: a member's
//! parent-death signal (see `stop_with_parent`) fires when the thread that spawned it ends, so a
//! member restarted from a short-lived thread would be stopped when that thread went away.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

/// What a member's process is doing, as `/ui/cluster` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    Running,
    Paused,
    /// Killed through the API, or exited on its own: dead until restarted.
    Killed,
}

impl Process {
    pub fn as_str(self) -> &'static str {
        match self {
            Process::Running => "running",
            Process::Paused => "paused",
            Process::Killed => "killed",
        }
    }
}

/// What can be done to a member's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Kill,
    Restart,
    Pause,
    Resume,
}

/// Why an action was refused (HTTP 409), or could not be carried out (500).
#[derive(Debug)]
pub enum Refused {
    Conflict(String),
    Failed(String),
}

struct Member {
    name: String,
    args: Vec<OsString>,
    log_path: PathBuf,
    child: Option<Child>,
    paused: bool,
}

pub struct Members {
    exe: PathBuf,
    members: Vec<Member>,
}

impl Members {
    pub fn new(exe: PathBuf) -> Self {
        Self { exe, members: Vec::new() }
    }

    /// Adds a member run as `exe args...`, and starts it.
    pub fn add(&mut self, name: &str, args: Vec<OsString>, log_path: PathBuf) -> Result<(), String> {
        self.members.push(Member { name: name.to_string(), args, log_path, child: None, paused: false });
        self.start(self.members.len() - 1)
    }

    pub fn states(&self) -> Vec<Process> {
        self.members
            .iter()
            .map(|m| match (&m.child, m.paused) {
                (None, _) => Process::Killed,
                (Some(_), true) => Process::Paused,
                (Some(_), false) => Process::Running,
            })
            .collect()
    }

    fn start(&mut self, i: usize) -> Result<(), String> {
        let exe = self.exe.clone();
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log_path)
            .map_err(|e| format!("cannot open {}: {e}", m.log_path.display()))?;
        let stdout = log.try_clone().map_err(|e| format!("cannot open {}: {e}", m.log_path.display()))?;
        let mut command = Command::new(exe);
        super::stop_with_parent(&mut command);
        let child = command
            .args(&m.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", m.name))?;
        m.child = Some(child);
        m.paused = false;
        Ok(())
    }

    fn signal(child: &Child, signal: libc::c_int) -> Result<(), String> {
        // SAFETY: kill(2) on our own, not yet reaped, child.
        if unsafe { libc::kill(child.id() as libc::pid_t, signal) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().to_string())
        }
    }

    pub fn apply(&mut self, i: usize, action: Action) -> Result<(), Refused> {
        let m = &mut self.members[i];
        let name = &m.name;
        match (action, &mut m.child, m.paused) {
            (Action::Restart, None, _) => self.start(i).map_err(Refused::Failed),
            (Action::Restart, Some(_), _) => Err(Refused::Conflict(format!("{name} is already running"))),
            (_, None, _) => Err(Refused::Conflict(format!("{name} is not running"))),
            (Action::Kill, Some(child), _) => {
                // SIGKILL ends a stopped process too.
                let _ = child.kill();
                let _ = child.wait();
                m.child = None;
                m.paused = false;
                Ok(())
            }
            (Action::Pause, Some(_), true) => Err(Refused::Conflict(format!("{name} is already paused"))),
            (Action::Pause, Some(child), false) => {
                Self::signal(child, libc::SIGSTOP).map_err(Refused::Failed)?;
                m.paused = true;
                Ok(())
            }
            (Action::Resume, Some(_), false) => Err(Refused::Conflict(format!("{name} is not paused"))),
            (Action::Resume, Some(child), true) => {
                Self::signal(child, libc::SIGCONT).map_err(Refused::Failed)?;
                m.paused = false;
                Ok(())
            }
        }
    }

    /// Members whose process ended without being asked to: (index, name, how it ended, its
    /// log). Each is reported once; it stays dead until restarted.
    pub fn reap(&mut self) -> Vec<(usize, String, ExitStatus, PathBuf)> {
        let mut ended = Vec::new();
        for (i, m) in self.members.iter_mut().enumerate() {
            if let Some(Ok(Some(status))) = m.child.as_mut().map(Child::try_wait) {
                m.child = None;
                m.paused = false;
                ended.push((i, m.name.clone(), status, m.log_path.clone()));
            }
        }
        ended
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(child) = &mut m.child {
                // SIGKILL also ends a paused member, which a SIGTERM would leave stopped.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
