import gc

import pytest

import socket2


def test_default_is_loopback_and_passive_is_any():
    ai = socket2.addr()
    assert ai.tostring().startswith("127.0.0.1:")
    ai.free()
    ai = socket2.addr("*", 80, "tcp", flags="passive")
    assert str(ai) == "0.0.0.0:80"
    ai.free()
    for nohost in ("", None, False):
        ai = socket2.addr(nohost, 80, "tcp", flags="passive")
        assert str(ai) == "0.0.0.0:80"
        ai.free()


def test_node_accessors():
    ai = socket2.addr("127.0.0.1", 8080, "tcp")
    assert ai.family() == "inet"
    assert ai.type() == "tcp"
    assert ai.protocol() == "tcp"
    assert ai.name() is None
    assert ai.tostring() == "127.0.0.1:8080"
    sa = ai.addr
    assert sa.family() == "inet" and sa.port() == 8080
    assert sa.tostring() == "127.0.0.1:8080"
    ip = sa.addr()
    assert ip.tobinary() == b"\x7f\x00\x00\x01"
    assert ip.tostring() == "127.0.0.1"
    assert ai.next() is None
    ai.free()


def test_all_types_walk_the_c_list():
    ai = socket2.addr("127.0.0.1", 53, None)
    types = [n.type() for n in ai]
    # POSIX gives a node per type; Windows one node that any type may use.
    assert {"tcp", "udp"} <= set(types) or types == [0]
    assert list(ai.addrs()) and len(list(ai)) == len(types)
    # next() follows the same C list
    n, walked = ai, []
    while n is not None:
        walked.append(n.type())
        n = n.next()
    assert walked == types
    ai.free()


def test_udp_protocol():
    ai = socket2.addr("127.0.0.1", 53, "udp")
    assert ai.type() == "udp" and ai.protocol() == "udp"
    ai.free()


def test_inet6():
    ai = socket2.addr("::1", 80, "tcp", "inet6")
    assert ai.family() == "inet6"
    assert str(ai) == "[::1]:80"
    assert ai.addr.addr().tobinary() == b"\0" * 15 + b"\1"
    assert ai.addr.addr().tostring() == "::1"
    ai.free()
    ai = socket2.addr("*", 0, "tcp", "inet6", flags="passive")
    assert str(ai) == "[::]:0"
    ai.free()


def test_v4mapped_flags_as_iterable_and_int():
    ai = socket2.addr("127.0.0.1", 80, "tcp", "inet6", flags=["v4mapped"])
    assert str(ai) == "[::ffff:127.0.0.1]:80"
    ai.free()
    ai = socket2.addr("127.0.0.1", 80, "tcp", socket2.AF_INET6,
                      flags=socket2.AI_V4MAPPED | socket2.AI_ALL)
    assert str(ai) == "[::ffff:127.0.0.1]:80"
    ai.free()


def test_service_names_and_numeric_strings():
    ai = socket2.addr("127.0.0.1", "http", "tcp")
    assert ai.addr.port() == 80
    ai.free()
    ai = socket2.addr("127.0.0.1", "8080", "tcp")
    assert ai.addr.port() == 8080
    ai.free()
    with pytest.raises(socket2.Error) as e:
        socket2.addr("127.0.0.1", "no-such-service-xyz", "tcp")
    assert e.value.err == "service_not_found"


def test_canonname_both_spellings():
    for flag in ("canonname", "cannonname"):
        ai = socket2.addr("localhost", 80, "tcp", flags=flag)
        assert ai.name()   # the canonical name of localhost
        ai.free()


def test_numerichost_rejects_names():
    with pytest.raises(socket2.Error) as e:
        socket2.addr("localhost", 80, "tcp", flags="numerichost")
    assert e.value.err == "host_not_found"
    assert "localhost" in str(e.value)


def test_addrconfig_and_numericserv():
    ai = socket2.addr("127.0.0.1", 80, "tcp",
                      flags=("addrconfig", "numericserv", "numerichost"))
    assert str(ai) == "127.0.0.1:80"
    ai.free()


