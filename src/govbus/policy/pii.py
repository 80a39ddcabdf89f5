"""PII and secret detectors: compiled once, linear-time, validated by checksums in Python.

The detectors are usable on their own (the ``pii`` check kind uses them, and so can anything
that needs to redact text, such as audit payloads)::

    >>> detector = PiiDetector(["email", "credit_card"])
    >>> detector.redact("card 4111 1111 1111 1111, mail ana@example.com")
    'card [REDACTED:credit_card], mail [REDACTED:email]'

Design, because this sits on every hop:

- Every regex only *proposes* candidates; checksums (Luhn, Verhoeff, mod-97), range rules and
  context words are applied in Python to the few candidates found. This keeps each pattern
  simple enough to be linear-time: repetitions are bounded, and groups of digits are separated
  by mandatory separators or matched possessively, so no pattern can split one run of
  characters in more than one way.
- Cheap gates run first: text with no digit, no ``@`` and no secret marker returns at once.
- Matches never overlap. When candidates of two entities overlap, the more specific one wins
  (a Luhn-valid card number is not also a phone number), so a phone detector alone still does
  not report card numbers or IBANs as phones.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Final, Literal, NamedTuple, TypeAlias, get_args

__all__ = [
    "ENTITIES",
    "PiiDetector",
    "PiiEntity",
    "PiiMatch",
    "iban_valid",
    "luhn_valid",
    "shannon_entropy",
    "verhoeff_valid",
]

PiiEntity: TypeAlias = Literal[
    "email",
    "phone",
    "credit_card",
    "iban",
    "pan_in",
    "aadhaar",
    "us_ssn",
    "uk_nino",
    "ip_address",
    "secrets",
]

#: Every entity name, in the order the docs list them.
ENTITIES: Final[tuple[PiiEntity, ...]] = get_args(PiiEntity)


class PiiMatch(NamedTuple):
    """One detected span: ``text[start:end]`` is an instance of ``entity``."""

    entity: PiiEntity
    start: int
    end: int


# --------------------------------------------------------------------------- checksums


def luhn_valid(digits: str) -> bool:
    """True when the string of digits passes the Luhn (mod 10) check.

    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_VERHOEFF_D: Final = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P: Final = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 7, 6, 8, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def verhoeff_valid(digits: str) -> bool:
    """True when the string of digits (check digit last) passes the Verhoeff check.

    >>> verhoeff_valid("2363"), verhoeff_valid("2364")
    (True, False)
    """
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][ord(ch) - 48]]
    return c == 0


# IBAN length per country (SWIFT IBAN registry, plus the partner countries that issue IBANs).
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """True when ``iban`` (spaces allowed, any case) has its country's length and mod-97 == 1.

    >>> iban_valid("GB82 WEST 1234 5698 7654 32"), iban_valid("GB82 WEST 1234 5698 7654 33")
    (True, False)
    """
    compact = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    if not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    # int(..., 36) maps A..Z to 10..35 per character only digit by digit, so expand explicitly.
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def shannon_entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character (0.0 for the empty string)."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


# --------------------------------------------------------------------------- patterns

# Numbers must not start inside a word, a decimal, an amount, a signed/hyphenated id
# (ORD-1234567890) or a longer grouped number ("6011 3000 0023 2361" holds no Aadhaar), and
# must not end where more of the same number follows.
# The test is written after the first digit: a pattern that starts with a character class
# lets the regex engine skip ahead to candidates instead of trying every position.
_NUM_START_AFTER: Final = r"(?<![\w.,+$€£¥/-].)(?<!\d .)"
_NUM_END: Final = r"(?!\w|[ .:/,-]?\d)"

_DIGIT: Final = re.compile(r"\d")

_EMAIL: Final = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.){1,8}[A-Za-z]{2,24}(?![\w-]|\.[A-Za-z0-9])"
)

# A card number may be followed by its expiry ("4111 1111 1111 1111 09/30"), which is not more
# of the number.
_CARD_END: Final = r"(?!\w|[.:/,-]?\d|[ ](?!(?:0[1-9]|1[0-2])/\d\d(?!\d))\d)"
_CARD: Final = re.compile(r"\d" + _NUM_START_AFTER + r"(?:[ -]?\d){11,18}" + _CARD_END)

