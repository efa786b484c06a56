"""A node under the emulator's IAM parses each service model once, whoever made the session."""

from __future__ import annotations

import boto3
import botocore.session
import pytest

from localcloud import sdk_sessions

pytestmark = pytest.mark.unit


def test_every_session_made_after_sharing_reads_through_the_one_loader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(botocore.session, "create_loader", botocore.session.create_loader)
    before = boto3.session.Session(region_name="xx-local-1")
    assert before._session.get_component("data_loader") is not sdk_sessions._loader()
    sdk_sessions.share_with_every_session()
    agent = boto3.session.Session(region_name="xx-local-1")  # as node_agent.startup makes it
    admin = sdk_sessions.session("a", "b", "xx-local-1")
    assert agent._session.get_component("data_loader") is sdk_sessions._loader()
    assert admin._session.get_component("data_loader") is sdk_sessions._loader()


def test_a_configured_data_path_keeps_a_loader_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setattr(botocore.session, "create_loader", botocore.session.create_loader)
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    sdk_sessions.share_with_every_session()
    own = boto3.session.Session(region_name="xx-local-1")
    assert own._session.get_component("data_loader") is not sdk_sessions._loader()
