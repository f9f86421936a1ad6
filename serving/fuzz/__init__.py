"""Fuzzing the gateway's HTTP surface with hypothesis-generated requests.

Malformed JSON, wrong types, unknown models, oversized bodies, wrong content types, truncated
multipart uploads, huge `n` and `max_tokens`, wrong methods and paths, bad operator notices: all
go through the production routes and error handlers (`serving.app.create_gateway_api`), in
process, with no Ray cluster and no socket. The model servers are the real `ModelServer` over a
fake engine, behind a handle that pickles what crosses it, as Serve does between processes.

Every answer must be a success or an OpenAI-style 4xx JSON error. A 5xx, a hang (no answer in
`timeout_s`) or any other answer is a violation, and valid requests must still succeed after the
campaign.

    python -m serving.fuzz --count 1000 --seed 0 [--json PATH]

The package: `contract` (cases, answers, verdicts), `values` (the building blocks of the
strategies), `endpoint_cases` and `malformed_cases` (the request categories), `harness` (the
in-process gateway), `campaign` (`fuzz_gateway`), `cli` (`python -m serving.fuzz`).
"""

from __future__ import annotations

from serving.fuzz.campaign import CategoryCounts as CategoryCounts
from serving.fuzz.campaign import FuzzReport as FuzzReport
from serving.fuzz.campaign import FuzzViolation as FuzzViolation
from serving.fuzz.campaign import category_cases as category_cases
from serving.fuzz.campaign import fuzz_cases as fuzz_cases
from serving.fuzz.campaign import fuzz_gateway as fuzz_gateway
from serving.fuzz.campaign import run_examples as run_examples
from serving.fuzz.cli import main as main
from serving.fuzz.contract import CATEGORIES as CATEGORIES
from serving.fuzz.contract import DEFAULT_TIMEOUT_S as DEFAULT_TIMEOUT_S
from serving.fuzz.contract import FUZZ_TOKEN as FUZZ_TOKEN
from serving.fuzz.contract import MAX_BODY_BYTES as MAX_BODY_BYTES
from serving.fuzz.contract import Category as Category
from serving.fuzz.contract import FuzzAnswer as FuzzAnswer
from serving.fuzz.contract import FuzzCase as FuzzCase
from serving.fuzz.contract import violation as violation
from serving.fuzz.harness import FakeEngine as FakeEngine
from serving.fuzz.harness import GatewayHarness as GatewayHarness
from serving.fuzz.values import multipart as multipart
from serving.fuzz.values import riff_wav as riff_wav