_IBAN: Final = re.compile(r"(?<!\w)[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){10,31}(?![A-Z0-9])", re.I)

_PAN: Final = re.compile(r"(?<!\w)[A-Z]{3}[PCHFATBLJG][A-Z]\d{4}[A-Z](?!\w)")

_AADHAAR: Final = re.compile(r"[2-9]" + _NUM_START_AFTER + r"\d{3}([ -]?)\d{4}\1\d{4}" + _NUM_END)

_SSN: Final = re.compile(r"(\d" + _NUM_START_AFTER + r"\d\d)([- ])(\d{2})\2(\d{4})" + _NUM_END)
_SSN_BARE: Final = re.compile(r"\d" + _NUM_START_AFTER + r"\d{8}" + _NUM_END)
_SSN_CONTEXT: Final = re.compile(r"(?i)\b(?:ssn|ss#|social\s+security|ss\s+no|tin|itin)\b")

# The official NINO rules: D, F, I, Q, U, V never appear in the prefix, O not second, and
# BG, GB, KN, NK, NT, TN and ZZ are never issued.
_NINO: Final = re.compile(
    r"(?<!\w)(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"([ ]?)\d{2}\1\d{2}\1\d{2}\1[A-D](?!\w)"
)

_OCTET: Final = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4: Final = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")
# Where an _IPV4 match can begin: a digit not preceded by a word character or a dot.
_IPV4_START: Final = re.compile(r"\d(?<![\w.].)")
_IPV6: Final = re.compile(
    r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?![\w:]|\.\w)"
)
# Necessary conditions that start with a literal or a digit, so the engine skips ahead to them:
# the full patterns start with look-behinds and try every position.
_IPV4_HINT: Final = re.compile(r"\.\d{1,3}\.\d")
_IPV6_HINT: Final = re.compile(r":[0-9A-Fa-f]{0,4}:")
_VERSION_BEFORE: Final = re.compile(r"(?i)(?:\bv|\bver\.?|\bversion|\brelease|\bbuild)\s{0,2}\Z")

# Phone candidates: groups of digits joined by one separator (space, dot, dash) or a bracketed
# area code, optionally a leading "+", optionally an extension. Digit groups are possessive
# and separators mandatory, so a run splits into groups exactly one way.
_PHONE: Final = re.compile(
    r"(?<![\w+$€£¥./-])(?<!\d,)"
    r"(?:\+[ ]?)?"
    r"(?:\(\+?\d{1,4}\)[ .-]?)?"
    r"\d{1,15}+"  # E.164 allows 15 digits, written without separators too
    r"(?:(?:[ .-]|[ ]?\(\d{1,5}\)[ ]?)\d{1,12}+){0,7}"
    r"(?:[ ]?(?:x|ext\.?|extn\.?)[ ]?\d{1,6})?"
    r"(?!\w|[ .:/,-]?\d)",
    re.I,
)
# Where a _PHONE match can begin: its first character, then its look-behinds (see _starts).
_PHONE_START: Final = re.compile(r"[+(\d](?<![\w+$€£¥./-].)(?<!\d,.)")
_PHONE_EXT: Final = re.compile(r"(?i)[ ]?(?:x|ext\.?|extn\.?)[ ]?\d{1,6}\Z")

