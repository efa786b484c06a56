"""Limits with names: a sample or library line that would cost minutes is refused before work.

Through the real ASL and PlanMission: the 200,000-atom SMILES, an over-long line, a library
with no usable molecule. Each ends ``Mission.InvalidInput`` within seconds, writes nothing.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcloud.stack import SOURCE_RULE_NAME, LocalStack
from tests.functional.conftest import notices, start_manual, wait_execution
from workflow.input_limits import MAX_HEAVY_ATOMS, MAX_LINE_CHARS, count_atoms, smiles_refusal

pytestmark = pytest.mark.functional

HUGE_ATOMS = "CC(C)" * 400  # 1,200 atoms in 2,000 characters: under the line bound
LONG_LINE = "C" * 200_000  # the 200,000-atom SMILES


@pytest.fixture(scope="module")
def limited(shared_stack: LocalStack) -> LocalStack:
    shared_stack.services.events.disable_rule(Name=SOURCE_RULE_NAME)
    shared_stack.services.store.put_profile("default", {"workload": "molsim"}, 0.0)
    put = shared_stack.services.s3.put_object
    bucket = shared_stack.settings.source_bucket
    put(Bucket=bucket, Key="incoming/giant.smi", Body=f"{LONG_LINE} giant\n".encode())
    put(Bucket=bucket, Key="incoming/atoms.smi", Body=f"{HUGE_ATOMS} big\n".encode())
    put(Bucket=bucket, Key="incoming/ok.smi", Body=b"CCO ethanol\n")
    put(Bucket=bucket, Key="libs/junk.smi", Body=f"%%%% a\n{LONG_LINE} b\n((( c\n".encode())
    return shared_stack


def _manual(key: str, **params: Any) -> dict[str, Any]:
    return {"input": {"bucket": "lighthpc-source", "key": key}, "params": params}


CASES: list[tuple[str, Any, str]] = [
    ("200,000-atom SMILES", _manual("incoming/giant.smi"), "no valid SMILES"),
    ("1,200-atom SMILES", _manual("incoming/atoms.smi"), "no valid SMILES"),
    (
        "library with no valid molecule",
        _manual("incoming/ok.smi", library="s3://lighthpc-source/libs/junk.smi"),
        "reference library has no valid molecule",
    ),
]


@pytest.mark.parametrize(("case", "payload", "needle"), CASES, ids=[c[0] for c in CASES])
def test_costly_or_useless_input_is_refused_before_work(
    limited: LocalStack, case: str, payload: Any, needle: str
) -> None:
    began = time.monotonic()
    desc = wait_execution(limited, start_manual(limited, payload))
    assert time.monotonic() - began < 30, "refused cheaply, not after fingerprinting"
    assert (desc["status"], desc.get("error")) == ("FAILED", "Mission.InvalidInput"), desc
    assert needle in desc["cause"], case
    [message] = notices(limited)
    assert needle in message
    assert list(limited.services.store.scan_missions()) == []
    assert limited.services.ddb.scan(TableName=limited.settings.trans_table)["Count"] == 0


@given(atoms=st.integers(1, 3 * MAX_HEAVY_ATOMS))
def test_the_atom_bound_is_exact_on_a_chain(atoms: int) -> None:
    smiles = "C" * atoms
    assert count_atoms(smiles) == atoms
    refused = smiles_refusal(smiles)
    if atoms > MAX_LINE_CHARS or atoms > MAX_HEAVY_ATOMS:
        assert refused is not None
    else:
        assert refused is None


@pytest.mark.parametrize(
    ("smiles", "atoms"),
    [("CCO", 3), ("c1ccccc1", 6), ("[Na+].[Cl-]", 2), ("ClCBr", 3), ("C[C@H](N)C(=O)O", 6)],
)
def test_atoms_are_counted_by_token(smiles: str, atoms: int) -> None:
    assert count_atoms(smiles) == atoms
