//! SIGTERM and SIGINT during `apply` (systemd stopping the unit, Ctrl-C):
//! the first asks the run to stop (no new batch starts; the batch in flight
//! finishes or is rolled back; locks are released and `--report` and
//! `--metrics` written as usual; exit [`super::exit::STOPPED`]); a second
//! one ends berth at once, as `kill -9` would (every slot stays whole: the
//! next run finishes what was left; the run locks go with the process).

use tokio::signal::unix::{signal, SignalKind};

use crate::apply::Stop;

/// Watches for the signals until dropped (abort the task).
pub async fn watch(stop: Stop) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot watch for SIGTERM and SIGINT: they will end berth at once");
        return;
    };
    let first = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::warn!(
        "{first}: stopping: no new batch starts, the one in flight finishes; send it again to stop at once"
    );
    stop.request(first);
    let code = tokio::select! {
        _ = term.recv() => 128 + libc::SIGTERM,
        _ = int.recv() => 128 + libc::SIGINT,
    };
    tracing::error!(
        "stopping at once: nothing is half-made (a replaced container waits as `<name>.berth-old`); run `berth apply` again to finish"
    );
    std::process::exit(code);
}