# National formats that are phone numbers by their shape alone (no context word needed).
_PHONE_NATIONAL: Final = re.compile(
    r"(?:"
    # US/Canada (NANP): area code and exchange start 2-9, neither is N11; optional 1 / 001.
    r"(?:(?:00)?1[ .-]?)?(?:\((?!\d11)[2-9][0-8]\d\)[ ]?|(?!\d11)[2-9][0-8]\d([-. ]))"
    r"(?!\d11)[2-9]\d\d[-. ]\d{4}"
    # UK: mobiles 07xxx, London 020 and other geographic numbers, 10-11 digits with trunk 0.
    r"|07\d{3}[ ]?\d{3}[ ]?\d{3}|0\d{1,2}[ ]\d{4}[ ]\d{4}|01\d{2,3}[ ]\d{5,6}"
    # India: 5-5 grouped mobiles starting 6-9.
    r"|[6-9]\d{4}[ ]\d{5}"
    # France (and Belgium, Switzerland): 0X XX XX XX XX with one separator kind.
    r"|0[1-9]([ .-])\d{2}(?:\2\d{2}){3}"
    # Switzerland: 0XX XXX XX XX.
    r"|0\d{2}[ ]\d{3}[ ]\d{2}[ ]\d{2}"
    # Germany, Austria, Italy, Netherlands: trunk 0, area code, subscriber number.
    r"|0\d{1,4}[ /-]\d{5,8}|0\d{2,3}[ -]\d{3}[ -]?\d{2,4}|0\d{3}[ ]\d{2,3}[ ]\d{2}[ ]\d{2}"
    r"|06[ -]?\d{8}"
    # Spain (9 digits starting 6-9) and Italian mobiles (10 digits starting 3).
    r"|[6-9]\d{2}[ ]\d{3}[ ]\d{3}|[89]\d[ ]\d{3}[ ]\d{2}[ ]\d{2}|3\d{2}[ ]\d{3}[ ]\d{3,4}"
    r")"
)

# Words that make a bare or loosely grouped digit run a phone number (several languages).
_PHONE_CONTEXT: Final = re.compile(
    r"(?i)\b(?:"
    r"phone|phones|telephone|tel|tele|mobile|mob|cell|cellphone|call|calls|calling|ring|"
    r"whatsapp|contact|ph|fax|sms|text|dial|hotline|landline|desk|office|answering|reach|"
    r"t[ée]l[ée]phone|t[ée]l|portable|appel(?:er|ez)?|"  # French
    r"telefon|handy|anruf|rufnummer|mobil|"  # German
    r"tel[ée]fono|m[óo]vil|celular|llam(?:ar|e|a)|"  # Spanish
    r"telefono|cellulare|chiam(?:are|a)|"  # Italian
    r"telefoon|mobiel|bel(?:len)?|"  # Dutch
    r"telefone|ligar|"  # Portuguese
    r"fon|sampark|sampark\s+karo|number\s+do"  # romanised Hindi
    r")\b"
)
_DATE_LIKE: Final = re.compile(
    r"(?:19|20)\d\d([-/. ])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])(?:[ T]\d\d)*"
    r"|(?:0?[1-9]|[12]\d|3[01])([-/.])(?:0?[1-9]|1[0-2])\2(?:19|20)\d\d"
    r"|(?:0?[1-9]|1[0-2])([-/.])(?:0?[1-9]|[12]\d|3[01])\3(?:19|20)\d\d"
)

