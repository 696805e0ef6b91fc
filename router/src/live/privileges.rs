//! Giving up privileges once the devices are up.
//!
//! Setup needs root: creating TUN/TAP devices and configuring the namespaces takes
//! CAP_NET_ADMIN, binding the control socket in `/run` takes write access there. The running
//! gateway needs none of it: it reads and writes descriptors that are already open (the device
//! queues, the control socket, the wake-up pipe), and a reload only reads the rule files. So
//! [`drop_to`] switches to an unprivileged user (`[process] user`, `nobody` by default) with
//! no capabilities at all, then fences the process in further, so that a bug in a parser that
//! handles hostile input cannot become a write to a file:
//!
//! - the capability bounding set is emptied and `no_new_privs` set: nothing this process could
//!   execute regains a capability;
//! - the process is made non-dumpable, so other processes of the same user (`nobody` is often
//!   shared) can neither ptrace it nor open its descriptors through `/proc`;
//! - Landlock (where the kernel has it) allows reading regular files only beneath the folders
//!   of the rule files, and no other file system access, no TCP bind/connect, no abstract Unix
//!   socket and no signal to a process outside the sandbox;
//! - a seccomp filter lets through only the system calls the running gateway makes, and
//!   `openat` only without write access, creation or truncation; everything else fails with
//!   EPERM (a failure the code reports, not a kill that would look like a crash).
//!
//! Credentials are per thread in Linux. [`drop_to`] therefore runs while the process has a
//! single thread (it checks) and every thread spawned later inherits the result; the setuid
//! calls go through glibc, which would apply them to every thread anyway, and the seccomp filter
//! is installed with TSYNC.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::io;
use std::path::{Path, PathBuf};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use super::LiveError;

/// Whom the gateway runs as after setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAs {
    /// Stay root with every privilege (`user = "root"`, or any name of uid 0): for debugging.
    Root,
    /// Switch to this account.
    User(Account),
}

/// An unprivileged account to switch to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User name, as configured.
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// The group's name (the configured one, or the user's login group's if it has a name).
    pub group: String,
    /// The gid.
    pub gid: u32,
}

/// Why [`lookup`] failed: which key is wrong, and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The user does not exist (or the lookup failed).
    User(String),
    /// The group does not exist, or a group was given with a root user.
    Group(String),
}

/// Looks up `user` and `group` (default: the user's login group) in the system's user and group
/// databases (NSS: `/etc/passwd`, LDAP, ...).
pub fn lookup(user: &str, group: Option<&str>) -> Result<RunAs, LookupError> {
    let (uid, login_gid) = match passwd_entry(user) {
        Ok(Some(ids)) => ids,
        Ok(None) => {
            return Err(LookupError::User(format!(
                "no user named {user:?} on this system: expected an existing user for the \
                 gateway to run as after setup, such as \"nobody\" or a dedicated system user \
                 (or \"root\" to keep every privilege, for debugging)"
            )))
        }
        Err(e) => {
            return Err(LookupError::User(format!(
                "cannot look up user {user:?}: {e}"
            )))
        }
    };
    if uid == 0 {
        if let Some(g) = group {
            return Err(LookupError::Group(format!(
                "group {g:?} has no effect: user {user:?} is root (uid 0), which keeps every \
                 privilege; remove `group` or name an unprivileged user"
            )));
        }
        return Ok(RunAs::Root);
    }
    let (group, gid) = match group {
        None => {
            let name = group_name(login_gid).unwrap_or_else(|| login_gid.to_string());
            (name, login_gid)
        }
        Some(g) => match group_entry(g) {
            Ok(Some(gid)) => (g.to_owned(), gid),
            Ok(None) => {
                return Err(LookupError::Group(format!(
                    "no group named {g:?} on this system: expected an existing group (or leave \
                     `group` out to use the login group of {user:?})"
                )))
            }
            Err(e) => {
                return Err(LookupError::Group(format!(
                    "cannot look up group {g:?}: {e}"
                )))
            }
        },
    };
    Ok(RunAs::User(Account {
        user: user.to_owned(),
        uid,
        group,
        gid,
    }))
}

/// Largest buffer offered to the `get*_r` lookups (an entry with thousands of group members
/// needs more than the usual 1 KiB).
const MAX_LOOKUP_BUF: usize = 1 << 20;

/// Whether a `get*nam_r` return code means "no such entry" (getpwnam_r(3) lists these).
fn not_found(rc: i32) -> bool {
    matches!(rc, libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM)
}

