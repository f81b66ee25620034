//! What Incus 6.0.4 cannot do at the same time, and the runner therefore does not.
//!
//! - Create or delete a bridge while an interface of the host goes away. A bridge's
//!   creation and deletion list the host's interfaces and then read each one (`ip -d -j
//!   link show NAME`); one deleted in between fails the whole request ("Failed to
//!   delete bridge children interfaces: ... Device "net-b" does not exist"). Another
//!   bridge deleted at that moment is such an interface, and so are an instance's veth
//!   pairs, which come and go as it starts, stops and is deleted. So one bridge at a
//!   time, and never while an instance starts, stops or is deleted; instances still
//!   start, stop and go in parallel with one another.
//! - Delete two network ACLs at once. Each deletion reads every ACL to check that its
//!   own is unused, and one deleted meanwhile fails it with a 404 ("Failed getting ACL
//!   usage: Network ACL not found"), the ACL still there. Creations in parallel were
//!   seen to work (20 rounds of 8) and stay parallel.
//!
//! Seen on Incus 6.0.4: with its default eight workers, `anklumec destroy` of four
//! domains failed or left ACLs behind in most rounds (tests/bridge_race_incus.rs).
//!
//! No lock of this run covers the interfaces of other processes: instances that
//! another client starts or deletes meanwhile make a bridge operation fail the same
//! way (seen while a benchmark deployed 100 containers beside the test). A bridge
//! operation that fails so is tried again ([`retry_interface_race`]).

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// How often a bridge operation is tried when it meets the interface race, and the
/// pause after the first failure (longer by as much after each next one): at most
/// 2.8 s in all.
const RACE_ATTEMPTS: u32 = 8;
const RACE_PAUSE: Duration = Duration::from_millis(100);

/// Whether an error (`text`) is Incus 6.0.4's failure of a bridge operation that met a
/// host interface going away.
pub fn is_interface_race(text: &str) -> bool {
    text.contains("Failed to delete bridge children interfaces")
}

/// Run `operation` (one bridge's creation, change or deletion) again while it fails
/// with the interface race, which another process's instances can cause; `text` gives
/// an error's message. A deletion that fails so leaves the bridge as it was (seen); a
/// creation tried again over whatever a failed one left fails with Incus's own error,
/// which is reported as it is.
pub fn retry_interface_race<T, E>(
    mut operation: impl FnMut() -> Result<T, E>,
    text: impl Fn(&E) -> String,
) -> Result<T, E> {
    let mut attempt = 1;
    loop {
        match operation() {
            Err(error) if attempt < RACE_ATTEMPTS && is_interface_race(&text(&error)) => {
                std::thread::sleep(RACE_PAUSE * attempt);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Shared by every step of one run. The guarded values are (): a panic while holding
/// one leaves nothing half-done, so a poisoned lock is taken as it is.
#[derive(Default)]
pub struct Serial {
    interfaces: RwLock<()>,
    acl_deletes: Mutex<()>,
}

impl Serial {
    /// Hold while a bridge is created, changed or deleted: nothing else that adds or
    /// removes a host interface runs meanwhile.
    pub fn bridge(&self) -> RwLockWriteGuard<'_, ()> {
        self.interfaces.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hold while an instance starts, stops or is deleted: alongside other instances,
    /// never alongside a bridge.
    pub fn instance(&self) -> RwLockReadGuard<'_, ()> {
        self.interfaces.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hold while a network ACL is deleted: one at a time.
    pub fn acl_delete(&self) -> MutexGuard<'_, ()> {
        self.acl_deletes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_interface_race_is_tried_again_and_only_so_often() {
        let race = "DELETE /1.0/networks/net-a: Failed to delete bridge children interfaces: Failed to run: ip -d -j link show veth1: exit status 1 (Device \"veth1\" does not exist.) (HTTP 500)";
        let mut calls = 0;
        let result: Result<(), String> = retry_interface_race(
            || {
                calls += 1;
                if calls < 3 { Err(race.to_string()) } else { Ok(()) }
            },
            Clone::clone,
        );
        assert_eq!((result, calls), (Ok(()), 3));
        let mut calls = 0;
        let result: Result<(), String> = retry_interface_race(
            || {
                calls += 1;
                Err("The network is currently in use".to_string())
            },
            Clone::clone,
        );
        assert!(result.is_err() && calls == 1, "another error is not retried");
        let mut calls = 0;
        let result: Result<(), String> = retry_interface_race(
            || {
                calls += 1;
                Err(race.to_string())
            },
            Clone::clone,
        );
        assert!(result.is_err() && calls == RACE_ATTEMPTS, "{calls} attempts");
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn bridges_run_alone_and_instances_together() {
        let interfaces = Serial::default();
        let (instances, most_instances, bridges, overlaps) =
            (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for worker in 0..8 {
                let (interfaces, instances, most_instances, bridges, overlaps) =
                    (&interfaces, &instances, &most_instances, &bridges, &overlaps);
                scope.spawn(move || {
                    for round in 0..20 {
                        if (worker + round) % 4 == 0 {
                            let _alone = interfaces.bridge();
                            if bridges.fetch_add(1, Ordering::SeqCst) > 0 || instances.load(Ordering::SeqCst) > 0 {
                                overlaps.fetch_add(1, Ordering::SeqCst);
                            }
                            std::thread::sleep(Duration::from_millis(1));
                            bridges.fetch_sub(1, Ordering::SeqCst);
                        } else {
                            let _beside = interfaces.instance();
                            let now = instances.fetch_add(1, Ordering::SeqCst) + 1;
                            most_instances.fetch_max(now, Ordering::SeqCst);
                            if bridges.load(Ordering::SeqCst) > 0 {
                                overlaps.fetch_add(1, Ordering::SeqCst);
                            }
                            std::thread::sleep(Duration::from_millis(2));
                            instances.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        assert_eq!(overlaps.load(Ordering::SeqCst), 0, "a bridge ran beside another bridge or an instance");
        assert!(most_instances.load(Ordering::SeqCst) > 1, "instances ran one at a time");
    }
}
