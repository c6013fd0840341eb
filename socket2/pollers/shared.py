"""Leader/followers: several OS threads' hubs on one kernel queue.

Used where a hub cannot wait on the shared queue and on a wakeup of its own
at once: a kqueue (libkqueue cannot nest one kqueue in another) and an I/O
completion port (a thread waits on one port).  epoll nests its sets
instead (``epoll.py``).

At most one member at a time (the leader) waits on the shared queue and
takes every event; hub.py forwards the events of other hubs' sockets to
their owners.  The others (followers) sleep on a private queue that holds
only their wakeup.  When the leader's wait ends, it wakes one sleeping
follower, which takes the lead, so the shared queue is watched whenever
anyone sleeps.  A wakeup is delivered where its target sleeps (the shared
queue for the leader, its private one for a follower) and is also recorded
as a flag, all under one lock with the state changes, so no wakeup is lost
or misdelivered: one that lands on another leader is dropped there (its
token names no socket), and the flag still delivers it.

A poller using this provides ``_wait_leader(timeout)`` and
``_wait_follower(timeout)`` (each returning tokens), ``_kick_shared()`` and
``_kick_private()`` (make that wait return, from any OS thread), and
``_wake_token``.  The first hub on a queue runs alone, unshared, until a
second joins; ``join`` then makes it a member too (``_in_wait`` tells
whether it is waiting on the queue at that moment: it leads that wait).
"""
import _thread

RUN, LEAD, FOLLOW = 0, 1, 2
# Bound at import: a shared poller made after monkey.patch_all() must still
# get real OS-thread locks (the patched ones work, but cost more).
_allocate_lock = _thread.allocate_lock
_JOIN_LOCK = _allocate_lock()


class SharedQueue:
    """One kernel queue shared by several hubs' pollers."""

    def __init__(self, handle):
        self.handle = handle
        self.lock = _allocate_lock()
        self.leader = None
        self.members = []
        self.data = {}        # backend state all members see (slots, orphans)
        # socket2 made the queue and its creator's thread ended while
        # others still used it: the last member to leave closes it
        # (Registry.leave).  A queue the user made is theirs to close.
        self.orphaned = False
        self.closed = False


class Registry:
    """A backend's queues: which poller created each, which are shared."""

    def __init__(self):
        self.creators = {}    # handle -> the poller that created it
        self.shared = {}      # handle -> SharedQueue

    def join(self, handle, prepare):
        """The SharedQueue of *handle*, made shared if it was not (the
        creator, if any, becomes a member first).  ``prepare(sh)`` sets the
        joining poller up, under the join lock."""
        with _JOIN_LOCK:      # two threads joining at once migrate once
            sh = self.shared.get(handle)
            if sh is None:
                sh = self.shared[handle] = SharedQueue(handle)
                creator = self.creators.get(handle)
                if creator is not None:
                    creator._go_shared(sh)
                    with creator._mig_lock:   # see Member.poll_alone
                        creator._become_member(sh, creator._in_wait)
            prepare(sh)
            return sh

    def forget(self, poller, handle, owner):
        if self.creators.get(handle) is poller:
            del self.creators[handle]
        if owner:
            with _JOIN_LOCK:
                sh = self.shared.pop(handle, None)
                if sh is not None:
                    sh.closed = True    # (its owner closes it now)

    def leave(self, sh, orphan):
        """A member left *sh* for good, its OS thread ended (*orphan*: it
        is the queue's creator, leaving the queue to the others).  True
        when it was the last user of a queue socket2 made whose creator
        left: the caller closes the queue, so rounds of threads sharing
        queues leave none behind.  Only once per queue (its number may be
        another descriptor's afterwards)."""
        if sh is None:
            return False
        with _JOIN_LOCK:
            if orphan:
                sh.orphaned = True
            if sh.members or not sh.orphaned or sh.closed:
                return False
            sh.closed = True
            if self.shared.get(sh.handle) is sh:
                del self.shared[sh.handle]
            return True


class Member:
    """The protocol, mixed into a poller (see the module docstring)."""

    _sh = None
    _state = RUN
    _wake_pending = False
    _in_wait = False

    @property
    def shared(self):
        return self._sh is not None

    def _init_member(self):
        self._mig_lock = _allocate_lock()

    def poll_alone(self, wait, timeout):
        """A wait of the creator before anyone joined: ``wait(timeout)`` on
        the queue itself.  A thread joining meanwhile either sees it waiting
        (and makes it the leader of that wait, given up after it) or makes
        it a member before it waits; _mig_lock makes each side's check and
        change one step."""
        with self._mig_lock:
            self._in_wait = True
            sh = self._sh
        if sh is not None:
            self._in_wait = False
            return self._poll_shared(timeout)
        tokens = wait(timeout)
        with self._mig_lock:
            self._in_wait = False
            sh = self._sh
        if sh is not None:
            tokens = self._end_wait(sh, tokens)
        return tokens

    def _become_member(self, sh, leading=False):
        with sh.lock:
            sh.members.append(self)
            if leading:
                self._state = LEAD
                sh.leader = self
            self._sh = sh

    def _poll_shared(self, timeout):
        sh = self._sh
        with sh.lock:
            if self._wake_pending:
                self._wake_pending = False
                return [self._wake_token]
            if sh.leader is None or sh.leader is self:
                sh.leader = self
                self._state = LEAD
            else:
                self._state = FOLLOW
        tokens = []
        try:
            if self._state == LEAD:
                tokens = self._wait_leader(timeout)
            else:
                tokens = self._wait_follower(timeout)
        finally:
            tokens = self._end_wait(sh, tokens)
        return tokens

    def _end_wait(self, sh, tokens):
        """After a wait: give up the lead (waking a sleeping follower to
        take it) and collect a wakeup that went elsewhere."""
        with sh.lock:
            self._state = RUN
            if sh.leader is self:
                sh.leader = None
                for m in sh.members:
                    if m._state == FOLLOW:
                        m._state = RUN    # woken once; it re-polls and leads
                        m._kick_private()
                        break
            if self._wake_pending:
                self._wake_pending = False
                tokens = list(tokens)
                if self._wake_token not in tokens:
                    tokens.append(self._wake_token)
        return tokens

    def _wakeup_shared(self):
        sh = self._sh
        with sh.lock:
            if self._wake_pending:
                return            # already on its way
            self._wake_pending = True
            if self._state == LEAD:
                self._kick_shared()
            elif self._state == FOLLOW:
                self._kick_private()
            # RUN: it reads the flag before its next wait

    def _leave(self):
        sh = self._sh
        if sh is not None:
            with sh.lock:
                if self in sh.members:
                    sh.members.remove(self)
                if sh.leader is self:
                    sh.leader = None
