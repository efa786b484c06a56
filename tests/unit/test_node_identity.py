"""Node identity: IMDSv2 protocol (against the emulator), tag parsing, DescribeTags fallback."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.imds import ImdsEmulator
from node_agent.identity import (
    ENV_IMDS_ENDPOINT,
    IdentityError,
    ImdsClient,
    imds_endpoint,
    parse_identity,
    parse_tag_keys,
    resolve_identity,
)
from node_agent.interruption import (
    check_notice,
    parse_instance_action,
    parse_rebalance,
)
from workflow.aws.ec2 import TAG_ATTEMPT, TAG_MISSION, TAG_UNIT

TAGS = {TAG_MISSION: "m-1234", TAG_UNIT: "u0003", TAG_ATTEMPT: "2", "Name": "lighthpc node"}


class FakeEc2:
    """Answers DescribeTags for one instance; records that it was asked."""

    def __init__(self, tags: dict[str, str]) -> None:
        self.tags = tags
        self.calls: list[Any] = []

    def describe_tags(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs["Filters"])
        return {"Tags": [{"Key": k, "Value": v} for k, v in self.tags.items()]}


@pytest.fixture
def imds() -> Iterator[ImdsEmulator]:
    with ImdsEmulator("i-0abc", instance_type="c7i.large", tags=TAGS) as emulator:
        yield emulator


def _status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_parse_identity_reads_our_three_tags() -> None:
    ident = parse_identity("i-0abc", "c6i.large", TAGS)
    assert (ident.mission_id, ident.unit_id, ident.attempt) == ("m-1234", "u0003", 2)
    assert (ident.instance_id, ident.instance_type) == ("i-0abc", "c6i.large")


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({TAG_UNIT: "u1", TAG_ATTEMPT: "1"}, TAG_MISSION),
        ({TAG_MISSION: "m", TAG_UNIT: "u1"}, TAG_ATTEMPT),
        ({TAG_MISSION: "m", TAG_UNIT: "u1", TAG_ATTEMPT: "zero"}, "not a positive integer"),
        ({TAG_MISSION: "m", TAG_UNIT: "u1", TAG_ATTEMPT: "0"}, "not a positive integer"),
        ({TAG_MISSION: "m", TAG_UNIT: "", TAG_ATTEMPT: "1"}, TAG_UNIT),
    ],
)
def test_parse_identity_names_what_is_wrong(tags: dict[str, str], message: str) -> None:
    with pytest.raises(IdentityError, match=message):
        parse_identity("i-0abc", "c6i.large", tags)


def test_tag_listing_is_one_key_per_line() -> None:
    assert parse_tag_keys("a\nlighthpc:missionId\n\n b \n") == ["a", "lighthpc:missionId", "b"]


def test_endpoint_honours_the_sdk_variable() -> None:
    assert imds_endpoint({ENV_IMDS_ENDPOINT: "http://127.0.0.1:9/"}) == "http://127.0.0.1:9"
    assert imds_endpoint({}) == "http://169.254.169.254"


def test_emulator_requires_the_ttl_header_and_the_token(imds: ImdsEmulator) -> None:
    url = imds.endpoint + "/latest/meta-data/instance-id"
    assert _status(urllib.request.Request(url)) == 401
    put = imds.endpoint + "/latest/api/token"
    assert _status(urllib.request.Request(put, method="PUT")) == 400
    assert (
        _status(
            urllib.request.Request(
                put, method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "99999"}
            )
        )
        == 400
    )
    bad = urllib.request.Request(url, headers={"X-aws-ec2-metadata-token": "forged"})
    assert _status(bad) == 401


def test_identity_from_imds_tags(imds: ImdsEmulator) -> None:
    ec2 = FakeEc2({})
    ident = resolve_identity(ImdsClient(imds.endpoint), ec2)
    assert (ident.instance_id, ident.instance_type) == ("i-0abc", "c7i.large")
    assert (ident.mission_id, ident.unit_id, ident.attempt) == ("m-1234", "u0003", 2)
    assert ec2.calls == []  # tags came from metadata


def test_identity_falls_back_to_describe_tags() -> None:
    with ImdsEmulator("i-0def", tags=TAGS, tags_in_metadata=False) as emulator:
        client = ImdsClient(emulator.endpoint)
        assert client.tags() is None
        ec2 = FakeEc2(TAGS)
        ident = resolve_identity(client, ec2)
    assert ident.attempt == 2 and ec2.calls  # asked EC2
    assert ec2.calls[0] == [{"Name": "resource-id", "Values": ["i-0def"]}]


def test_client_renews_a_token_the_service_forgot(imds: ImdsEmulator) -> None:
    client = ImdsClient(imds.endpoint)
    client.token()
    client._token = "stale"  # e.g. IMDS restarted
    assert client.get("/latest/meta-data/instance-id") == "i-0abc"


def test_notices_404_until_injected(imds: ImdsEmulator) -> None:
    client = ImdsClient(imds.endpoint)
    assert check_notice(client) is None
    imds.inject_rebalance()
    notice = check_notice(client)
    assert notice is not None and notice.kind == "rebalance"
    imds.inject_interruption("stop")
    notice = check_notice(client)
    assert notice is not None and (notice.kind, notice.action) == ("instance-action", "stop")
    assert "spot instance-action stop at 20" in notice.describe()


def test_notice_bodies_are_parsed_leniently() -> None:
    assert parse_instance_action('{"action": "hibernate", "time": "T"}').action == "hibernate"
    assert parse_instance_action("garbled").action == "terminate"
    assert parse_rebalance('{"noticeTime": "2026-01-01T00:00:00Z"}').time.startswith("2026")
    assert parse_rebalance("[]").kind == "rebalance"


def test_an_environment_proxy_is_never_used_for_imds(
    imds: ImdsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert ImdsClient(imds.endpoint, retries=0).get("/latest/meta-data/instance-id") == "i-0abc"
