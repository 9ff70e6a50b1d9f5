"""Presence across the nodes of a cluster: ``peer_joined`` / ``peer_left`` once cluster-wide,
however many nodes and sessions a user has.

Redis holds who is online where: ``auth:where:<user>`` is the set of nodes holding a session
of the user, ``auth:node:<node>`` the users each node registered, ``auth:online`` the display
name of every user online anywhere. A node adds itself to a user's set when the user's first
local session logs in and removes itself when the last one ends, in one Lua script each: the
script alone sees the set go from empty to one node or back, so exactly one node learns of
each real change. That node queues the event for its own sessions and publishes it on the
bus for the others; every change carries a number from one cluster-wide clock, and a node
applies only changes newer than the last it applied for that user, whatever order the bus
delivers them in, and only those that change what its sessions were told.

A node's liveness is its heartbeat (an expiring key): when it stops, the one node that claims
it (``nodes.on_node_lost``) takes it out of its users' sets in one script and announces those
left with no node. Should that fail, every node also looks, once per heartbeat, for nodes
listed in ``auth:holders`` (those with entries) that no longer beat, and runs the same script. A node that finds itself claimed while alive (Redis was out of its reach
for longer than the heartbeat's TTL) registers its users again. Each node re-checks its own
entries once per heartbeat, which also retries what a Redis outage interrupted and puts
back what a Redis restarted empty forgot; after the bus reports that events may be lost, the
node compares what its sessions were told with Redis and sends the difference.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

import redis

from chatcore_auth.names import name_key
from chatcore_auth.presence import Presence

if TYPE_CHECKING:
    from chatcore.cluster import Cluster
    from chatcore.session import SessionRegistry

log = logging.getLogger(__name__)

TOPIC = "auth.presence"  # {changes: [[display name, online, number], ...]}

# Change numbers: microseconds of Redis's clock, and always past the last one handed out, so
# they keep growing even after Redis restarts empty (which forgets the ``clock`` key).
_NUMBER = """
local function number()
  local now = redis.call('TIME')
  local n = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local last = tonumber(redis.call('GET', ARGV[1] .. 'clock') or '0')
  if n <= last then n = last + 1 end
  redis.call('SET', ARGV[1] .. 'clock', string.format('%.0f', n))
  return n
end
"""
_JOIN = _NUMBER + """
local where = ARGV[1] .. 'where:' .. ARGV[3]
local added = redis.call('SADD', where, ARGV[2])
redis.call('SADD', ARGV[1] .. 'node:' .. ARGV[2], ARGV[3])
redis.call('SADD', ARGV[1] .. 'holders', ARGV[2])
if added == 1 and redis.call('SCARD', where) == 1 then
  redis.call('HSET', ARGV[1] .. 'online', ARGV[3], ARGV[4])
  return number()
end
return 0
"""
_LEAVE = _NUMBER + """
local where = ARGV[1] .. 'where:' .. ARGV[3]
local removed = redis.call('SREM', where, ARGV[2])
redis.call('SREM', ARGV[1] .. 'node:' .. ARGV[2], ARGV[3])
if removed == 1 and redis.call('SCARD', where) == 0 then
  local name = redis.call('HGET', ARGV[1] .. 'online', ARGV[3])
  redis.call('HDEL', ARGV[1] .. 'online', ARGV[3])
  return {number(), name or ARGV[3]}
end
return {0, ''}
"""
_NODE_LOST = _NUMBER + """
local node = ARGV[1] .. 'node:' .. ARGV[2]
local gone = {}
for _, user in ipairs(redis.call('SMEMBERS', node)) do
  local where = ARGV[1] .. 'where:' .. user
  if redis.call('SREM', where, ARGV[2]) == 1 and redis.call('SCARD', where) == 0 then
    local name = redis.call('HGET', ARGV[1] .. 'online', user)
    redis.call('HDEL', ARGV[1] .. 'online', user)
    table.insert(gone, name or user)
    table.insert(gone, number())
  end
