"""The PII detectors: valid and invalid examples per entity, and redaction output."""

from __future__ import annotations

import base64
import json
from itertools import pairwise

import pytest

from govbus.policy.pii import (
    ENTITIES,
    PiiDetector,
    PiiMatch,
    iban_valid,
    luhn_valid,
    shannon_entropy,
    verhoeff_valid,
)

ALL = PiiDetector()


def found(entity: str, text: str) -> list[str]:
    """The substrings of ``text`` that a detector for ``entity`` alone reports."""
    return [text[m.start : m.end] for m in PiiDetector([entity]).find(text)]


# --------------------------------------------------------------------------- checksums


def test_checksum_helpers_accept_valid_and_reject_altered_numbers() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111121")
    assert verhoeff_valid("234567890124") and not verhoeff_valid("234567890125")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE89370400440532013001")
    assert not iban_valid("DE8937040044053201300")  # one character short for DE
    assert shannon_entropy("aaaa") == 0.0 and shannon_entropy("abcd") == 2.0


# --------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    "email", ["ana@example.com", "first.last+tag@mail.example.co.uk", "X_Y-9@sub-domain.io"]
)
def test_emails_are_found(email: str) -> None:
    assert found("email", f"write to {email}, thanks") == [email]


@pytest.mark.parametrize("text", ["user@localhost", "a@b", "@handle", "price 5 @ 3.50", "x@y.1"])
def test_things_with_an_at_sign_that_are_not_emails(text: str) -> None:
    assert found("email", text) == []


# --------------------------------------------------------------------------- credit cards


@pytest.mark.parametrize(
    "card",
    [
        "4111111111111111",  # Visa
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",  # Mastercard
        "2223000048400011",  # Mastercard 2-series
        "3782 822463 10005",  # American Express 4-6-5
        "6011111111111117",  # Discover
        "3530111333300000",  # JCB
        "30569309025904",  # Diners, 14 digits
        "4222222222222",  # Visa, 13 digits
    ],
)
def test_luhn_valid_cards_with_a_known_prefix_are_found(card: str) -> None:
    assert found("credit_card", f"card: {card}.") == [card]


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # Luhn fails
        "4111 1111 1111 1112",
        "1234567812345670",  # Luhn passes, no card scheme starts with 1
        "4111 1111-1111 1111",  # mixed separators
        "41 11 11 11 11 11 11 11",  # not how cards are printed
        "4111 1111 1111 1111 1111",  # one group too many: a longer number
        "ref 94111111111111111",
    ],
)
def test_numbers_that_are_not_cards(text: str) -> None:
    assert found("credit_card", text) == []


# --------------------------------------------------------------------------- IBAN


@pytest.mark.parametrize(
    "iban",
    [
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "gb82west12345698765432",
        "DE89370400440532013000",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "ES9121000418450200051332",
        "IT60X0542811101000000123456",
        "NO9386011117947",  # shortest: 15
        "BE68539007547034",
    ],
)
def test_ibans_with_the_right_length_and_checksum_are_found(iban: str) -> None:
    assert found("iban", f"pay to {iban} today") == [iban]


@pytest.mark.parametrize(
    "text",
    [
        "GB82 WEST 1234 5698 7654 33",  # mod-97 fails
        "DE89 3704 0044 0532 0130 0",  # too short for DE
        "XX82WEST12345698765432",  # no such country
        "GB82WEST123456987654321",  # too long: the cut falls inside a token
        "GB82 WE ST12 3456 9876 5432",  # not grouped in fours
    ],
)
def test_strings_that_are_not_ibans(text: str) -> None:
    assert found("iban", text) == []


def test_an_iban_followed_by_words_ends_at_its_country_length() -> None:
    text = "IBAN GB82 WEST 1234 5698 7654 32 ABCD more"
    assert found("iban", text) == ["GB82 WEST 1234 5698 7654 32"]


# --------------------------------------------------------------------------- Indian PAN, Aadhaar


@pytest.mark.parametrize("holder", list("PCHFATBLJG"))
def test_pan_with_each_valid_holder_type_is_found(holder: str) -> None:
    pan = f"ABC{holder}E1234F"
    assert found("pan_in", f"PAN {pan}") == [pan]


@pytest.mark.parametrize(
    "text", ["ABCXE1234F", "ABCDE1234F", "abcpe1234f", "ABCPE12345F", "XABCPE1234F"]
)
def test_strings_that_are_not_pans(text: str) -> None:
    assert found("pan_in", text) == []


@pytest.mark.parametrize("aadhaar", ["234567890124", "2345 6789 0124", "4987-6543-2102"])
def test_verhoeff_valid_aadhaar_numbers_are_found(aadhaar: str) -> None:
    assert found("aadhaar", f"Aadhaar {aadhaar}") == [aadhaar]