def test_integer_constants_everywhere():
    ai = socket2.addr("127.0.0.1", 80, socket2.SOCK_DGRAM, socket2.AF_INET,
                      socket2.IPPROTO_UDP)
    assert ai.type() == "udp"
    ai.free()


def test_unix_paths(tmp_path):
    path = str(tmp_path / "sock")
    ai = socket2.addr(path, family="unix")
    assert ai.family() == "unix" and ai.type() == "tcp"
    assert ai.tostring() == path and ai.addr.port() is None
    assert ai.addr.addr() is None
    assert ai.next() is None
    ai.free()
    ai = socket2.addr(tmp_path / "sock2", type="udp", family="unix")
    assert ai.type() == "udp" and ai.tostring().endswith("sock2")
    ai.free()
    with pytest.raises(socket2.Error) as e:
        socket2.addr("x" * 200, family="unix")
    assert e.value.err == "name_too_long"
    with pytest.raises(ValueError):
        socket2.addr("", family="unix")


def test_free_is_idempotent_and_use_after_free_raises():
    ai = socket2.addr("127.0.0.1", 0, None)
    second = ai.next() or ai      # Windows: a typeless lookup has one node
    sa = ai.addr
    ai.free()
    ai.free()
    assert ai.freed
    for use in (ai.next, ai.type, ai.family, ai.tostring, second.protocol,
                sa.port, sa.tostring, lambda: ai.addr, lambda: list(ai)):
        with pytest.raises(socket2.Error) as e:
            use()
        assert e.value.err == "freed"
    with socket2.tcp() as s, pytest.raises(socket2.Error) as e:
        s.bind(ai)
    assert e.value.err == "freed"


def test_addr_passes_ai_through():
    ai = socket2.addr("127.0.0.1", 1)
    assert socket2.addr(ai) is ai
    ai.free()


def test_unfreed_lists_are_collected():
    for _ in range(1000):
        socket2.addr("127.0.0.1", 80, None)
    gc.collect()


def test_bad_arguments_name_what_was_wrong():
    with pytest.raises(ValueError, match="unknown type 'sctp'"):
        socket2.addr("127.0.0.1", 80, "sctp")
    with pytest.raises(ValueError, match="unknown family 'inet5'.*inet6"):
        socket2.addr("127.0.0.1", 80, family="inet5")
    with pytest.raises(ValueError, match="unknown flag 'pasive'"):
        socket2.addr(flags="pasive")
    with pytest.raises(ValueError, match="port must be 0-65535"):
        socket2.addr("127.0.0.1", 70000)
    with pytest.raises(TypeError, match="port"):
        socket2.addr("127.0.0.1", 1.5)
    with pytest.raises(TypeError, match="host"):
        socket2.addr(12.5, 80)
    with pytest.raises(TypeError, match="flags"):
        socket2.addr(flags=1.0)


def test_name_lookups_do_not_block_other_threads():
    """A host name is resolved in a worker OS thread: other socket2 threads
    run meanwhile (a slow lookup, made slow here on purpose, freezes none)."""
    import time
    from socket2 import _offload
    from socket2 import hub as _hub

    ticks = []

    def ticker():
        for _ in range(5):
            socket2.sleep(0.01)
            ticks.append(socket2.clock())

    def slow_lookup():
        time.sleep(0.1)   # stands in for a slow DNS server
        return "resolved"

    socket2.newthread(ticker)
    t0 = socket2.clock()
    assert _offload.run(_hub.get_hub(), slow_lookup) == "resolved"
    assert len(ticks) == 5 and ticks[-1] - t0 < 0.1
    ai = socket2.addr("localhost", 80, "tcp")   # the real path: offloaded
    assert str(ai) == "127.0.0.1:80"
    ai.free()


def test_offloaded_lookup_can_time_out_and_be_killed():
    import time
    from socket2 import _offload
    from socket2 import hub as _hub

    hub = _hub.get_hub()
    with pytest.raises(socket2.TimeoutError):
        with socket2.timeout(0.02):
            _offload.run(hub, time.sleep, 0.2)
    t = socket2.newthread(_offload.run, hub, time.sleep, 0.1)
    t.kill()
    assert t.finished
    socket2.sleep(0.25)      # the late results are dropped, not delivered
    assert hub._external == 0
