"""Property tests for the PII detectors: checksummed numbers are always found, one changed digit
is never the same entity, no text makes a detector raise, and no input makes one slow (ReDoS).
"""

from __future__ import annotations

import string
import time
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govbus.policy.pii import ENTITIES, PiiDetector, iban_valid, luhn_valid, verhoeff_valid

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DETECTOR = PiiDetector()

# Each scan of a 64 KB adversarial input must end well inside this; a backtracking pattern
# takes seconds to hours on the same inputs, so the bound only catches real blow-ups.
SCAN_BOUND_S = 0.5


def entities_at(text: str, start: int, end: int) -> set[str]:
    return {m.entity for m in DETECTOR.find(text) if m.start == start and m.end == end}


def luhn_complete(body: str) -> str:
    return next(body + d for d in string.digits if luhn_valid(body + d))


def verhoeff_complete(body: str) -> str:
    return next(body + d for d in string.digits if verhoeff_valid(body + d))


def iban_complete(country: str, bban: str) -> str:
    number = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(number) % 97:02d}{bban}"


def flip(number: str, index: int, delta: int) -> str:
    """``number`` with the digit at ``index`` (counting digits only) changed by ``delta``."""
    positions = [i for i, ch in enumerate(number) if ch.isdigit()]
    i = positions[index % len(positions)]
    return f"{number[:i]}{(int(number[i]) + delta) % 10}{number[i + 1 :]}"


digits = st.text(string.digits, min_size=1, max_size=1)


@st.composite
def cards(draw: st.DrawFn) -> str:
    prefix, length = draw(
        st.sampled_from([("4", 16), ("4", 13), ("51", 16), ("37", 15), ("6011", 16), ("35", 16)])
    )
    body = (
        prefix
        + draw(st.text(string.digits, min_size=length - len(prefix) - 1, max_size=19))[
            : length - len(prefix) - 1
        ]
    )
    number = luhn_complete(body)
    if draw(st.booleans()) and length == 16:
        number = " ".join(number[i : i + 4] for i in range(0, 16, 4))
    return number


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country, length = draw(
        st.sampled_from([("GB", 22), ("DE", 22), ("FR", 27), ("NL", 18), ("NO", 15), ("MT", 31)])
    )
    bban = draw(
        st.text(string.digits + string.ascii_uppercase, min_size=length - 4, max_size=length - 4)
    )
    iban = iban_complete(country, bban)
    assert iban_valid(iban)
    if draw(st.booleans()):
        iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


@st.composite
def aadhaars(draw: st.DrawFn) -> str:
    first = draw(st.sampled_from("23456789"))
    number = verhoeff_complete(first + draw(st.text(string.digits, min_size=10, max_size=10)))
    if draw(st.booleans()):
        number = f"{number[:4]} {number[4:8]} {number[8:]}"
    return number


@SETTINGS
@given(cards(), st.integers(0, 18), st.integers(1, 9))
def test_valid_cards_are_found_and_one_changed_digit_is_not(
    card: str, index: int, delta: int
) -> None:
    text = f"Card: {card}."
    assert entities_at(text, 6, 6 + len(card)) == {"credit_card"}
    # Luhn catches every single-digit change.
    assert "credit_card" not in entities_at(
        text.replace(card, flip(card, index, delta)), 6, 6 + len(card)
    )


@SETTINGS
@given(ibans(), st.integers(0, 40), st.integers(1, 9))
def test_valid_ibans_are_found_and_one_changed_digit_is_not(
    iban: str, index: int, delta: int
) -> None:
    text = f"IBAN {iban} thanks"
    assert entities_at(text, 5, 5 + len(iban)) == {"iban"}
    changed = text.replace(iban, flip(iban, index, delta))
    assert "iban" not in {m.entity for m in DETECTOR.find(changed)}


@SETTINGS
@given(aadhaars(), st.integers(0, 11), st.integers(1, 9))
def test_valid_aadhaar_numbers_are_found_and_one_changed_digit_is_not(
    aadhaar: str, index: int, delta: int
) -> None:
    text = f"Aadhaar: {aadhaar}"
    assert entities_at(text, 9, 9 + len(aadhaar)) == {"aadhaar"}
    changed = text.replace(aadhaar, flip(aadhaar, index, delta))
    assert "aadhaar" not in {m.entity for m in DETECTOR.find(changed)}


@SETTINGS
@given(st.text(max_size=300) | st.text(string.printable, max_size=300))
def test_arbitrary_text_never_raises_and_matches_are_well_formed(text: str) -> None:
    matches = DETECTOR.find(text)
    assert all(0 <= m.start < m.end <= len(text) for m in matches)
    assert all(a.end <= b.start for a, b in pairwise(matches))
    assert all(m.entity in ENTITIES for m in matches)
    assert isinstance(DETECTOR.redact(text), str)


N = 65_536
ADVERSARIAL = {
    "digits": "1" * N,
    "digits and dashes": "1-" * (N // 2),
    "digits and spaces": "1 " * (N // 2),
    "digits and dots": "1." * (N // 2),
    "digits and commas": "1," * (N // 2),
    "at signs": "@" * N,
    "letters": "a" * N,
    "letters and at signs": "a@" * (N // 2),
    "almost emails": "aa@a." * (N // 5),
    "dotted local part": "a." * (N // 4) + "@" + "a-" * (N // 4),
    "colons": "a:" * (N // 2),
    "digit colons": "1:" * (N // 2),
    "plus groups": "+1 " * (N // 3),
    "bracketed groups": "(1) " * (N // 4),
    "extensions": "1 x1 " * (N // 5),
    "iban prefix and groups": "GB82" + "1 " * (N // 2 - 2),
    "repeated iban prefixes": "GB82 " * (N // 5),
    "jwt start": "eyJ" + "a" * (N - 3),
    "jwt segments": ("eyJ" + "a" * 10 + ".") * (N // 14),
    "pem headers": "-----BEGIN PRIVATE KEY-----\n" * (N // 28),
    "assignments": "password=" * (N // 9),
    "long assignment values": ("token=Ab1" + "x" * 300 + " ") * (N // 310),
    "key prefixes": "AKIAghp_xoxb-glpat-" * (N // 19),
    "mixed": "1-2 3.4@a:b+(5) " * (N // 16),
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_inputs_scan_in_bounded_time(name: str) -> None:
    text = ADVERSARIAL[name]
    start = time.perf_counter()
    DETECTOR.find(text)
    assert time.perf_counter() - start < SCAN_BOUND_S


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(["1", "-", " ", ".", "@", "a", ":", "+", "(", ")", "x"]),
        min_size=4,
        max_size=16,
    )
)
def test_random_repeated_patterns_scan_in_bounded_time(unit: list[str]) -> None:
    chunk = "".join(unit)
    text = chunk * (N // len(chunk))
    start = time.perf_counter()
    DETECTOR.find(text)
    assert time.perf_counter() - start < SCAN_BOUND_S
