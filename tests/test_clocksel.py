"""The selection algorithm (acdkit.clocksel) on samples recorded from real servers.

tests/data/ntp/matrix.json holds what `scripts/record_ntp_samples.py` measured from the
loopback chrony servers of tests/ntpservers.py: three agreeing servers, one 300 s ahead,
one at stratum 16 (0 on the wire), one unsynchronised (leap indicator 3) and a port that
nobody answers.  The expected figures were worked out by hand from the recorded samples
(each distance is spelt out below); the textbook cases check the intersection alone.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from acdkit.clocksel import (
    MAX_DISTANCE_NS,
    Reply,
    Sample,
    ServerSamples,
    distance,
    evaluate,
    intersect,
    lag,
    precision_ns,
    select,
    span,
)

MATRIX = Path(__file__).parent / "data" / "ntp" / "matrix.json"
SECOND = 1_000_000_000


def recorded() -> tuple[dict[str, ServerSamples], int]:
    doc = json.loads(MATRIX.read_text())
    out = {}
    for server in doc["servers"]:
        samples = []
        for s in server["samples"]:
            r = s["reply"]
            reply = None if r is None else Reply(**{**r, "refid": bytes.fromhex(r["refid"])})
            samples.append(Sample(s["sent_ns"], s["received_ns"], reply, s["failure"]))
        out[server["label"]] = ServerSamples(
            server["name"], server["address"], server["port"], tuple(samples)
        )
    return out, int(doc["local_precision_ns"])


def test_offset_and_delay_of_a_recorded_sample() -> None:
    servers, _ = recorded()
    s = servers["good0"].samples[1]
    assert s.reply is not None
    t1, t2, t3, t4 = s.sent_ns, s.reply.server_rx_ns, s.reply.server_tx_ns, s.received_ns
    assert s.offset_ns == ((t2 - t1) + (t3 - t4)) // 2 == -128
    assert s.delay_ns == (t4 - t1) - (t3 - t2) == 32000


def test_distance_spelt_out() -> None:
    servers, local = recorded()
    good0 = servers["good0"]
    best = good0.samples[1]  # the least delay of its four
    offsets = [s.offset_ns for s in good0.samples]
    assert offsets == [-334976, -128, 25600, -148352]
    jitter = max(abs(o - best.offset_ns) for o in offsets)
    assert jitter == 334848
    # ⌈32000/2⌉ + root dispersion 0 + 2^-26 s (15 ns) + 1000 local + ⌈32000·15e-6⌉ + jitter
    assert distance(best, jitter, local) == 16000 + 0 + 15 + 1000 + 1 + 334848 == 351864
    assert precision_ns(-26) == 15 and precision_ns(-20) == 954 and precision_ns(0) == SECOND


def test_the_recorded_matrix() -> None:
    servers, local = recorded()
    order = ["good0", "good1", "good2", "ahead300", "stratum16", "unsynchronised", "nobody"]
    sel = select([servers[n] for n in order], local, 3, SECOND)
    results = dict(zip(order, sel.servers, strict=True))
    assert [results[n].result for n in order] == [
        "truechimer",
        "truechimer",
        "truechimer",
        "falseticker",
        "unsynchronised",
        "unsynchronised",
        "unreachable",
    ]
    assert (results["good0"].chosen, results["good1"].chosen, results["good2"].chosen) == (1, 0, 2)
    assert [results[n].interval for n in order[:4]] == [
        (-351992, 351736),
        (-360956, 119804),
        (-88184, 89976),
        (299999769434, 300000186534),
    ]
    # the three agreeing intervals overlap in good2's: [-88184, 89976]
    assert (sel.low_ns, sel.high_ns, sel.agreeing) == (-88184, 89976, 3)
    # ⌊(−128/351864 − 120576/240380 + 896/89080) / (1/351864 + 1/240380 + 1/89080)⌋
    assert sel.offset_ns == -26987
    assert sel.bound_ns == 89976
    assert (sel.verdict, sel.reason) == ("OK", "3 of 7 servers agree")
    # stratum 16 arrives as stratum 0 with a source address as refid; LI 3 with refid 0
    s16 = servers["stratum16"].samples[results["stratum16"].chosen or 0].reply
    lone = servers["unsynchronised"].samples[results["unsynchronised"].chosen or 0].reply
    assert s16 is not None and lone is not None
    assert (s16.stratum, s16.leap, s16.refid) == (0, 0, bytes([127, 0, 0, 1]))
    assert (lone.stratum, lone.leap, lone.refid) == (0, 3, bytes(4))
    assert {s.failure for s in servers["nobody"].samples} == {"timeout"}


def test_the_false_ticker_wins_nothing_among_two() -> None:
    servers, local = recorded()
    sel = select([servers["good2"], servers["ahead300"]], local, 1, SECOND)
    # two that disagree: no majority, so neither can be believed
    assert [r.result for r in sel.servers] == ["no-majority", "no-majority"]
    assert (sel.agreeing, sel.offset_ns, sel.verdict) == (0, None, "POLICY")


def test_two_agreeing_and_a_false_ticker() -> None:
    servers, local = recorded()
    three = [servers["good0"], servers["good1"], servers["ahead300"]]
    sel = select(three, local, 3, SECOND)
    assert [r.result for r in sel.servers] == ["truechimer", "truechimer", "falseticker"]
    assert (sel.low_ns, sel.high_ns) == (-351992, 119804)
    assert sel.verdict == "POLICY"
    assert sel.reason == "2 of 3 servers agree; at least 3 required"
    assert select(three, local, 2, SECOND).verdict == "OK"


def test_nothing_answered_is_io_and_unsynchronised_is_policy() -> None:
    servers, local = recorded()
    assert select([servers["nobody"]], local, 1, SECOND).verdict == "IO"
    sel = select([servers["stratum16"], servers["unsynchronised"]], local, 1, SECOND)
    assert (sel.verdict, sel.agreeing) == ("POLICY", 0)


def test_drift_beyond_the_limit() -> None:
    servers, local = recorded()
    # what the collector would see if its own clock were 300 s behind three servers
    ahead = [servers["ahead300"]] * 3
    sel = select(ahead, local, 3, SECOND)
    assert sel.agreeing == 3 and sel.verdict == "POLICY"
    # true time minus the local clock is +300 s: the local clock is behind, and says so
    assert sel.reason == (
        "the local clock is 299.999769 s to 300.000187 s behind true time, beyond the limit "
        "of ±1.000000 s"
    )
    assert select(ahead, local, 3, 301 * SECOND).verdict == "OK"


def test_offsets_in_words_say_behind_or_ahead() -> None:
    assert lag(300 * SECOND) == "the local clock is 300.000000 s behind true time"
    assert lag(-72_000, "the consensus", was=True) == (
        "the local clock was 0.000072 s ahead of the consensus"
    )
    assert lag(0) == "the local clock is in step with true time"
    assert span(-3 * SECOND, -2 * SECOND) == (
        "the local clock is 2.000000 s to 3.000000 s ahead of true time"
    )
    assert span(-SECOND // 2, 2 * SECOND) == (
        "the local clock is between 2.000000 s behind and 0.500000 s ahead of true time"
    )


def test_no_answer_says_what_became_of_the_requests() -> None:
    servers, local = recorded()
    unresolved = ServerSamples("x.invalid", None, 123, (Sample(1, 1, None, "unresolved"),))
    garbage = ServerSamples(
        "g", "192.0.2.9", 123, tuple(Sample(1, 2, None, f) for f in ("bad-reply",) * 3)
    )
    sel = select([servers["nobody"], unresolved, garbage], local, 1, SECOND)
    assert (sel.verdict, sel.agreeing) == ("IO", 0)
    assert sel.reason == (
        "no server answered (1 sent no usable reply, 1 timed out, 1 did not resolve)"
    )


def _reply(**change: object) -> Reply:
    base = Reply(
        server_rx_ns=1_000_050_000,
        server_tx_ns=1_000_060_000,
        stratum=2,
        leap=0,
        root_delay_ns=1_000_000,
        root_dispersion_ns=500_000,
        precision=-20,
        refid=b"\xc0\x00\x02\x01",
    )
    return replace(base, **change)  # type: ignore[arg-type]


def _server(reply: Reply) -> ServerSamples:
    return ServerSamples("x", "192.0.2.1", 123, (Sample(1_000_000_000, 1_000_100_000, reply),))


def test_server_states_that_are_no_candidates() -> None:
    # offset ((50000) + (60000 − 100000)) / 2 = 5000; delay 100000 − 10000 = 90000
    ok = evaluate(_server(_reply()), 1000)
    assert (ok.result, ok.offset_ns, ok.delay_ns) == ("truechimer", 5000, 90000)
    # ⌈(90000 + 1e6)/2⌉ + 500000 + 954 + 1000 + ⌈90000·15e-6⌉ (2) + jitter 0
    assert ok.distance_ns == 545000 + 500000 + 954 + 1000 + 2
    assert evaluate(_server(_reply(stratum=0, refid=b"RATE")), 1000).result == "kiss"
    assert evaluate(_server(_reply(stratum=0, refid=b"\x7f\0\0\1")), 1000).result == (
        "unsynchronised"
    )
    assert evaluate(_server(_reply(stratum=16)), 1000).result == "unsynchronised"
    assert evaluate(_server(_reply(leap=3)), 1000).result == "unsynchronised"
    assert evaluate(_server(_reply(leap=1)), 1000).result == "truechimer"
    far = evaluate(_server(_reply(root_dispersion_ns=MAX_DISTANCE_NS)), 1000)
    assert far.result == "too-far"


@pytest.mark.parametrize(
    ("intervals", "expected"),
    [
        # Marzullo's example: three sources, the majority interval [11, 12]
        ([(8, 12), (11, 13), (10, 12)], (11, 12, 0)),
        # one false ticker among four
        ([(8, 12), (11, 13), (10, 12), (40, 50)], (11, 12, 1)),
        # intervals that only touch still overlap, in a point
        ([(0, 10), (10, 20), (5, 10)], (10, 10, 0)),
        # two that disagree: no majority
        ([(0, 1), (5, 6)], None),
        # one source is its own interval
        ([(-3, 7)], (-3, 7, 0)),
        # three disjoint pairs of five: the majority of three is [4, 5]
        ([(0, 5), (4, 9), (3, 6), (20, 21), (30, 31)], (4, 5, 2)),
    ],
)
def test_intersection_textbook_cases(
    intervals: list[tuple[int, int]], expected: tuple[int, int, int] | None
) -> None:
    assert intersect(intervals) == expected
