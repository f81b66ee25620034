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

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

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
