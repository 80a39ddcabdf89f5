"""``prompt_injection``: deny messages whose text reads like an attack on the receiving model.

```yaml
- id: injection
  use: prompt_injection
  threshold: 0.5            # deny at or above this score, 0 < threshold <= 1
  allow_phrases:            # removed (case-insensitively) before scoring
    - "ignore previous instructions training module"
  extra_patterns:           # matched against the normalised (lower-case, ASCII-folded) text
    - pattern: "wire .{0,20} to account"
      family: payment_redirect
      weight: 0.6
```

The detector (:mod:`govbus.policy.injection`) scans the message text the dispatch extracted once
(every payload string and metadata value). Evidence names the families that fired and the
score, never the text itself: the audit log must not become a store of attack payloads.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictFloat, StrictInt, StrictStr

from govbus.policy.errors import CheckBuildError, ParamIssue
from govbus.policy.injection import ExtraPattern, InjectionDetector, InvalidPatternError
from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny

_NonEmpty = Annotated[StrictStr, Field(min_length=1)]


class ExtraPatternParams(CheckParams):
    """One extra pattern: a regex, the family it reports, and its weight in ``(0, 1]``."""

    pattern: _NonEmpty
    family: Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")]
    weight: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1)]


class PromptInjectionParams(CheckParams):
    """Parameters of ``prompt_injection``.

    Attributes:
        threshold: deny when the detector's score is at least this.
        allow_phrases: exact phrases removed (case-insensitively) before scoring.
        extra_patterns: additional patterns with a family name and a weight.
    """

    threshold: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1)] = 0.5
    allow_phrases: list[_NonEmpty] = Field(default_factory=list)
    extra_patterns: list[ExtraPatternParams] = Field(default_factory=list)


@CHECK_KINDS.register(
    "prompt_injection",
    params=PromptInjectionParams,
    summary=(
        "Deny messages whose normalised text scores at or above a threshold on weighted "
        "prompt-injection and jailbreak pattern families."
    ),
)
def build(params: PromptInjectionParams, ctx: LoadContext) -> CheckFn:
    """Build the ``prompt_injection`` check; a bad extra pattern is reported where it is."""
    try:
        detector = InjectionDetector(
            allow_phrases=params.allow_phrases,
            extra_patterns=[
                ExtraPattern(p.pattern, p.family, float(p.weight)) for p in params.extra_patterns
            ],
        )
    except InvalidPatternError as exc:
        raise CheckBuildError(
            [ParamIssue(("extra_patterns", exc.index, "pattern"), "invalid_regex", str(exc))]
        ) from exc
    threshold = float(params.threshold)
    reason = f"message text scores at or above {threshold} for prompt injection"

    def prompt_injection(inp: CheckInput) -> Decision:
        found = detector.scan(inp.scan.text)
        if found.score < threshold:
            return ALLOW
        return Deny(
            "prompt_injection",
            reason,
            {"score": round(found.score, 3), "families": list(found.families)},
        )

    return prompt_injection
