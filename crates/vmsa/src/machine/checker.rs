//! The machine's rule checker: inline, or on a thread of its own fed the
//! events and the memory journal in batches, which it replays on its own
//! copy of the memory in the order they happened.

use std::fmt;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::Machine;
use crate::event::Event;
use crate::memory::{MemOp, Memory};
use crate::rules::{RuleChecker, Violation};

/// What the machine sends the rule checker's thread, in order.
enum Msg {
    /// A change to memory, for the thread's copy.
    Mem(MemOp),
    /// An operation to observe.
    Event(Event),
    /// Answer when everything before has been observed.
    Sync(SyncSender<()>),
}

/// Messages sent to the checker's thread at a time.
const BATCH: usize = 4096;

/// Batches on their way to the checker's thread at most (beyond, the
/// machine waits: memory stays bounded).
const QUEUE: usize = 8;

/// The rule checker running on a thread of its own, fed batches of
/// messages: the memory changes and the events, in the order they happened.
struct CheckerThread {
    tx: SyncSender<Vec<Msg>>,
    /// Batches the thread has emptied, to fill again.
    spare: Receiver<Vec<Msg>>,
    buf: Vec<Msg>,
    handle: JoinHandle<Option<RuleChecker>>,
}

impl CheckerThread {
    fn flush(&mut self) {
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let full = std::mem::replace(&mut self.buf, next);
        // A send fails only when the thread has gone (it panicked): joining
        // reports that.
        let _ = self.tx.send(full);
    }
}

/// The checker's thread, if it runs. A clone of the machine has none (and
/// so no checker: see [`Machine::start_checker_thread`]).
#[derive(Default)]
pub(super) struct Remote(Option<CheckerThread>);

impl Clone for Remote {
    fn clone(&self) -> Self {
        Remote(None)
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "checker thread"
        } else {
            "no checker thread"
        })
    }
}

impl Machine {
    /// Starts the rule checker on this machine's current tables; every
    /// later maintenance operation is checked.
    pub fn enable_checker(&mut self) {
        self.checker = Some(RuleChecker::new(self.config, self.root, &self.mem));
    }

    /// Moves the rule checker to a thread of its own, so that it works
    /// while this thread runs the machine: from now on each operation is
    /// sent to it with the memory changes made before it, and the thread
    /// observes them in the same order on its own copy of the memory, as
    /// the machine would have (the same violations, in the same order).
    /// Until [`Machine::join_checker_thread`], [`Machine::checker`] is
    /// `None` and a clone of the machine has no checker. Returns whether
    /// the thread started (not without a checker, not twice, not when the
    /// system refuses a thread: the checker then stays here).
    pub fn start_checker_thread(&mut self) -> bool {
        if self.remote.0.is_some() || self.checker.is_none() {
            return false;
        }
        let (tx, rx) = sync_channel::<Vec<Msg>>(QUEUE);
        let (back, spare) = sync_channel::<Vec<Msg>>(QUEUE + 2);
        let (init_tx, init_rx) = sync_channel::<(RuleChecker, Memory)>(1);
        let spawned = std::thread::Builder::new()
            .name("rule checker".into())
            .spawn(move || {
                let (mut checker, mut mem) = init_rx.recv().ok()?;
                for mut batch in rx {
                    for m in batch.drain(..) {
                        match m {
                            // The copy started equal, so every change the
                            // original could make applies here too.
                            Msg::Mem(op) => {
                                let _ = mem.apply(op);
                            }
                            Msg::Event(ev) => {
                                checker.observe(&mem, &ev);
                            }
                            Msg::Sync(done) => {
                                let _ = done.send(());
                            }
                        }
                    }
                    let _ = back.try_send(batch);
                }
                Some(checker)
            });
        let Ok(handle) = spawned else {
            return false;
        };
        let Some(checker) = self.checker.take() else {
            return false;
        };
        let copy = self.mem.clone();
        self.mem.start_journal();
        if init_tx.send((checker, copy)).is_err() {
            // The thread is gone before it began: nothing was observed.
            self.mem.stop_journal();
            self.checker = handle.join().ok().flatten();
            return false;
        }
        self.remote.0 = Some(CheckerThread {
            tx,
            spare,
            buf: Vec::with_capacity(BATCH),
            handle,
        });
        true
    }

    /// Waits until the checker's thread has observed every operation so far
    /// (for timing a phase); nothing when it does not run.
    pub fn sync_checker_thread(&mut self) {
        if let Some(t) = self.remote.0.as_mut() {
            let (done, wait) = sync_channel(1);
            self.mem.take_journal(&mut t.buf, Msg::Mem);
            t.buf.push(Msg::Sync(done));
            t.flush();
            let _ = wait.recv();
        }
    }

    /// Takes the rule checker back from its thread, once it has observed
    /// every operation; nothing when it does not run.
    ///
    /// # Panics
    ///
    /// Resumes the checker thread's panic, if it panicked (a bug).
    pub fn join_checker_thread(&mut self) {
        let Some(mut t) = self.remote.0.take() else {
            return;
        };
        // Changes after the last operation matter to no observation.
        self.mem.stop_journal();
        if !t.buf.is_empty() {
            t.flush();
        }
        let CheckerThread { tx, handle, .. } = t;
        drop(tx);
        match handle.join() {
            Ok(c) => self.checker = c,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// Returns the rule checker, if enabled (and not running on its thread,
    /// [`Machine::start_checker_thread`]).
    pub fn checker(&self) -> Option<&RuleChecker> {
        self.checker.as_ref()
    }

    /// Returns the rule checker for configuration, if enabled.
    pub fn checker_mut(&mut self) -> Option<&mut RuleChecker> {
        self.checker.as_mut()
    }

    /// Returns the violations found so far (empty without a checker).
    pub fn violations(&self) -> &[Violation] {
        self.checker.as_ref().map_or(&[], |c| c.violations())
    }

    pub(super) fn observe(&mut self, ev: Event) {
        if let Some(c) = self.checker.as_mut() {
            c.observe(&self.mem, &ev);
        } else if let Some(t) = self.remote.0.as_mut() {
            self.mem.take_journal(&mut t.buf, Msg::Mem);
            t.buf.push(Msg::Event(ev));
            if t.buf.len() >= BATCH {
                t.flush();
            }
        }
    }
}
