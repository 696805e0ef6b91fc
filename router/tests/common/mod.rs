//! Helpers shared by the live tests (`live_netns.rs`, `live_gateway.rs`): the environment check,
//! the [`Lab`] guard that owns namespaces, processes and files of one test, and small command
//! wrappers. Each test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const TF: &str = env!("CARGO_BIN_EXE_tunfilter");

/// Whether live tests can run here; panics under CI=true when they cannot.
pub fn live_env() -> bool {
    live_env_with(&[])
}

/// [`live_env`] for a test that also needs the programs in `extra` (command, version flag).
pub fn live_env_with(extra: &[(&str, &str)]) -> bool {
    live_env_with_files(extra, &[])
}

/// [`live_env_with`] plus executables that have no version flag to run (daemons such as
/// `/usr/sbin/in.ntalkd`), which only have to exist.
pub fn live_env_with_files(extra: &[(&str, &str)], files: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !rustix::process::getuid().is_root() {
        missing.push("root");
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun");
    }
    for (cmd, arg) in [
        ("ip", "-V"),
        ("ping", "-V"),
        ("curl", "--version"),
        ("python3", "--version"),
        ("socat", "-V"),
    ]
    .iter()
    .chain(extra)
    {
        let ok = Command::new(cmd)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            missing.push(cmd);
        }
    }
    for f in files {
        if !Path::new(f).is_file() {
            missing.push(f);
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "\n!!!!!!!! live netns tests cannot run: missing {} !!!!!!!!\n",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}(CI=true: failing instead of skipping)");
    }
    eprintln!("{msg}skipping");
    false
}

/// Namespaces, processes and files of one test; all removed on drop.
pub struct Lab {
    pub tag: String,
    pub dir: PathBuf,
    pub namespaces: Vec<String>,
    pub tunfilter: Option<Child>,
    pub others: Vec<Child>,
}

impl Lab {
    pub fn new(test: &str) -> Lab {
        // Short and unique per process and test: device names are limited to 15 bytes
        // ("tflv" + 5 hex digits + test tag + side). The prefix marks them as ours.
        assert!(
            test.len() <= 4,
            "test tag {test:?} too long for a device name"
        );
        let tag = format!("tflv{:05x}{test}", std::process::id() & 0xfffff);
        let dir = std::env::temp_dir().join(format!("tunfilter-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        Lab {
            tag,
            dir,
            namespaces: Vec::new(),
            tunfilter: None,
            others: Vec::new(),
        }
    }

    /// A namespace name / device name for `side` ("l", "w").
    pub fn name(&self, side: &str) -> String {
        format!("{}{side}", self.tag)
    }

    pub fn netns(&mut self, side: &str) -> String {
        let ns = self.name(side);
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        sh(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }

    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.dir.join(file);
        fs::write(&p, text).expect("write test file");
        p
    }

    /// Starts tunfilter and waits until it serves its control socket.
    pub fn start(&mut self, config: &Path, workers: usize) {
        let log = fs::File::create(self.dir.join("tunfilter.log")).expect("log file");
        let child = Command::new(TF)
            .args(["run", "--config"])
            .arg(config)
            .arg("--socket")
            .arg(self.socket())
            .args(["--workers", &workers.to_string()])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tunfilter");
        self.tunfilter = Some(child);
        let t0 = Instant::now();
        while !self.socket().exists() {
            if let Some(c) = self.tunfilter.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("tunfilter exited early ({st}):\n{}", self.log());
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "tunfilter did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("tunfilter.log")).unwrap_or_default()
    }

    /// A background process inside `ns`, killed on drop.
    pub fn spawn_in(&mut self, ns: &str, args: &[&str]) {
        let c = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in namespace");
        self.others.push(c);
    }

    /// A background process inside `ns` whose stdout and stderr go to `file` in the lab
    /// folder (a server that logs its peers); killed on drop. Returns the log's path.
    pub fn spawn_logged(&mut self, ns: &str, file: &str, args: &[&str]) -> PathBuf {
        let path = self.dir.join(file);
        let out = fs::File::create(&path).expect("server log file");
        let err = out.try_clone().expect("server log file");
        let c = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn in namespace");
        self.others.push(c);
        path
    }

    /// Sends `sig` to the running tunfilter.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = self
            .tunfilter
            .as_ref()
            .and_then(|c| rustix::process::Pid::from_raw(c.id() as i32))
            .expect("tunfilter running");
        rustix::process::kill_process(pid, sig).expect("signal tunfilter");
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        let (group, rest) = args.split_first().expect("a command");
        let mut c = Command::new(TF);
        c.arg(group);
        if *group == "ct" {
            c.arg("--socket").arg(self.socket()).args(rest);
        } else {
            c.args(rest).arg("--socket").arg(self.socket());
        }
        c.output().expect("run tunfilter client")
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status success.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.tunfilter.take() else {
            return false;
        };
        if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.tunfilter.is_some() && !self.stop() {
            eprintln!("tunfilter did not stop cleanly; log:\n{}", self.log());
        }
        for c in &mut self.others {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            // `ip netns exec` children may have left grandchildren (the servers) behind.
            if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).output();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        if std::thread::panicking() {
            eprintln!("tunfilter log of the failed test:\n{}", self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn sh(args: &[&str]) -> Output {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Runs a command inside `ns`; returns whether it succeeded.
pub fn ok_in(ns: &str, args: &[&str]) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command inside `ns` and returns its output, whatever the exit status.
pub fn run_in(ns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run command in namespace")
}

pub fn ping(ns: &str, dst: &str) -> bool {
    ok_in(ns, &["ping", "-c", "2", "-i", "0.2", "-W", "2", dst])
}

/// Polls until `f` is true or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

pub const KIND_TUN: &str = "tun";
pub const KIND_TAP: &str = "tap";