/// (uid, login gid) of `name`, `None` if there is no such user.
#[allow(unsafe_code)]
fn passwd_entry(name: &str) -> io::Result<Option<(u32, u32)>> {
    let Ok(c) = CString::new(name) else {
        return Ok(None);
    };
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: an all-zero `passwd` is a valid value (null pointers, zero ids).
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `c` is NUL-terminated, `pw` and `out`
        // are live locals, and `buf` is writable for `buf.len()` bytes.
        let rc =
            unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
        if rc == libc::ERANGE && buf.len() < MAX_LOOKUP_BUF {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 && !not_found(rc) {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((rc == 0 && !out.is_null()).then_some((pw.pw_uid, pw.pw_gid)));
    }
}

/// The gid of group `name`, `None` if there is no such group.
#[allow(unsafe_code)]
fn group_entry(name: &str) -> io::Result<Option<u32>> {
    let Ok(c) = CString::new(name) else {
        return Ok(None);
    };
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: an all-zero `group` is a valid value.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `passwd_entry`.
        let rc =
            unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut out) };
        if rc == libc::ERANGE && buf.len() < MAX_LOOKUP_BUF {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 && !not_found(rc) {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((rc == 0 && !out.is_null()).then_some(gr.gr_gid));
    }
}

/// The name of group `gid`, for the log.
#[allow(unsafe_code)]
fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: an all-zero `group` is a valid value.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        // SAFETY: `gr` and `out` are live locals and `buf` is writable for its length.
        let rc = unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr(), buf.len(), &mut out) };
        if rc == libc::ERANGE && buf.len() < MAX_LOOKUP_BUF {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || out.is_null() || gr.gr_name.is_null() {
            return None;
        }
        // SAFETY: on success `gr_name` points to a NUL-terminated string inside `buf`, which
        // is alive here.
        let name = unsafe { CStr::from_ptr(gr.gr_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// What [`drop_to`] achieved, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Whether Landlock is enforced (false: the kernel lacks it; the rest still holds).
    pub landlock: bool,
}

/// Switches the process to `account` for good, with no capabilities, and sandboxes it:
/// `readable` are the files the running gateway must still be able to read (the rule files,
/// re-read by `reload`). Must run while the process has exactly one thread. An error leaves
/// the process in an unknown state: the caller must exit.
pub fn drop_to(account: &Account, readable: &[PathBuf]) -> Result<Dropped, LiveError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        LiveError::System(format!(
            "cannot drop privileges to user {:?}: {what}: {e}",
            account.user
        ))
    };
    match thread_count() {
        Some(1) => {}
        Some(n) => {
            // Capabilities and Landlock domains are per thread: a thread started earlier
            // would keep them.
            return Err(fail(
                "the process has more than one thread",
                &format!("{n} threads"),
            ));
        }
        None => return Err(fail("cannot count threads", &"no /proc/self/status")),
    }
    // Built first: everything that can fail for reasons other than the kernel's answer fails
    // before any irreversible step.
    let filter = seccomp_filter().map_err(|e| fail("building the seccomp filter", &e))?;
    let ruleset = landlock_ruleset(readable).map_err(|e| fail("preparing Landlock", &e))?;

    empty_bounding_set().map_err(|e| fail("emptying the capability bounding set", &e))?;
    set_ids(account.uid, account.gid).map_err(|e| fail("switching user and group", &e))?;
    clear_capabilities().map_err(|e| fail("clearing capabilities", &e))?;
    prctl_set(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| fail("setting no_new_privs", &e))?;
    prctl_set(libc::PR_SET_DUMPABLE, 0).map_err(|e| fail("making the process non-dumpable", &e))?;
    let landlock = match ruleset.restrict_self() {
        Ok(s) => s.ruleset != landlock::RulesetStatus::NotEnforced,
        Err(e) => return Err(fail("enforcing Landlock", &e)),
    };
    seccompiler::apply_filter_all_threads(&filter)
        .map_err(|e| fail("installing the seccomp filter", &e))?;
    Ok(Dropped { landlock })
}

/// The `Threads:` line of /proc/self/status.
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

