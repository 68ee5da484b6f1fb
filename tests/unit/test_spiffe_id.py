# SPDX-License-Identifier: Apache-2.0
"""SPIFFE IDs and trust domains follow the SPIFFE-ID specification, with precise messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wio.errors import InvalidSpiffeID, ValidationError
from wio.models.spiffe import (
    PATH_SEGMENT_CHARS,
    TRUST_DOMAIN_CHARS,
    SpiffeID,
    TrustDomain,
)

pytestmark = pytest.mark.unit

td_names = st.text(alphabet=sorted(TRUST_DOMAIN_CHARS), min_size=1, max_size=40)
segments = st.text(alphabet=sorted(PATH_SEGMENT_CHARS), min_size=1, max_size=20).filter(
    lambda s: s not in (".", "..")
)
paths = st.lists(segments, max_size=6).map(lambda segs: "".join("/" + s for s in segs))


@given(td=td_names, path=paths)
def test_valid_ids_round_trip_through_str_and_parse(td: str, path: str) -> None:
    text = f"spiffe://{td}{path}"
    parsed = SpiffeID.parse(text)
    assert str(parsed) == text
    assert parsed.trust_domain == TrustDomain(td)
    assert parsed.path == path
    assert SpiffeID.parse(str(parsed)) == parsed


_forbidden_td_chars = st.characters(
    blacklist_characters=[*sorted(TRUST_DOMAIN_CHARS), "/", "?", "#", "%"],
    blacklist_categories=("Cs",),
)
_forbidden_path_chars = st.characters(
    blacklist_characters=[*sorted(PATH_SEGMENT_CHARS), "/"],
    blacklist_categories=("Cs",),
)


@given(td=td_names, bad=_forbidden_td_chars, where=st.integers(min_value=0, max_value=40))
def test_any_forbidden_character_in_the_trust_domain_is_rejected(
    td: str, bad: str, where: int
) -> None:
    where = min(where, len(td))
    broken = td[:where] + bad + td[where:]
    with pytest.raises(InvalidSpiffeID):
        SpiffeID.parse(f"spiffe://{broken}/ns/a/sa/b")
    with pytest.raises(InvalidSpiffeID):
        TrustDomain(broken)


@given(td=td_names, segs=st.lists(segments, min_size=1, max_size=4), bad=_forbidden_path_chars)
def test_any_forbidden_character_in_the_path_is_rejected(
    td: str, segs: list[str], bad: str
) -> None:
    segs[-1] = segs[-1] + bad
    with pytest.raises(InvalidSpiffeID):
        SpiffeID.parse(f"spiffe://{td}/" + "/".join(segs))


@given(
    td=td_names,
    before=st.lists(segments, max_size=3),
    after=st.lists(segments, max_size=3),
    bad=st.sampled_from(["", ".", ".."]),
)
def test_any_empty_or_dot_segment_is_rejected(
    td: str, before: list[str], after: list[str], bad: str
) -> None:
    path = "".join("/" + s for s in [*before, bad, *after])
    with pytest.raises(InvalidSpiffeID):
        SpiffeID.parse(f"spiffe://{td}{path}")


@given(td=td_names, path=paths, extra=st.sampled_from(["?q=1", "#frag", "?", "#"]))
def test_any_query_or_fragment_is_rejected(td: str, path: str, extra: str) -> None:
    with pytest.raises(InvalidSpiffeID):
        SpiffeID.parse(f"spiffe://{td}{path}{extra}")


BAD_IDS = [
    ("", "SPIFFE ID is empty"),
    ("example.org/ns/a", "must start with 'spiffe://'"),
    ("spiffe:/example.org/ns/a", "must start with 'spiffe://'"),
    ("https://example.org/ns/a", "scheme must be 'spiffe', got 'https'"),
    ("SPIFFE://example.org/ns/a", "scheme must be lower case 'spiffe', got 'SPIFFE'"),
    ("Spiffe://example.org/ns/a", "scheme must be lower case 'spiffe', got 'Spiffe'"),
    ("spiffe://", "trust domain is missing"),
    ("spiffe:///ns/a", "trust domain is missing"),
    ("spiffe://Example.org/ns/a", "trust domain must be lower case: 'E' at position 0"),
    ("spiffe://example.ORG", "trust domain must be lower case: 'O' at position 8"),
    ("spiffe://user@example.org/ns/a", "trust domain must not contain userinfo ('@')"),
    ("spiffe://example.org:8443/ns/a", "trust domain must not contain a port (':')"),
    ("spiffe://example.org:/ns/a", "trust domain must not contain a port (':')"),
    ("spiffe://exa mple.org/ns/a", "trust domain contains ' ' at position 3"),
    ("spiffe://exa+mple.org", "trust domain contains '+' at position 3"),
    ("spiffe://examplé.org", "trust domain contains 'é' at position 6"),
    ("spiffe://[example]/ns/a", "trust domain contains '[' at position 0"),
    ("spiffe://example.org/", "path must not end with '/'"),
    ("spiffe://example.org/ns/a/", "path must not end with '/'"),
    ("spiffe://example.org//ns", "path must not contain an empty segment ('//')"),
    ("spiffe://example.org/ns//a", "path must not contain an empty segment ('//')"),
    ("spiffe://example.org/ns/./a", "path must not contain a '.' segment (dot segments)"),
    ("spiffe://example.org/ns/../a", "path must not contain a '..' segment (dot segments)"),
    ("spiffe://example.org/..", "path must not contain a '..' segment (dot segments)"),
    ("spiffe://example.org/ns/a b", "path segment 'a b' contains ' '"),
    ("spiffe://example.org/ns/a*", "path segment 'a*' contains '*'"),
    ("spiffe://example.org/ns/ä", "path segment 'ä' contains 'ä'"),
    ("spiffe://example.org/ns/a\\b", "path segment 'a\\\\b' contains '\\\\'"),
    ("spiffe://example.org/ns/a?x=1", "must not contain a query ('?')"),
    ("spiffe://example.org/ns/a#frag", "must not contain a fragment ('#')"),
    ("spiffe://example.org/ns/%41", "must not contain percent-encoding ('%')"),
    ("spiffe://example%2eorg/ns", "must not contain percent-encoding ('%')"),
    ("spiffe://example.org/ns/a\n", "path segment 'a\\n' contains '\\n'"),
    ("spiffe://" + "a" * 256, "trust domain is 256 characters long; the maximum is 255"),
    (
        "spiffe://example.org/" + "a" * 2028,
        "SPIFFE ID is 2049 bytes long; the maximum is 2048",
    ),
]


@pytest.mark.parametrize(("value", "message"), BAD_IDS, ids=[repr(v[:40]) for v, _ in BAD_IDS])
def test_explicit_bad_ids_are_rejected_with_a_message_naming_the_problem(
    value: str, message: str
) -> None:
    with pytest.raises(InvalidSpiffeID) as caught:
        SpiffeID.parse(value)
    assert message in caught.value.detail
    assert caught.value.field == "spiffeID"


def test_errors_are_validation_errors_with_the_callers_field_path() -> None:
    with pytest.raises(ValidationError) as caught:
        SpiffeID.parse("spiffe://x/a/", field="spec.allowedIDs[2]")
    assert caught.value.field == "spec.allowedIDs[2]"
    assert str(caught.value).startswith("spec.allowedIDs[2]: ")


def test_the_longest_allowed_id_is_exactly_2048_bytes() -> None:
    value = "spiffe://example.org/" + "a" * 2027
    assert len(value.encode()) == 2048
    assert str(SpiffeID.parse(value)) == value


def test_a_255_character_trust_domain_is_allowed() -> None:
    assert TrustDomain("a" * 255).name == "a" * 255


def test_for_workload_builds_the_kubernetes_shape() -> None:
    spiffe_id = SpiffeID.for_workload("cluster.local", "payments", "api")
    assert str(spiffe_id) == "spiffe://cluster.local/ns/payments/sa/api"
    assert spiffe_id.segments == ("ns", "payments", "sa", "api")
    assert SpiffeID.for_workload(TrustDomain("cluster.local"), "payments", "api") == spiffe_id


@pytest.mark.parametrize(
    ("namespace", "service_account", "field"),
    [
        ("", "api", "namespace"),
        ("pay/ments", "api", "namespace"),
        ("payments", "..", "serviceAccountName"),
        ("payments", "a b", "serviceAccountName"),
    ],
)
def test_for_workload_refuses_names_that_would_change_the_path(
    namespace: str, service_account: str, field: str
) -> None:
    with pytest.raises(InvalidSpiffeID) as caught:
        SpiffeID.for_workload("cluster.local", namespace, service_account)
    assert caught.value.field == field


def test_trust_domain_id_and_parse() -> None:
    td = TrustDomain("example.org")
    assert str(td.id()) == "spiffe://example.org"
    assert td.id().is_trust_domain_id
    assert td.id().trust_domain == td
    assert TrustDomain.parse("spiffe://example.org") == td
    assert TrustDomain.parse("example.org") == td
    with pytest.raises(InvalidSpiffeID, match="must not have a path"):
        TrustDomain.parse("spiffe://example.org/ns/a")
    with pytest.raises(InvalidSpiffeID, match="trust domain is empty"):
        TrustDomain("")


def test_ids_are_immutable_values() -> None:
    a = SpiffeID.parse("spiffe://example.org/ns/a/sa/b")
    b = SpiffeID.parse("spiffe://example.org/ns/a/sa/b")
    assert a == b
    assert hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.path = "/x"  # type: ignore[misc]


def test_direct_construction_validates_the_same_rules() -> None:
    with pytest.raises(InvalidSpiffeID, match="dot segments"):
        SpiffeID(TrustDomain("example.org"), "/ns/../x")
    with pytest.raises(InvalidSpiffeID, match="must start with '/'"):
        SpiffeID(TrustDomain("example.org"), "ns")