# Substring tests are an order of magnitude cheaper than one case-insensitive regex scan.
# Literals that _SECRET_TOKENS cannot match without (its four alternatives start with them).
_TOKEN_MARKERS: Final = (
    "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox"
)  # fmt: skip
_SECRET_WORDS: Final = ("key", "token", "secret", "pass", "pwd")
_SECRET_TOKENS: Final = re.compile(
    r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"
    r"|(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![\w-])"
    r"|(?<![\w-])glpat-[A-Za-z0-9_-]{20,64}(?![\w-])"
    r"|(?<![\w-])xox[abprs]-[A-Za-z0-9-]{10,250}(?![\w-])"
)
_JWT: Final = re.compile(
    r"(?<![\w-])eyJ[A-Za-z0-9_-]{5,4096}\.[A-Za-z0-9_-]{2,16384}\.[A-Za-z0-9_-]{0,4096}(?![\w-])"
)
_PEM_BEGIN: Final = re.compile(r"-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END: Final = re.compile(r"-----END (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY: Final = re.compile(r"(?:\r?\n[ \t]{0,8}[A-Za-z0-9+/=:, -]{1,100}+)*+")
_AWS_SECRET: Final = re.compile(
    r"(?i)aws_?secret_?(?:access_?)?key[\"']?[ \t]{0,4}[:=][ \t]{0,4}[\"']?"
    r"(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
_ASSIGNMENT: Final = re.compile(
    r"(?i)(?<![A-Za-z0-9])"
    r"(?:api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|access[_-]?token|"
    r"auth[_-]?token|api[_-]?token|bearer[_-]?token|refresh[_-]?token|client[_-]?secret|"
    r"token|secret|password|passwd|passphrase|pwd)"
    # the key may be quoted and indexed: os.environ["API_KEY"] = "..."
    r"(?:[_-][A-Za-z0-9]{1,16}){0,2}[\"']?\]?[ \t]{0,4}(?::=|=>|[:=])[ \t]{0,4}[\"']?"
    r"(?P<v>[^\s\"'`<>,;(){}\[\]]{8,256}+)"
)
# How far after the start of a key word the assignment operator can be (with slack: 49 needed).
_ASSIGNMENT_REACH: Final = 64
_PLACEHOLDERS: Final = ("example", "changeme", "placeholder", "your", "redacted", "dummy", "xxxx")

# Entropy of the value of a `secret=...` assignment, in bits per character. Real keys and
# generated passwords sit above 3.5; English words and placeholders like "changeme" below 3.
_MIN_ENTROPY: Final = 3.0


# --------------------------------------------------------------------------- detectors

_Span: TypeAlias = tuple[int, int]
_Finder: TypeAlias = Callable[[str], list[_Span]]


def _find_email(text: str) -> list[_Span]:
    if "@" not in text:
        return []
    return [m.span() for m in _EMAIL.finditer(text)]


def _card_iin_ok(digits: str) -> bool:
    n = len(digits)
    first = digits[0]
    if first == "4":
        return n in (13, 16, 19)
    two = int(digits[:2])
    four = int(digits[:4])
    if first == "5":
        return n >= 12 if two in (50, 56, 57, 58, 59) else n == 16  # Maestro / Mastercard
    if first == "6":
        return n >= 12  # Discover, UnionPay, RuPay, Maestro
    if first == "3":
        if two in (34, 37):
            return n == 15  # American Express
        return two in (30, 35, 36, 38, 39) and 14 <= n <= 19  # Diners, JCB
    if first == "2":
        if 2221 <= four <= 2720 or 2200 <= four <= 2204:
            return n == 16  # Mastercard 2-series, Mir
        return four == 2131 and n == 15  # JCB
    if four == 1800:
        return n == 15  # JCB
    return two in (81, 82) and n == 16  # RuPay, UnionPay


# Card, Aadhaar and SSN numbers lie inside a run of nine digits or more joined by single spaces
# or dashes. On the text's shape (digits as "9") such runs are found by a scan that skips ahead
# to each "9"; the number patterns (which open with ``\d`` and are tried at every digit of the
# text) then run inside those runs only.
_NUMBER_RUN: Final = re.compile(r"9(?:[ -]?9){8,}")
#: Characters after a run that the patterns' trailing look-aheads read (" 09/30" and one more).
_RUN_CONTEXT: Final = 8
#: The last text's runs, so the three number finders of one ``find`` compute them once.
_last_runs: tuple[str, list[_Span]] | None = None


def _number_runs(text: str) -> list[_Span]:
    """Windows of ``text`` holding every card, Aadhaar and SSN match: the maximal runs of 9+
    digits joined by single spaces or dashes, plus the characters the patterns' trailing
    look-aheads read. A text holding Unicode digits is one window (the shape cannot see them),
    so the result is always exact."""
    global _last_runs
    cached = _last_runs
    if cached is not None and cached[0] is text:
        return cached[1]
    if text.isascii() or _SHAPE_UNSAFE.search(text) is None:
        # Non-ASCII characters become "?" one for one, so positions stay the same.
        ascii_text = text if text.isascii() else text.encode("ascii", "replace").decode("ascii")
        size = len(text)
        runs = [
            (m.start(), min(size, m.end() + _RUN_CONTEXT))
            for m in _NUMBER_RUN.finditer(ascii_text.translate(_SHAPE))
        ]
    else:
        runs = [(0, len(text))]
    _last_runs = (text, runs)
    return runs


def _find_card(text: str) -> list[_Span]:
    out: list[_Span] = []
    for m in (m for start, end in _number_runs(text) for m in _CARD.finditer(text, start, end)):
        raw = m.group()
        digits = raw.replace(" ", "").replace("-", "")
        if len(digits) > 19 or not luhn_valid(digits) or not _card_iin_ok(digits):
            continue
        if len(digits) != len(raw):
            # Grouped: one separator kind, the first group of four (every scheme prints its
            # numbers that way), later groups of three to seven.
            if " " in raw and "-" in raw:
                continue
            groups = raw.replace("-", " ").split(" ")
            if len(groups[0]) != 4 or not all(3 <= len(g) <= 7 for g in groups[1:]):
                continue
        out.append(m.span())
    return out


def _find_iban(text: str) -> list[_Span]:
    out: list[_Span] = []
    for m in _IBAN.finditer(text):
        raw = m.group()
        length = _IBAN_LENGTHS.get(raw[:2].upper())
        if length is None:
            continue
        # Cut the candidate at the country's length; the cut must fall at a token boundary.
        count = 0
        end = 0
        for i, ch in enumerate(raw):
            if ch != " ":
                count += 1
                if count == length:
                    end = i + 1
                    break
        if count < length or (end < len(raw) and raw[end] != " "):
            continue
        candidate = raw[:end]
        if " " in candidate:
            parts = candidate.split(" ")
            if not all(len(p) == 4 for p in parts[:-1]) or not 1 <= len(parts[-1]) <= 4:
                continue
        if iban_valid(candidate):
            out.append((m.start(), m.start() + end))
    return out


def _find_pan(text: str) -> list[_Span]:
    return [m.span() for m in _PAN.finditer(text)]


def _find_aadhaar(text: str) -> list[_Span]:
    return [
        m.span()
        for start, end in _number_runs(text)
        for m in _AADHAAR.finditer(text, start, end)
        if verhoeff_valid(m.group().replace(" ", "").replace("-", ""))
    ]


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _find_ssn(text: str) -> list[_Span]:
    runs = _number_runs(text)
    out = [
        m.span()
        for start, end in runs
        for m in _SSN.finditer(text, start, end)
        if _ssn_ok(m[1], m[3], m[4])
    ]
    for m in (m for start, end in runs for m in _SSN_BARE.finditer(text, start, end)):
        s = m.group()
        # A bare nine-digit run is an SSN only after a word that says so.
        if _ssn_ok(s[:3], s[3:5], s[5:]) and _SSN_CONTEXT.search(
            text, max(0, m.start() - 32), m.start()
        ):
            out.append(m.span())
    out.sort()
    return out


def _find_nino(text: str) -> list[_Span]:
    return [m.span() for m in _NINO.finditer(text)]


def _find_ip(text: str) -> list[_Span]:
    out: list[_Span] = []
    if "." in text and _IPV4_HINT.search(text):
        for m in _starts(_IPV4_START, _IPV4, text):
            if not _VERSION_BEFORE.search(text, max(0, m.start() - 12), m.start()):
                out.append(m.span())
    if ":" in text and _IPV6_HINT.search(text):
        for m in _IPV6.finditer(text):
            raw = m.group()
            if raw.count(":") < 2 or not any(ch.isalnum() for ch in raw):
                continue
            try:
                ipaddress.IPv6Address(raw)
            except ValueError:
                continue
            out.append(m.span())
        out.sort()
    return out


def _phone_ok(text: str, start: int, end: int) -> bool:
    raw = text[start:end]
    ext = _PHONE_EXT.search(raw)
    core = raw[: ext.start()] if ext else raw
    digits = "".join(ch for ch in core if ch.isdigit())
    n = len(digits)
    if "." in core:
        # A phone written with dots uses at least two of them, and nothing else: one dot is a
        # decimal amount, four short groups an IPv4 address or a version.
        if core.count(".") < 2 or "-" in core or " " in core.strip():
            return False
        groups = core.split(".")
        if len(groups) == 4 and all(len(g) <= 3 for g in groups):
            return False
    if _DATE_LIKE.fullmatch(core):
        return False
    if core.startswith("+"):
        return 8 <= n <= 15 and digits[0] != "0"
    if 10 <= n <= 17 and digits.startswith("00") and digits[2] != "0" and not core.isdigit():
        return True  # international prefix 00 + country code, written in groups
    if not 7 <= n <= 12:
        return False
    if _PHONE_NATIONAL.fullmatch(core):
        return True
    # Anything else needs a context word just before (a label, "call me on") or just after
    # on the same line ("... office", "... fax").
    if _PHONE_CONTEXT.search(text, max(0, start - 40), start):
        return True
    line_end = text.find("\n", end, end + 16)
    return _PHONE_CONTEXT.search(text, end, line_end if line_end >= 0 else end + 16) is not None


def _find_phone(text: str) -> list[_Span]:
    return [m.span() for m in _starts(_PHONE_START, _PHONE, text) if _phone_ok(text, *m.span())]


def _starts(start: re.Pattern[str], pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)``, for a pattern whose matches can only begin where ``start``
    matches (the first character, then the pattern's look-behinds written after it).

    A pattern that opens with look-behinds is tried at every position of the text; ``start``
    opens with a character class, so the engine skips to the few places worth trying, and the
    pattern is then matched there only. Same matches, same order (never empty ones).
    """
    pos = 0
    search = start.search
    match = pattern.match
    while (candidate := search(text, pos)) is not None:
        at = candidate.start()
        found = match(text, at)
        if found is None:
            pos = at + 1
            continue
        yield found
        pos = found.end()


def _jwt_header_ok(segment: str) -> bool:
    try:
        header = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return False
    # The header must be a JSON object naming an algorithm; decoding it fully is not needed.
    return header.startswith(b"{") and b'"alg"' in header and header.rstrip().endswith(b"}")


def _assignment_ok(value: str) -> bool:
    lowered = value.lower()
    if value[0] in "$%{<" or any(p in lowered for p in _PLACEHOLDERS):
        return False  # templated or placeholder values
    classes = (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )
    return classes >= 2 and shannon_entropy(value) >= _MIN_ENTROPY


def _assignment_possible(text: str) -> bool:
    """False when no key word ("key", "pass", ...) has an operator close enough after it.

    Both assignment patterns (_AWS_SECRET, _ASSIGNMENT) match one of the key words, then at
    most 50 characters (the rest of the name, two suffixes, a quote, spaces), then ":" or "=";
    ordinary prose mentioning a password and a time of day elsewhere needs no regex scan.
    """
    lowered = text.lower()
    if not lowered.isascii():
        # Case-insensitive matching also pairs the long s with "s"; lower() does not.
        lowered = lowered.replace("\u017f", "s")
    find = lowered.find
    for word in _SECRET_WORDS:
        i = find(word)
        while i >= 0:
            window = lowered[i : i + _ASSIGNMENT_REACH]
            if ":" in window or "=" in window:
                return True
            i = find(word, i + 1)
    return False


def _find_secrets(text: str) -> list[_Span]:
    # Each pattern runs only when a literal it cannot match without occurs: substring tests
    # cost a fraction of a regex scan, and ordinary prose ("through", "high") no longer opens
    # the token scan just because it contains "gh".
    token_marker = (
        "xox" in text
        or ("IA" in text and ("AKIA" in text or "ASIA" in text))
        or ("_" in text and any(m in text for m in _TOKEN_MARKERS))
        or "glpat-" in text
    )
    assignment = (":" in text or "=" in text) and _assignment_possible(text)
    if not token_marker and not assignment and "eyJ" not in text and "-----BEGIN" not in text:
        return []
    out: list[_Span] = [m.span() for m in _SECRET_TOKENS.finditer(text)] if token_marker else []
    if "eyJ" in text:
        out.extend(m.span() for m in _JWT.finditer(text) if _jwt_header_ok(m.group().split(".")[0]))
    if "-----BEGIN" in text:
        pos = 0
        while (begin := _PEM_BEGIN.search(text, pos)) is not None:
            end_marker = _PEM_END.search(text, begin.end())
            if end_marker is None:
                # A truncated key still leaks: take the header and the base64 lines after it.
                body = _PEM_BODY.match(text, begin.end())
                end = body.end() if body is not None else begin.end()
                out.append((begin.start(), end))
                break
            out.append((begin.start(), end_marker.end()))
            pos = end_marker.end()
    if assignment:
        if "secret" in text.lower():
            out.extend(m.span("v") for m in _AWS_SECRET.finditer(text))
        out.extend(m.span("v") for m in _ASSIGNMENT.finditer(text) if _assignment_ok(m["v"]))
    out.sort()
    return out


# --------------------------------------------------------------------------- pre-scan

# One C-level pass maps an ASCII text to its *shape*: every digit becomes "9", every letter "A"
# (upper case) or "a" (lower case), and the few separators the number patterns care about stay.
# Cheap substring tests on the shape then rule out most entities before any of their (much
# slower) regexes runs. Each test below is a necessary condition of its entity's pattern.
_SHAPE: Final = str.maketrans(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "9" * 10 + "A" * 26 + "a" * 26,
)
# Non-ASCII characters a number pattern could still match: Unicode digits (``\d``) and the
# letters that case-insensitive matching pairs with ASCII ones (IBAN is matched with re.I).
_SHAPE_UNSAFE: Final = re.compile(r"[^\x00-\x7f](?<=[\d\u0130\u0131\u017f\u212a])")
# Phones have at least seven digits, at most two characters apart (") (", " (", "-").
_PHONE_SHAPE: Final = re.compile(r"9(?:[^9]{0,2}9){6}")
# Starts with the digits (rarer than letters) so the engine can skip ahead to them.
_IBAN_SHAPE: Final = re.compile(r"99(?<=[Aa]{2}99)")
_IPV4_SHAPE: Final = re.compile(r"9\.9{1,3}\.9")
# Card (12-19 digits), Aadhaar (12) and SSN (9) numbers: nine digits or more, each at most one
# space or dash from the next. Years, amounts and dates ("2026-03-01") do not qualify.
_LONG_NUMBER_SHAPE: Final = re.compile(r"9(?:[ -]?9){8}")


def _shape_gates(text: str) -> frozenset[PiiEntity] | None:
    """Entities whose patterns could match ``text``; None when the shape cannot tell."""
    if not text.isascii():
        if _SHAPE_UNSAFE.search(text):
            return None
        text = text.encode("ascii", "replace").decode("ascii")
    shape = text.translate(_SHAPE)
    out: set[PiiEntity] = {"email", "secrets"}
    if "9" not in shape:
        if ":" in text:
            out.add("ip_address")  # IPv6 can be written without a decimal digit
        return frozenset(out)
    if _LONG_NUMBER_SHAPE.search(shape):
        out.update(("credit_card", "aadhaar", "us_ssn"))
    if "AAAAA9999A" in shape:  # PAN: five letters, four digits, a letter
        out.add("pan_in")
    if _PHONE_SHAPE.search(shape):
        out.add("phone")
    if _IBAN_SHAPE.search(shape):
        out.add("iban")
    if "AA99" in shape or "AA 99" in shape:
        out.add("uk_nino")
    if ":" in text or _IPV4_SHAPE.search(shape):
        out.add("ip_address")
    return frozenset(out)


class _Detector(NamedTuple):
    finder: _Finder
    needs_digit: bool
    priority: int  # higher wins when candidates of two entities overlap


_DETECTORS: Final[dict[PiiEntity, _Detector]] = {
    "secrets": _Detector(_find_secrets, False, 90),
    "iban": _Detector(_find_iban, True, 80),
    # Above credit_card: a 12-digit Verhoeff-valid number is more likely an Aadhaar than one
    # of the rare 12-digit Maestro cards (only those two can collide).
    "aadhaar": _Detector(_find_aadhaar, True, 75),
    "credit_card": _Detector(_find_card, True, 70),
    "us_ssn": _Detector(_find_ssn, True, 50),
    "uk_nino": _Detector(_find_nino, True, 50),
    "pan_in": _Detector(_find_pan, True, 50),
    "email": _Detector(_find_email, False, 40),
    "ip_address": _Detector(_find_ip, False, 30),
    "phone": _Detector(_find_phone, True, 10),
}

# Entities that also run (unreported) when phones are wanted, so that a card number, an IBAN,
# an SSN or an IP address is never reported as a phone number.
_PHONE_SHADOWS: Final[tuple[PiiEntity, ...]] = (
    "iban",
    "credit_card",
    "aadhaar",
    "us_ssn",
    "ip_address",
)


class PiiDetector:
    """Finds PII and secrets in text. Build once (patterns are module-level and compiled once);
    :meth:`find` and :meth:`redact` are thread-safe.

    Args:
        entities: the entity names to report (default: all of :data:`ENTITIES`).

    Raises:
        ValueError: an entity name is unknown.

    Example:
        >>> PiiDetector(["email"]).find("write to ana@example.com")
        [PiiMatch(entity='email', start=9, end=24)]
    """

    __slots__ = ("_needs_digit", "_runs", "entities")

    def __init__(self, entities: Iterable[str] = ENTITIES) -> None:
        wanted = tuple(dict.fromkeys(entities))
        unknown = [e for e in wanted if e not in _DETECTORS]
        if unknown:
            raise ValueError(f"unknown PII entities {unknown}; known: {', '.join(ENTITIES)}")
        self.entities: frozenset[PiiEntity] = frozenset(e for e in ENTITIES if e in wanted)
        run = set(self.entities)
        if "phone" in run:
            run.update(_PHONE_SHADOWS)
        self._runs: tuple[tuple[PiiEntity, _Finder, bool, int], ...] = tuple(
            (e, d.finder, d.needs_digit, d.priority) for e, d in _DETECTORS.items() if e in run
        )
        self._needs_digit = all(needs for _, _, needs, _ in self._runs)

    def find(self, text: str) -> list[PiiMatch]:
        """Every match in ``text``: non-overlapping, sorted by position."""
        gates = _shape_gates(text)
        if gates is None:
            return self._find_all(text)
        found: list[tuple[int, int, int, PiiEntity]] = []
        for entity, finder, _, priority in self._runs:
            if entity not in gates:
                continue
            for start, end in finder(text):
                found.append((start, -priority, end, entity))
        return self._resolve(found)

    def _find_all(self, text: str) -> list[PiiMatch]:
        """:meth:`find` without the shape pre-scan (the reference the fast path must agree with)."""
        has_digit = _DIGIT.search(text) is not None
        if not has_digit and self._needs_digit:
            return []
        found: list[tuple[int, int, int, PiiEntity]] = []
        for entity, finder, needs_digit, priority in self._runs:
            if needs_digit and not has_digit:
                continue
            for start, end in finder(text):
                found.append((start, -priority, end, entity))
        return self._resolve(found)

    def _resolve(self, found: list[tuple[int, int, int, PiiEntity]]) -> list[PiiMatch]:
        if not found:
            return []
        found.sort()
        # Sweep in order of position; of two overlapping candidates the higher priority wins.
        # Accepted spans never overlap, so only the last one can clash with the next candidate.
        kept: list[tuple[int, int, int, PiiEntity]] = []
        for cand in found:
            if kept and cand[0] < kept[-1][2]:
                if cand[1] < kept[-1][1]:
                    kept[-1] = cand
                continue
            kept.append(cand)
        wanted = self.entities
        return [PiiMatch(e, s, end) for s, _, end, e in kept if e in wanted]

    def redact(self, text: str) -> str:
        """``text`` with every match replaced by ``[REDACTED:<entity>]``."""
        matches = self.find(text)
        for m in reversed(matches):
            text = f"{text[: m.start]}[REDACTED:{m.entity}]{text[m.end :]}"
        return text

    def __repr__(self) -> str:
        return f"PiiDetector({sorted(self.entities)!r})"