#[allow(unsafe_code)]
fn prctl_set(option: libc::c_int, value: libc::c_ulong) -> io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS and PR_SET_DUMPABLE take plain integers; no memory is
    // passed.
    let rc = unsafe {
        libc::prctl(
            option,
            value,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drops every capability the kernel knows from the bounding set (the `caps` crate's list
/// could miss one that a newer kernel added).
#[allow(unsafe_code)]
fn empty_bounding_set() -> io::Result<()> {
    for cap in 0..=63 as libc::c_ulong {
        // SAFETY: PR_CAPBSET_DROP takes a capability number; no memory is passed.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAPBSET_DROP,
                cap,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            // EINVAL: past the last capability this kernel has.
            if e.raw_os_error() == Some(libc::EINVAL) && cap > 0 {
                return Ok(());
            }
            return Err(e);
        }
    }
    Ok(())
}

/// No supplementary groups, then gid and uid (real, effective and saved), through glibc, whose
/// wrappers apply them to every thread of the process. Then checks that root cannot come back.
#[allow(unsafe_code)]
fn set_ids(uid: u32, gid: u32) -> io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: a zero-length list with a null pointer is how setgroups(2) clears the list.
    check(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setresgid(gid, gid, gid) })?;
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setresuid(uid, uid, uid) })?;
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are live locals.
    check(unsafe { libc::getresuid(&mut r, &mut e, &mut s) })?;
    let (mut gr, mut ge, mut gs) = (0, 0, 0);
    // SAFETY: as above.
    check(unsafe { libc::getresgid(&mut gr, &mut ge, &mut gs) })?;
    if [r, e, s] != [uid; 3] || [gr, ge, gs] != [gid; 3] {
        return Err(io::Error::other(format!(
            "ids are uid {r}/{e}/{s} gid {gr}/{ge}/{gs} after the switch"
        )));
    }
    // SAFETY: plain integer argument. It must fail: if it succeeded, root could come back.
    if unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other(
            "setuid(0) still succeeds after the switch",
        ));
    }
    Ok(())
}

/// Empties the effective, permitted, inheritable and ambient sets. The uid switch already
/// cleared the first two (no SECBIT_KEEP_CAPS); this makes it explicit and checks it.
fn clear_capabilities() -> Result<(), String> {
    use caps::CapSet;
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| e.to_string())?;
        let left = caps::read(None, set).map_err(|e| e.to_string())?;
        if !left.is_empty() {
            return Err(format!("{set:?} still holds {left:?}"));
        }
    }
    Ok(())
}

/// The Landlock ruleset: reading regular files beneath the folders of `readable` (the folder as
/// configured and, if it differs, the one the path resolves to: editors replace a file by a
/// new one, so a rule on the file itself would not cover the next version) and nothing else.
fn landlock_ruleset(readable: &[PathBuf]) -> Result<landlock::RulesetCreated, String> {
    use landlock::{
        Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
        Scope, ABI,
    };
    // The newest ABI this code was tested with; older kernels get what they support (the
    // crate's best-effort mode), kernels without Landlock get nothing (reported in the log).
    let abi = ABI::V6;
    let mut folders: Vec<PathBuf> = Vec::new();
    for f in readable {
        let parent = |p: &Path| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        folders.push(parent(f));
        if let Ok(real) = f.canonicalize() {
            folders.push(parent(&real));
        }
    }
    folders.sort();
    folders.dedup();
    let mut created = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .map_err(|e| e.to_string())?;
    for d in &folders {
        // A folder that does not exist (a rule file not created yet) gets no rule: reading
        // there fails, as it would have.
        let Ok(fd) = PathFd::new(d) else {
            continue;
        };
        created = created
            .add_rule(PathBeneath::new(fd, AccessFs::ReadFile))
            .map_err(|e| format!("{}: {e}", d.display()))?;
    }
    Ok(created)
}

/// `open` flags that give write access to a file or make one: O_WRONLY, O_RDWR (and the
/// invalid access mode 3), O_CREAT, O_TRUNC and O_TMPFILE.
const OPEN_WRITE_FLAGS: u64 =
    (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC | libc::O_TMPFILE) as u64;