@pytest.mark.parametrize(
    "text",
    [
        "234567890125",  # Verhoeff fails
        "134567890124",  # starts with 1 (and the check no longer holds either)
        "034567890120",
        "2345 6789-0124",  # inconsistent grouping
        "2345678901245",  # 13 digits
    ],
)
def test_numbers_that_are_not_aadhaar(text: str) -> None:
    assert found("aadhaar", text) == []


# --------------------------------------------------------------------------- US SSN, UK NINO


@pytest.mark.parametrize("text", ["SSN 123-45-6789", "ssn 123 45 6789", "SSN: 123456789"])
def test_valid_ssns_are_found(text: str) -> None:
    assert len(found("us_ssn", text)) == 1


@pytest.mark.parametrize(
    "text",
    [
        "000-12-3456",  # area 000
        "666-12-3456",  # area 666
        "912-34-5678",  # area 9xx
        "123-00-4567",  # group 00
        "123-45-0000",  # serial 0000
        "123-45 6789",  # inconsistent separators
        "ticket 123456789",  # bare nine digits without a context word
    ],
)
def test_strings_that_are_not_ssns(text: str) -> None:
    assert found("us_ssn", text) == []


@pytest.mark.parametrize("nino", ["AB123456C", "AB 12 34 56 C", "JG103759A"])
def test_valid_ninos_are_found(nino: str) -> None:
    assert found("uk_nino", f"NI number {nino}") == [nino]


@pytest.mark.parametrize(
    "text",
    ["QQ123456C", "DA123456A", "AO123456A", "GB123456A", "NK123456A", "AB123456E", "AB12345C"],
)
def test_strings_that_are_not_ninos(text: str) -> None:
    assert found("uk_nino", text) == []


# --------------------------------------------------------------------------- IP addresses


@pytest.mark.parametrize(
    "ip",
    [
        "192.168.0.1",
        "255.255.255.255",
        "8.8.8.8",
        "2001:db8:85a3:0:0:8a2e:370:7334",
        "2001:db8::1",
        "fe80::1ff:fe23:4567:890a",
        "::1",
        "::ffff:192.0.2.1",
    ],
)
def test_ip_addresses_are_found(ip: str) -> None:
    assert found("ip_address", f"from {ip}, blocked") == [ip]


@pytest.mark.parametrize(
    "text",
    [
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "v1.2.3.4",
        "version 10.2.3.4",
        "release 2.0.1.7",
        "at 12:30:45",
        "mac 00:1a:2b:3c:4d:5e",
        "std::vector",
    ],
)
def test_strings_that_are_not_ip_addresses(text: str) -> None:
    assert found("ip_address", text) == []


# --------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    "phone",
    [
        "+14155552671",  # E.164
        "+1-415-555-2671",
        "+44 20 7946 0958",
        "+91 98765 43210",
        "+49 30 1234567",
        "+33 1 23 45 67 89",
        "+41 (0)71 526 99 04",
        "(415) 555-2671",  # US
        "415-555-2671",
        "415.555.2671",
        "415-555-2671 x123",
        "98765 43210",  # IN
        "07700 900123",  # UK
        "020 7946 0958",
        "030 1234567",  # DE
        "0151 12345678",
        "01 23 45 67 89",  # FR
        "01.23.45.67.89",
        "912 345 678",  # ES
        "91 234 56 78",
        "06 12345678",  # NL
        "020 123 4567",
        "02 1234 5678",  # IT
        "347 123 4567",
    ],
)
def test_phones_in_known_formats_are_found_without_context(phone: str) -> None:
    assert found("phone", f"the number {phone} is new") == [phone]


@pytest.mark.parametrize(
    "text",
    [
        "call me on 9876543210",
        "Phone:\n467 3395",
        "WhatsApp 72 128 827",
        "tel. 9472 7916",
        "Telefon: 4233 6306",
        "llame al 450 08401",
        "416 60 039 office",
    ],
)
def test_bare_digit_runs_are_phones_next_to_a_context_word(text: str) -> None:
    assert len(found("phone", text)) == 1


@pytest.mark.parametrize(
    "text",
    [
        "9876543210",
        "72 128 827",
        "timestamp 20261121193012",
        "call at 20261121193012",
        "amount 1234567.89",
        "call about 1234567.89",
        "order ORD-1234567890",
        "contact us about ORD-1234567890",
        "version 10.2.3.4",
        "call 10.2.3.4",
        "call on 2026-11-21",
        "phone 123-45-6789 is an SSN",
        "555-0100",
        "4111 1111 1111 1111 call",  # a card number is never a phone
        "call +0 1234 5678",
    ],
)
def test_digit_runs_that_are_not_phones(text: str) -> None:
    assert found("phone", text) == []


# --------------------------------------------------------------------------- secrets