end
redis.call('DEL', node)
redis.call('SREM', ARGV[1] .. 'holders', ARGV[2])
return gone
"""

# Who is online, with a number that every change recorded after this read exceeds.
_SNAPSHOT = _NUMBER + """
return {number(), redis.call('HGETALL', ARGV[1] .. 'online')}
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ClusterPresence(Presence):
    """``Presence`` whose truth is the cluster's: the same queue, batching and modes for the
    local sessions, fed by this node's changes and the other nodes' events."""

    def __init__(self, sessions: "SessionRegistry", cluster: "Cluster", delay: float = 0.0) -> None:
        super().__init__(sessions, delay)
        self._cluster, self._node = cluster, cluster.node_id
        self._stale_since: dict[str, float] = {}  # holder without a heartbeat -> when first seen so (refresher only)
        self._prefix = cluster.key("auth", "")
        self._redis = cluster.redis
        self._join, self._leave = self._redis.register_script(_JOIN), self._redis.register_script(_LEAVE)
        self._lost = self._redis.register_script(_NODE_LOST)
        self._snapshot = self._redis.register_script(_SNAPSHOT)
        self._here: set[str] = set()  # users this node registered in Redis (name keys)
        self._seen: dict[str, int] = {}  # name key -> number of the last change applied
        self._believed: dict[str, str] = {}  # what the local sessions were told: name key -> display
        self._seen_lock = threading.Lock()
        self._stop_refresh = threading.Event()
        self._refresher: Optional[threading.Thread] = None
        self._refreshed = threading.Condition()
        self.refreshes = 0  # checks of this node's entries that reached Redis
        cluster.bus.subscribe(TOPIC, self._heard)
        cluster.bus.listen(TOPIC, self._heard)  # a node's last words at shutdown (the stream is closed by then)
        cluster.bus.on_resync(self._resync_soon)
        cluster.nodes.on_node_lost(self.node_lost)

    # -- this node's changes -----------------------------------------------------------------

    def update(self, username: str) -> None:
        """Register or unregister this node for ``username`` as its local sessions say; when
        that makes the user online or offline cluster-wide, announce it everywhere."""
        key = name_key(username)
        seen_at = time.monotonic()  # before the Redis round trip: sessions logging in meanwhile know already
        with self.lock_for(key):
            online = self._sessions.is_online(username)
            if online == (key in self._here):
                return
            try:
                if online:
                    number, display = int(self._join(args=[self._prefix, self._node, key, username])), username
                else:
                    number, name = self._leave(args=[self._prefix, self._node, key])
                    number, display = int(number), _text(name)
            except redis.RedisError as error:  # the refresher tries again once Redis answers
                log.warning("presence: cannot record %s %s in Redis yet: %s", username,
                            "online" if online else "offline", error)
                return
            if online:
                self._here.add(key)
            else:
                self._here.discard(key)
        if number:
            self._apply([(display, online, number)], seen_at)
            self._cluster.bus.publish(TOPIC, {"changes": [[display, online, number]]})

    def _apply(self, changes: list[tuple[str, bool, int]], seen_at: Optional[float] = None) -> None:
        """Queue for the local sessions each change newer than the last applied for its user,
        when it changes what they were told (a node registering its users again after Redis
        lost them is no news to them)."""
        with self._seen_lock:
            for display, online, number in changes:
                key = name_key(display)
                if number <= self._seen.get(key, 0):
                    continue
                self._seen[key] = number
                if online == (key in self._believed):
                    continue
                if online:
                    self._believed[key] = display
                else:
                    del self._believed[key]
                self.queue(key, display, online, seen_at)

    # -- the other nodes' -------------------------------------------------------------------

    def _heard(self, event: dict[str, Any]) -> None:
        changes = event.get("changes")
        if not isinstance(changes, list):
            log.warning("presence: dropped a malformed event %r", event)
            return
        valid = [(c[0], c[1], c[2]) for c in changes if isinstance(c, list) and len(c) == 3
                 and isinstance(c[0], str) and isinstance(c[1], bool) and isinstance(c[2], int)]
        self._apply(valid)

    def node_lost(self, node_id: str) -> None:
        """This node claimed the dead ``node_id``: its users with no other node go offline."""
        flat = self._lost(args=[self._prefix, node_id])
        changes = [(_text(flat[i]), False, int(flat[i + 1])) for i in range(0, len(flat), 2)]
        if changes:
            log.info("presence: %d user(s) of the lost node %s went offline", len(changes), node_id)
            self._apply(changes)
            self._cluster.bus.publish(TOPIC, {"changes": [list(c) for c in changes]})

    def _resync_soon(self) -> None:
        """The bus may have lost events (Redis came back, perhaps empty): resync once every
        node has had two heartbeats to register its users again, off the bus reader thread."""
        timer = threading.Timer(2 * self._cluster.nodes.interval, self.resync)
        timer.daemon = True
        timer.start()

    def resync(self) -> None:
        """Events may have been missed: tell the local sessions what differs from Redis's truth,
        except for users whose change applied since the read is newer than it."""
        try:
            as_of, flat = self._snapshot(args=[self._prefix])
        except redis.RedisError as error:
            log.warning("presence: cannot resync yet: %s", error)
            return
        online = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        with self._seen_lock:
            for key in set(online) | set(self._believed):
                if self._seen.get(key, 0) > int(as_of) or (key in online) == (key in self._believed):
                    continue
                if key in online:
                    self._believed[key] = online[key]
                    self.queue(key, online[key], True)
                else:
                    self.queue(key, self._believed.pop(key), False)

    # -- reading ----------------------------------------------------------------------------

    def online_users(self) -> list[str]:
        """Everyone online on any node (and this node's own users, should Redis be away)."""
        names = {name_key(n): n for n in self._sessions.online_users()}
        try:
            for key, display in self._redis.hgetall(self._prefix + "online").items():
                names.setdefault(_text(key), _text(display))
        except redis.RedisError as error:
            log.warning("presence: Redis unreachable, listing this node's users only: %s", error)
        return sorted(names.values(), key=str.casefold)

    # -- lifecycle ---------------------------------------------------------------------------

    def started(self) -> None:
        """The bus reads now: take what the cluster says is online as what sessions know, and
        start re-checking this node's entries once per heartbeat."""
        self.resync()
        self._refresher = threading.Thread(target=self._refresh_loop, name="auth-presence-refresh", daemon=True)
        self._refresher.start()

    def _refresh_loop(self) -> None:
        while not self._stop_refresh.wait(self._cluster.nodes.interval):
            try:
                self.refresh()
            except Exception:
                log.exception("presence: refreshing this node's entries failed")

    def wait_refreshed(self, timeout: float = 10.0) -> bool:
        """Block until one whole check of this node's entries begins and ends after this call
        (tests: after Redis came back); False on timeout."""
        with self._refreshed:
            target = self.refreshes + 2
            return self._refreshed.wait_for(lambda: self.refreshes >= target, timeout)

    def refresh(self) -> None:
        """Make Redis hold this node's users: register those it lost (claimed while alive, or
        an update Redis missed), unregister those gone."""
        self._check_entries()
        self._sweep_holders()
        with self._refreshed:
            self.refreshes += 1
            self._refreshed.notify_all()

    def _check_entries(self) -> None:
        registered = {_text(k) for k in self._redis.smembers(self._prefix + "node:" + self._node)}
        local = {name_key(n): n for n in self._sessions.online_users()}
        for key in set(self._here) - registered:  # claimed as dead meanwhile, or Redis restarted empty
            with self.lock_for(key):
                self._here.discard(key)
        for key in set(local) | set(self._here):
            if (key in local) != (key in self._here):
                self.update(local.get(key, key))

    def _sweep_holders(self) -> None:
        """Clean up after every node that holds presence entries but no longer beats and was
        not cleaned up after (its claimant failed midway, say): the script is atomic, so of
        the nodes sweeping at once exactly one announces its users' departure. A holder counts
        as dead only once it has gone a whole TTL without a heartbeat: after Redis restarts
        empty, a live node may register its users again a moment before it beats again."""
        holders = {_text(n) for n in self._redis.smembers(self._prefix + "holders")}
        stale = holders - set(self._cluster.nodes.alive()) - {self._node}
        now = time.monotonic()
        self._stale_since = {node: self._stale_since.get(node, now) for node in stale}
        for node, since in sorted(self._stale_since.items()):
            if now - since >= self._cluster.nodes.ttl:
                self.node_lost(node)

    def stop(self) -> None:
        """Stop re-checking; take this node's remaining entries out (its sessions logged out
        before, so normally none) and say so to the nodes listening; then the announcer ends."""
        self._stop_refresh.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
        try:
            flat = self._lost(args=[self._prefix, self._node])
            if flat:
                changes = [[_text(flat[i]), False, int(flat[i + 1])] for i in range(0, len(flat), 2)]
                self._cluster.bus.notify(TOPIC, {"changes": changes})
        except redis.RedisError as error:
            log.warning("presence: could not remove this node's entries at shutdown: %s", error)
        super().stop()