/// The seccomp allow-list of the running gateway (found with `strace -f` over its live tests:
/// forwarding, TAP neighbour resolution, every control command, event streams, reload, SIGHUP,
/// a contained panic and shutdown). Anything else fails with EPERM.
fn seccomp_filter() -> Result<BpfProgram, String> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("{e} (architecture {})", std::env::consts::ARCH))?;
    let cond = |arg: u8, op: SeccompCmpOp, value: u64| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value).map_err(|e| e.to_string())
    };
    let rule = |c: Vec<SeccompCondition>| SeccompRule::new(c).map_err(|e| e.to_string());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let always = [
        // Memory. Executable mappings are refused below (mmap, mprotect).
        libc::SYS_brk,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_madvise,
        // Threads (workers, control clients) and their synchronisation.
        libc::SYS_clone3,
        libc::SYS_futex,
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_sched_yield,
        libc::SYS_sched_getaffinity,
        libc::SYS_gettid,
        libc::SYS_getpid,
        libc::SYS_exit,
        libc::SYS_exit_group,
        libc::SYS_restart_syscall,
        // Signals: the SIGHUP/SIGTERM handler, thread signal masks and stacks.
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        // Time.
        libc::SYS_clock_gettime,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_getrandom,
        // I/O on descriptors that are already open, and reading the rule files.
        libc::SYS_read,
        libc::SYS_readv,
        libc::SYS_pread64,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_close,
        libc::SYS_lseek,
        libc::SYS_fcntl,
        libc::SYS_fstat,
        libc::SYS_newfstatat,
        libc::SYS_statx,
        libc::SYS_getcwd,
        libc::SYS_ppoll,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_poll,
        // The control socket's clients.
        libc::SYS_accept4,
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        libc::SYS_setsockopt,
        libc::SYS_getsockopt,
        libc::SYS_shutdown,
        // Read-only identity (logs, tests).
        libc::SYS_getuid,
        libc::SYS_geteuid,
        libc::SYS_getgid,
        libc::SYS_getegid,
        libc::SYS_getresuid,
        libc::SYS_getresgid,
    ];
    for nr in always {
        rules.insert(nr, Vec::new());
    }
    let no_exec = || {
        rule(vec![cond(
            2,
            SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )?])
    };
    rules.insert(libc::SYS_mmap, vec![no_exec()?]);
    rules.insert(libc::SYS_mprotect, vec![no_exec()?]);
    // Opening for reading only (flags are argument 2 of openat, 1 of open).
    rules.insert(
        libc::SYS_openat,
        vec![rule(vec![cond(
            2,
            SeccompCmpOp::MaskedEq(OPEN_WRITE_FLAGS),
            0,
        )?])?],
    );
    #[cfg(target_arch = "x86_64")]
    rules.insert(
        libc::SYS_open,
        vec![rule(vec![cond(
            1,
            SeccompCmpOp::MaskedEq(OPEN_WRITE_FLAGS),
            0,
        )?])?],
    );
    // clone only for threads (older glibc; newer ones use clone3): no fork.
    rules.insert(
        libc::SYS_clone,
        vec![rule(vec![cond(
            0,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            libc::CLONE_THREAD as u64,
        )?])?],
    );
    // Non-blocking mode of accepted sockets; no other ioctl (nothing may reconfigure a device).
    rules.insert(
        libc::SYS_ioctl,
        vec![rule(vec![cond(1, SeccompCmpOp::Eq, libc::FIONBIO)?])?],
    );
    // Thread names only.
    rules.insert(
        libc::SYS_prctl,
        vec![rule(vec![cond(
            0,
            SeccompCmpOp::Eq,
            libc::PR_SET_NAME as u64,
        )?])?],
    );
    // Signals to this process's own threads only (abort after a double panic).
    rules.insert(
        libc::SYS_tgkill,
        vec![rule(vec![cond(
            0,
            SeccompCmpOp::Eq,
            std::process::id() as u64,
        )?])?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| e.to_string())?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown_names_are_told_apart() {
        assert_eq!(lookup("root", None), Ok(RunAs::Root));
        match lookup("root", Some("root")) {
            Err(LookupError::Group(m)) => assert!(m.contains("no effect"), "{m}"),
            other => panic!("{other:?}"),
        }
        match lookup("tunfilter-no-such-user-4711", None) {
            Err(LookupError::User(m)) => assert!(m.starts_with("no user named"), "{m}"),
            other => panic!("{other:?}"),
        }
        match lookup("with\0nul", None) {
            Err(LookupError::User(m)) => assert!(m.starts_with("no user named"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_user_gets_its_login_group_or_the_named_one() {
        // Every Linux system has root; whether it has `nobody` varies, so the test takes an
        // unprivileged user from the password database if there is one.
        let Some((name, uid, gid)) = some_unprivileged_user() else {
            return;
        };
        match lookup(&name, None) {
            Ok(RunAs::User(a)) => assert_eq!((a.uid, a.gid), (uid, gid)),
            other => panic!("{other:?}"),
        }
        match lookup(&name, Some("root")) {
            Ok(RunAs::User(a)) => assert_eq!((a.uid, a.gid, a.group.as_str()), (uid, 0, "root")),
            other => panic!("{other:?}"),
        }
        match lookup(&name, Some("tunfilter-no-such-group-4711")) {
            Err(LookupError::Group(m)) => assert!(m.starts_with("no group named"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    fn some_unprivileged_user() -> Option<(String, u32, u32)> {
        let text = std::fs::read_to_string("/etc/passwd").ok()?;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let uid: u32 = f.get(2)?.parse().ok()?;
            let gid: u32 = f.get(3)?.parse().ok()?;
            (uid != 0).then(|| (f[0].to_owned(), uid, gid))
        })
    }

    #[test]
    fn the_seccomp_filter_builds_for_this_architecture() {
        let prog = seccomp_filter().expect("filter");
        assert!(prog.len() > 50, "{} instructions", prog.len());
    }
}
