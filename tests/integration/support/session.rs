//! The bed for one run of the test binary: brought up once, by the first
//! test that takes it; held by one test at a time; torn down when the
//! process exits if this run brought it up (unless `BERTH_BED_KEEP=1`).

use std::io::Write as _;
use std::ops::Deref;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use super::Bed;

/// Held by the bed test that runs now; the others wait for it.
static TURN: Mutex<()> = Mutex::new(());

/// The bed as the first test found or made it, or why it is not there.
static BED: OnceLock<Result<Bed, String>> = OnceLock::new();

/// The bed, for one test until this is dropped (at the end of the test).
pub struct BedTurn {
    bed: &'static Bed,
    _turn: MutexGuard<'static, ()>,
}

impl Deref for BedTurn {
    type Target = Bed;

    fn deref(&self) -> &Bed {
        self.bed
    }
}

impl Bed {
    /// Takes the bed for the calling test (`let bed = &Bed::take();` as the
    /// test's first line). Waits until no other test holds it: they share
    /// three engines, and some stop a host's sshd. The first call brings the
    /// bed up when it is not running. Fails the test when the bed cannot
    /// come up: a bed test never passes or skips without its bed.
    pub fn take() -> BedTurn {
        // A test that failed while holding the bed poisons the lock; the bed
        // is still sound (each test cleans up its own project), so go on.
        let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        match BED.get_or_init(find_or_bring_up) {
            Ok(bed) => BedTurn { bed, _turn: turn },
            Err(e) => panic!(
                "the test bed is not available: {e}\n\
                 help: start it as root with `bash tests/bed/testbed.sh up` \
                 (it installs docker.io, openssh-server, docker-registry and busybox-static with apt)"
            ),
        }
    }
}

fn find_or_bring_up() -> Result<Bed, String> {
    if Bed::is_up() {
        return Bed::load();
    }
    let t = Instant::now();
    say("test bed is not up: starting it with tests/bed/testbed.sh up");
    // `up` on a bed that only lacked its bastion adds just that: that bed
    // was not started here, so it stays up at the end.
    let built = Bed::bring_up()?;
    say(&format!("test bed up in {:.1}s", t.elapsed().as_secs_f64()));
    if built && std::env::var_os("BERTH_BED_KEEP").is_none() {
        // The harness has no hook after the last test, and statics are
        // never dropped: `exit` (which the harness reaches however the run
        // ends, short of a signal) calls what `atexit` registered.
        // SAFETY: a plain function, registered once, that needs nothing of
        // the tests' threads (they have all finished when it runs).
        if unsafe { libc::atexit(tear_down_at_exit) } != 0 {
            say("cannot arrange the test bed's tear-down at exit: it stays up (`bash tests/bed/testbed.sh down` removes it)");
        }
    }
    Bed::load()
}

extern "C" fn tear_down_at_exit() {
    say("tearing down the test bed this run started (set BERTH_BED_KEEP=1 to keep it)");
    Bed::tear_down();
}

/// Writes straight to stderr, past the harness's capture of a test's
/// output: bringing the bed up takes a while, and whoever waits should see why.
pub(super) fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}
