"""The loop's garbage-collector policy: the fleet's state frozen out of collections between
full ones, and garbage in reference cycles still reclaimed at the next full one."""

import gc
import weakref

from loop.collector import FleetCollector


class Node:
    """An object that can hold a reference to itself (a cycle only the collector frees)."""


def test_a_cycle_dropped_between_full_collections_is_kept_frozen_then_reclaimed():
    now = [0.0]
    collector = FleetCollector(full_every_s=3600.0, clock=lambda: now[0])
    try:
        collector.after_pass()  # the first pass: a full collection, then frozen
        node = Node()
        node.me = node
        dropped = weakref.ref(node)
        del node
        now[0] = 60.0
        collector.after_pass()  # frozen with the rest; no full collection yet
        gc.collect()
        assert dropped() is not None, "a frozen cycle is skipped by ordinary collections"
        now[0] = 3600.0
        collector.after_pass()  # an hour on: unfrozen, collected in full, frozen again
        assert dropped() is None
        assert collector.full_collections == 2
    finally:
        collector.release()
    assert gc.get_freeze_count() == 0


def test_acyclic_state_dropped_while_frozen_is_freed_at_once():
    collector = FleetCollector(full_every_s=3600.0, clock=lambda: 0.0)
    try:
        state = Node()
        held = weakref.ref(state)
        collector.after_pass()
        assert held() is not None
        del state  # reference counting frees it, frozen or not
        assert held() is None
    finally:
        collector.release()
