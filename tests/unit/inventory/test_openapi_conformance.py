"""schemathesis against the served app's own OpenAPI document: every documented operation,
with generated (and deliberately invalid) inputs, answers as documented: status codes,
content types, response schemas, no server error, and authentication that is really enforced.

The schema is the document ``/openapi.json`` serves (a test below checks they are the same);
it is loaded from the package rather than over HTTP at collection time because
schemathesis's lazy ``from_fixture`` loader does not work with pytest 9.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case

from govbus.inventory import openapi_document
from tests.unit.inventory.support import ADMIN, Served, make_app

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    app = make_app(Path(tmp_path_factory.mktemp("openapi")))
    with Served(app) as server:
        yield server


def test_the_served_document_is_the_one_tested(served: Served) -> None:
    assert httpx.get(f"{served.url}/openapi.json").json() == schema.raw_schema


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_conforms_to_the_openapi_document(served: Served, case: Case) -> None:
    case.call_and_validate(base_url=served.url, headers={"Authorization": f"Bearer {ADMIN}"})