AWS_ID = "AKIA" + "IOSFODNN7Q2ZX3LK"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq" + "8Lk2Hd9A"
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
JWT_HEADER = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
JWT = (
    JWT_HEADER.decode().rstrip("=")
    + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
    "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"key id {AWS_ID} in logs", AWS_ID),
        ("ASIA" + "Y34FZKBOKMUTVV7A", "ASIA" + "Y34FZKBOKMUTVV7A"),
        (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
        (f"token {GITHUB}", GITHUB),
        ("gho_" + "x" * 36, "gho_" + "x" * 36),
        ("github_pat_" + "11ABCDEFG0" * 4, "github_pat_" + "11ABCDEFG0" * 4),
        ("glpat-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm", "glpat-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm"),
        ("xoxb-" + "1234567890-abcdefABCDEF", "xoxb-" + "1234567890-abcdefABCDEF"),
        (f"here:\n{PEM}\nbye", PEM),
        (f"Authorization: Bearer {JWT}", JWT),
        ("api_key=sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ('{"password": "Tr0ub4dor&3x!"}', "Tr0ub4dor&3x!"),
        ("DB_PASSWORD: q7Zp2Lk9Xw4R", "q7Zp2Lk9Xw4R"),
        ("client_secret := 9f8e7d6c5b4a3F2E1D0C", "9f8e7d6c5b4a3F2E1D0C"),
    ],
)
def test_each_kind_of_secret_is_found(text: str, secret: str) -> None:
    assert found("secrets", text) == [secret]


def test_a_truncated_private_key_block_is_still_found() -> None:
    text = PEM.rsplit("\n", 1)[0]
    [span] = found("secrets", text)
    assert span.startswith("-----BEGIN") and span.endswith("AQ==")


@pytest.mark.parametrize(
    "text",
    [
        "password=changeme",
        "password: hunter22",
        "token: example123",
        "secret=correcthorsebatterystaple",  # one class of characters: a phrase, not a key
        "api_key=${API_KEY}",
        "password=<your-password>",
        "the token is valid and the secret is safe",
        "AKIA1234",  # too short for a key id
        "ghp_short",
        "eyJub3Rqc29u.eyJhIjoxfQ.c2ln",  # header is not JSON
        base64.urlsafe_b64encode(b'{"typ":"JWT"}').decode() + ".eyJhIjoxfQ.c2ln",  # no alg
    ],
)
def test_low_entropy_assignments_and_lookalikes_are_not_secrets(text: str) -> None:
    assert found("secrets", text) == []


# --------------------------------------------------------------------------- the detector


def test_matches_are_sorted_and_never_overlap() -> None:
    text = "ana@example.com paid 4111 1111 1111 1111 from 10.0.0.1; SSN 123-45-6789"
    matches = ALL.find(text)
    assert [m.entity for m in matches] == ["email", "credit_card", "ip_address", "us_ssn"]
    assert all(a.end <= b.start for a, b in pairwise(matches))


def test_only_the_requested_entities_are_reported() -> None:
    text = "ana@example.com 4111 1111 1111 1111"
    assert [m.entity for m in PiiDetector(["credit_card"]).find(text)] == ["credit_card"]
    assert PiiDetector(["phone"]).find(text) == []


def test_redact_replaces_each_match_with_its_label() -> None:
    text = "Mail ana@example.com or call +44 20 7946 0958 (card 4111111111111111)."
    assert ALL.redact(text) == (
        "Mail [REDACTED:email] or call [REDACTED:phone] (card [REDACTED:credit_card])."
    )


def test_text_without_candidates_finds_nothing() -> None:
    assert ALL.find("") == []
    assert ALL.find("Please review the quarterly portfolio summary.") == []
    assert ALL.redact("nothing here") == "nothing here"


def test_unknown_entities_are_refused() -> None:
    with pytest.raises(ValueError, match="passport"):
        PiiDetector(["email", "passport"])


def test_entities_lists_every_detector_and_match_is_a_tuple() -> None:
    assert len(ENTITIES) == 10 and PiiDetector().entities == frozenset(ENTITIES)
    assert PiiMatch("email", 1, 2) == ("email", 1, 2)


@pytest.mark.parametrize("text", ["00", "0", "+", "00 ", "tel 00", "call 0 0"])
def test_tiny_digit_runs_never_raise(text: str) -> None:
    """Found by hypothesis: a two-digit '00' once indexed past its end (full path)."""
    detector = PiiDetector(["phone"])
    assert detector.find(text) == []
    assert detector._find_all(text) == []


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("Here is my card: 5526771440293173 09/30 954", "credit_card"),  # expiry after it
        ("Amex 375241401446585 04/31, code 8323", "credit_card"),
        ("Telefon: +4917046238557, Kunde Marco Rossi.", "phone"),  # E.164, no separators
        ('os.environ["API_KEY"] = "zZ.RLNbnSJes.1Q"  # TODO move to vault', "secrets"),
    ],
)
def test_formats_found_by_the_red_team(text: str, entity: str) -> None:
    assert [m.entity for m in PiiDetector().find(text)] == [entity]


def test_a_card_followed_by_more_digits_is_still_not_a_card() -> None:
    assert PiiDetector(["credit_card"]).find("ref 4111111111111111 12345") == []
