"""The cluster's name cache: found names trusted for a while, bounded, forgotten on removal."""

from chatcore.testing import FakeClock
from chatcore_auth.namecache import NameCache


def test_a_found_name_is_kept_for_the_ttl_then_asked_again():
    clock = FakeClock()
    names = NameCache(ttl=30, clock=clock)
    names.put("ann", "Ann")
    clock.advance(29)
    assert names.get("ann") == "Ann"
    clock.advance(2)
    assert names.get("ann") is None


def test_the_cache_is_bounded_and_a_removal_forgets_at_once():
    names = NameCache(size=2, clock=FakeClock())
    for key in ("a", "b", "c"):
        names.put(key, key.upper())
    assert names.get("a") is None and names.get("c") == "C"
    names.forget("c")
    assert names.get("c") is None
