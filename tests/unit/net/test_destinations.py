"""The SSRF guard: which destinations are refused, at registration and at connect time."""

from __future__ import annotations

import httpx
import pytest

from ipt_core.net import (
    DestinationPolicy,
    DestinationRefused,
    check_destination,
    guarded_client,
    redact_userinfo,
)
from tests.support.scripted_http import ScriptedServer

PUBLIC_ONLY = DestinationPolicy()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:6379/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://2130706433/",  # 127.0.0.1 as one integer
        "http://0x7f000001/",
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[::]/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",  # reserved
        "http://255.255.255.255/",
    ],
)
async def test_internal_destinations_are_refused_at_registration(url: str) -> None:
    with pytest.raises(DestinationRefused) as refused:
        await check_destination(url, PUBLIC_ONLY)
    assert "not a public address" in str(refused.value)  # one message, whatever the reason


@pytest.mark.parametrize(
    "url", ["https://8.8.8.8/hooks", "https://[2001:4860:4860::8888]/", "https://x.example/"]
)
async def test_public_and_unresolvable_destinations_pass_registration(url: str) -> None:
    await check_destination(url, PUBLIC_ONLY)  # unresolvable: checked again at connect time


@pytest.mark.parametrize(
    "url", ["ftp://8.8.8.8/", "https://user:pw@8.8.8.8/", "https://token@8.8.8.8/", "http:///x"]
)
async def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(DestinationRefused):
        await check_destination(url, PUBLIC_ONLY)


async def test_the_allow_list_admits_networks_and_host_names() -> None:
    policy = DestinationPolicy.parse(["10.20.0.0/16", "127.0.0.1", "Receiver.Local"])
    await check_destination("http://10.20.3.4/", policy)
    await check_destination("http://127.0.0.1:8080/", policy)
    await check_destination("http://receiver.local/", policy)
    with pytest.raises(DestinationRefused):
        await check_destination("http://10.21.0.1/", policy)
    with pytest.raises(DestinationRefused):
        await check_destination("http://[::1]/", policy)


def test_allow_list_entries_are_validated() -> None:
    with pytest.raises(ValueError, match="not a CIDR or host name"):
        DestinationPolicy.parse(["10.0.0.0/8", "http://x/"])


def test_userinfo_is_redacted() -> None:
    assert redact_userinfo("https://u:secret@h.example/x?y=1") == "https://h.example/x?y=1"
    assert redact_userinfo("https://h.example/x") == "https://h.example/x"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "127.1"])
async def test_the_transport_refuses_before_connecting(host: str) -> None:
    async with ScriptedServer() as server, guarded_client(PUBLIC_ONLY, timeout=2) as client:
        with pytest.raises(DestinationRefused):
            await client.post(server.url_at(host), content=b"{}")
    assert server.connections == 0  # not even a TCP handshake: a refusal reveals nothing


async def test_the_transport_connects_to_allowed_destinations() -> None:
    loopback = DestinationPolicy.parse(["127.0.0.0/8"])
    async with ScriptedServer() as server, guarded_client(loopback, timeout=2) as client:
        response = await client.post(server.url_at("localhost"), content=b"{}")
    assert response.status_code == 204
    assert server.connections == 1


async def test_environment_proxies_do_not_bypass_the_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with ScriptedServer() as server:
        # A proxy on an allowed address must not carry requests to a refused one.
        monkeypatch.setenv("HTTP_PROXY", server.url_at(path=""))
        async with guarded_client(DestinationPolicy(), timeout=2) as client:
            with pytest.raises(DestinationRefused):
                await client.get(f"http://127.0.0.2:{server.port}/")
    assert server.connections == 0
    assert isinstance(client, httpx.AsyncClient)
