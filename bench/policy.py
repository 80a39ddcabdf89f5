"""Policy evaluation latency, and the PII detector against Microsoft Presidio.

Measures, in one run:

* ``composite``: p50/p99 of one evaluation of ``policies/default.yaml`` (every built-in check
  kind) for an advisory request whose payload is about 300 B, 4 KB and 64 KB of realistic
  banking prose, as the orchestrator runs it: a fresh ``MessageScan`` per evaluation, so the
  text is extracted once and shared by the checks that read it. ``us_per_kb`` shows whether
  the cost grows linearly with size.
* ``per_check``: each check's share of those evaluations (the engine's own per-check timing).
  The first check that reads the text pays for extracting it; ``scan`` is that extraction alone.
* ``pii_speed``: govbus's PII detector and Presidio's recognizers for the same entities
  (pattern recognizers and its phone recognizer: no NLP model), on the same texts.
* ``pii_accuracy``: span-level precision and recall per entity on presidio-research's
  ``synth_dataset_v2.json``, for both. A predicted span is correct when it overlaps a labelled
  span of the same entity; ``exact`` also requires the same start and end.

Presidio is a benchmark-only dependency (``pip install -e ".[bench]"``); without it those parts
are reported as skipped. Absolute times vary from machine to machine and run to run: compare
the ratios measured within one run.

Usage: ``python bench/policy.py [--json] [--out FILE] [--quick] [--no-presidio] [--dataset PATH]``
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from govbus import Actor, Message
from govbus.examples.finance import create_app
from govbus.policy import CheckInput, MessageScan, Policy, load_policy
from govbus.policy.pii import PiiDetector

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "default.yaml"
CORPORA = ROOT.parent / "shared" / "corpora"
DATASET = CORPORA / "presidio-research" / "data" / "synth_dataset_v2.json"
SIZES = {"300B": 300, "4KB": 4 * 1024, "64KB": 63 * 1024}  # 64 KB: just under the size check
ITERATIONS = {"300B": 5000, "4KB": 1000, "64KB": 100}

# govbus entity -> Presidio entity, for the entities both detect.
ENTITY_MAP = {
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "credit_card": "CREDIT_CARD",
    "iban": "IBAN_CODE",
    "us_ssn": "US_SSN",
    "ip_address": "IP_ADDRESS",
    "pan_in": "IN_PAN",
    "aadhaar": "IN_AADHAAR",
    "uk_nino": "UK_NINO",
}
# The entities labelled in synth_dataset_v2.json among those.
LABELLED = ("email", "phone", "credit_card", "iban", "us_ssn", "ip_address")

SENTENCES = (
    "The client asked whether moving 20% of her pension into bonds changes the annual fee.",
    "Please review the attached quarterly statement before the call on Friday.",
    "Rebalancing into the global equity fund was confirmed by the branch yesterday.",
    "He prefers low-risk products and wants to keep three months of spending in cash.",
    "The mortgage offer expires at the end of the month; the rate is fixed for five years.",
    "Our records show two transfers of 1,250.00 EUR on 2026-03-01 and 2026-03-15.",
    "The claim for water damage was approved after the surveyor's visit on Tuesday.",
    "She would like to discuss the tax allowance for her ISA before the new year.",
    "Order ORD-20260301-7781 was dispatched; the card arrives within five working days.",
    "The mobile app crashed while uploading a photo; version 4.12.1 fixes the issue.",
    "Forecast assumes a 5% return on equities and 2% on bonds over ten years.",
    "Premium for the home insurance policy renews on 1 April at 412.50 EUR.",
)


def prose(size: int, seed: int = 7) -> str:
    """About ``size`` characters of realistic, benign banking text (deterministic)."""
    rnd = random.Random(seed)
    parts: list[str] = []
    length = 0
    while length < size:
        sentence = rnd.choice(SENTENCES)
        parts.append(sentence)
        length += len(sentence) + 1
    return " ".join(parts)[:size]


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    return {
        "p50_us": round(ordered[len(ordered) // 2] / 1000, 2),
        "p99_us": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000, 2),
    }


def request(text: str) -> Message:
    return Message(
        type="advisory.request",
        sender="advisor-portal",
        actor=Actor(subject="asha.rao", roles=("advisor",), tenant="retail-eu"),
        metadata={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        payload={"account": "A-100", "statement": text},
    )


def bench_composite(policy: Policy, sizes: dict[str, int], quick: bool) -> dict[str, Any]:
    cards = {card.name: card for card in create_app(policy=policy).registry.cards}
    recipient = cards["intake"]
    now = datetime.now(UTC)
    composite: dict[str, Any] = {}
    per_check: dict[str, Any] = {}
    scan_cost: dict[str, Any] = {}
    for label, size in sizes.items():
        message = request(prose(size))
        n = max(20, ITERATIONS[label] // (10 if quick else 1))
        total: list[int] = []
        checks: dict[str, list[int]] = {c.id: [] for c in policy.checks}
        allowed = True
        for i in range(n + n // 10):  # the first tenth warms up
            start = time.perf_counter_ns()
            evaluation = policy.evaluate(
                CheckInput(message, recipient, None, now, MessageScan(message))
            )
            elapsed = time.perf_counter_ns() - start
            allowed = allowed and evaluation.allowed
            if i >= n // 10:
                total.append(elapsed)
                for result in evaluation.results:
                    checks[result.check_id].append(result.duration_ns)
        if not allowed:
            raise SystemExit(f"bench: the {label} request was not allowed; the bench is wrong")
        extract: list[int] = []
        for _ in range(n):
            start = time.perf_counter_ns()
            _ = MessageScan(message).text
            extract.append(time.perf_counter_ns() - start)
        content = MessageScan(message).content_size
        composite[label] = {"content_bytes": content, "iterations": n, **percentiles(total)}
        composite[label]["us_per_kb"] = round(composite[label]["p50_us"] / (content / 1024), 2)
        per_check[label] = {cid: percentiles(samples) for cid, samples in checks.items()}
        scan_cost[label] = percentiles(extract)
    return {"composite": composite, "per_check": per_check, "scan": scan_cost}


def presidio_recognizers() -> list[Any] | None:
    try:
        from presidio_analyzer import predefined_recognizers as pr
    except ImportError:
        return None
    # The email recognizer's tldextract tries to download the public suffix list and logs a
    # traceback when offline before using its bundled copy; the results are the same.
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    return [
        pr.EmailRecognizer(),
        pr.PhoneRecognizer(),
        pr.CreditCardRecognizer(),
        pr.IbanRecognizer(),
        pr.UsSsnRecognizer(),
        pr.IpRecognizer(),
        pr.InPanRecognizer(),
        pr.InAadhaarRecognizer(),
        pr.UkNinoRecognizer(),
    ]


def presidio_find(recognizers: list[Any], text: str) -> list[tuple[str, int, int]]:
    """Every recognizer on ``text``; overlapping results of one entity merged like Presidio's
    analyzer does (the higher score wins)."""
    found: list[Any] = []
    for recognizer in recognizers:
        found.extend(recognizer.analyze(text, recognizer.supported_entities, None))
    from presidio_analyzer import EntityRecognizer

    found = EntityRecognizer.remove_duplicates(found)
    return [(r.entity_type, r.start, r.end) for r in found]


def bench_pii_speed(sizes: dict[str, int], recognizers: list[Any] | None, quick: bool) -> Any:
    detector = PiiDetector(list(ENTITY_MAP))
    out: dict[str, Any] = {}
    for label, size in sizes.items():
        text = prose(size)
        n = max(10, ITERATIONS[label] // (20 if quick else 2))
        row: dict[str, Any] = {"govbus": _time(partial(detector.find, text), n)}
        if recognizers is not None:
            m = max(5, n // 20)
            row["presidio"] = _time(partial(presidio_find, recognizers, text), m)
            row["speedup_p50"] = round(row["presidio"]["p50_us"] / row["govbus"]["p50_us"], 1)
        out[label] = row
    return out


def _time(fn: Callable[[], object], n: int) -> dict[str, float]:
    for _ in range(max(1, n // 10)):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return percentiles(samples)


def span_scores(
    rows: Iterable[tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]],
    entities: Iterable[str],
) -> dict[str, dict[str, Any]]:
    """Per entity: tp/fp/fn and precision/recall, by overlap and by exact span."""
    scores: dict[str, dict[str, Any]] = {}
    rows = list(rows)
    for entity in entities:
        tp = fp = fn = exact_tp = labelled = 0
        for predicted, gold in rows:
            pred = [(s, e) for t, s, e in predicted if t == entity]
            want = [(s, e) for t, s, e in gold if t == entity]
            labelled += len(want)
            for s, e in pred:
                if any(s < ge and gs < e for gs, ge in want):
                    tp += 1
                else:
                    fp += 1
                exact_tp += (s, e) in want
            fn += sum(1 for gs, ge in want if not any(s < ge and gs < e for s, e in pred))
        # Precision counts predictions, recall counts labelled spans (found = labelled - fn).
        scores[entity] = {
            "labelled": labelled,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round((labelled - fn) / labelled, 3) if labelled else None,
            "exact_precision": round(exact_tp / (tp + fp), 3) if tp + fp else None,
        }
    return scores


def bench_accuracy(dataset: Path, recognizers: list[Any] | None) -> dict[str, Any]:
    if not dataset.is_file():
        return {"skipped": f"dataset not found: {dataset}"}
    records = json.loads(dataset.read_text(encoding="utf-8"))
    reverse = {v: k for k, v in ENTITY_MAP.items()}
    gold_rows = [
        [
            (reverse[s["entity_type"]], s["start_position"], s["end_position"])
            for s in record["spans"]
            if s["entity_type"] in reverse
        ]
        for record in records
    ]
    texts = [record["full_text"] for record in records]
    detector = PiiDetector(LABELLED)
    ours = [[(m.entity, m.start, m.end) for m in detector.find(text)] for text in texts]
    out: dict[str, Any] = {
        "dataset": dataset.name,
        "texts": len(texts),
        "criterion": "overlap with a labelled span of the same entity",
        "govbus": span_scores(zip(ours, gold_rows, strict=True), LABELLED),
    }
    if recognizers is not None:
        theirs = [
            [(reverse[t], s, e) for t, s, e in presidio_find(recognizers, text) if t in reverse]
            for text in texts
        ]
        out["presidio"] = span_scores(zip(theirs, gold_rows, strict=True), LABELLED)
    return out


def goals(result: dict[str, Any]) -> dict[str, Any]:
    composite = result["composite"]
    checks: dict[str, Any] = {
        "composite_p50_300B_le_30us": composite["300B"]["p50_us"] <= 30,
    }
    per_kb = [composite[k]["us_per_kb"] for k in ("4KB", "64KB")]
    checks["linear_in_size"] = max(per_kb) <= 1.5 * min(per_kb)
    speed = result["pii_speed"]
    if all("speedup_p50" in row for row in speed.values()):
        checks["pii_50x_faster_than_presidio"] = all(
            row["speedup_p50"] >= 50 for row in speed.values()
        )
    accuracy = result["pii_accuracy"].get("govbus")
    if accuracy:
        for entity in LABELLED:
            bar = 0.90 if entity == "phone" else 0.95
            score = accuracy[entity]
            checks[f"{entity}_precision_recall_ge_{bar}"] = (
                score["precision"] is not None
                and score["precision"] >= bar
                and score["recall"] is not None
                and score["recall"] >= bar
            )
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    parser.add_argument("--dataset", type=Path, default=DATASET, help="synth_dataset_v2.json")
    parser.add_argument(
        "--no-presidio", action="store_true", help="skip Presidio even when installed"
    )
    args = parser.parse_args(argv)
    policy = load_policy(POLICY)
    recognizers = None if args.no_presidio else presidio_recognizers()
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "policy": {"name": policy.name, "version": policy.version, "checks": len(policy.checks)},
    }
    print("bench: composite latency...", file=sys.stderr)
    result.update(bench_composite(policy, SIZES, args.quick))
    print("bench: PII speed...", file=sys.stderr)
    result["pii_speed"] = bench_pii_speed(SIZES, recognizers, args.quick)
    print("bench: PII accuracy...", file=sys.stderr)
    result["pii_accuracy"] = bench_accuracy(args.dataset, recognizers)
    if recognizers is None:
        result["presidio"] = "skipped: presidio-analyzer is not installed (.[bench] extra)"
    result["goals"] = goals(result)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_table(result)
    return 0


def _print_table(result: dict[str, Any]) -> None:
    print(f"policy {result['policy']['name']} ({result['policy']['checks']} checks)")
    for label, row in result["composite"].items():
        print(
            f"composite {label:>5}: p50 {row['p50_us']:>9.1f} us  p99 {row['p99_us']:>9.1f} us"
            f"  ({row['us_per_kb']} us/KB)"
        )
    slowest = sorted(result["per_check"]["300B"].items(), key=lambda kv: -kv[1]["p50_us"])[:5]
    print("slowest checks at 300B: " + ", ".join(f"{k} {v['p50_us']} us" for k, v in slowest))
    for label, row in result["pii_speed"].items():
        extra = (
            f", presidio p50 {row['presidio']['p50_us']} us ({row['speedup_p50']}x)"
            if "presidio" in row
            else ""
        )
        print(f"pii {label:>5}: govbus p50 {row['govbus']['p50_us']} us{extra}")
    for who in ("govbus", "presidio"):
        scores = result["pii_accuracy"].get(who)
        if scores:
            print(
                f"{who:>8} accuracy: "
                + ", ".join(f"{e} P={s['precision']} R={s['recall']}" for e, s in scores.items())
            )
    verdicts = (f"{k}={'met' if v else 'MISSED'}" for k, v in result["goals"].items())
    print("goals: " + ", ".join(verdicts))


if __name__ == "__main__":
    raise SystemExit(main())
