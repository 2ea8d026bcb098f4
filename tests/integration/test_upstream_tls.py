"""A gateway reaching the simulator over HTTPS: a provider with the test CA's `ca_bundle`
serves the official `openai` SDK; one without it is refused, once, as a TLS failure; with
HTTPS_PROXY set, the gateway reaches it through a CONNECT tunnel."""

from __future__ import annotations

import asyncio
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import trustme
from harness import PRICES, Gateway, Sim, free_port, spawn, start_gateway, stop
from upstream_servers import Proxy

MSG = [{"role": "user", "content": "Tell me about the sea"}]
NAME = "sim.upstream.test"  # only the proxy resolves it (to loopback)


def _provider(url: str, ca: Path) -> str:
    price = ", ".join(f"{k} = {v}" for k, v in PRICES.items())
    return (
        f'\n[providers.sim-tls]\nbase_url = "{url}/v1"\napi_key = "sk-sim"\n'
        f'ca_bundle = "{ca}"\n'
        f'\n[models."tls-small"]\nprovider = "sim-tls"\nupstream = "sim-small"\n'
        f"price = {{ {price} }}\n"
    )


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", NAME)
    files = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(files["cert"]), append=True)
    cert.private_key_pem.write_to_path(str(files["key"]))
    return files


@pytest.fixture(scope="module")
def tls_sim(tls_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    port = free_port()
    args = [sys.executable, "-m", "faregate.sim", "--port", str(port)]
    args += ["--tls-cert", str(tls_files["cert"]), "--tls-key", str(tls_files["key"])]
    proc = spawn(args, tmp_path_factory.mktemp("tls-sim") / "sim.log")
    trusting = ssl.create_default_context(cafile=str(tls_files["ca"]))
    deadline = time.monotonic() + 20
    try:
        while True:
            assert proc.poll() is None, "the simulator exited"
            try:
                if httpx.get(f"https://127.0.0.1:{port}/health", verify=trusting).is_success:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the simulator did not come up over HTTPS"
                time.sleep(0.05)
        yield Sim(port, proc)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def tls_gateway(
    tls_sim: Sim, tls_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    url = f"https://127.0.0.1:{tls_sim.port}"
    extra = _provider(url, tls_files["ca"])
    # The harness's own providers point at the same HTTPS URL without the CA bundle.
    gw = start_gateway(url, tmp_path_factory.mktemp("tls-gw"), extra_models=extra)
    yield gw
    stop(gw.proc)


def test_a_chat_request_reaches_an_https_upstream_trusted_by_its_ca_bundle(
    tls_gateway: Gateway,
) -> None:
    _, key = tls_gateway.account(10_000_000)
    with openai.OpenAI(base_url=tls_gateway.url + "/v1", api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="tls-small", messages=MSG, max_tokens=20
        )
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-faregate-deployment"] == "sim-tls/sim-small"
        with client.chat.completions.create(
            model="tls-small", messages=MSG, max_tokens=20, stream=True
        ) as stream:
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text


def test_an_https_upstream_without_a_trusted_ca_is_refused_without_retries(
    tls_gateway: Gateway, tls_sim: Sim, tls_files: dict[str, Path]
) -> None:
    _, key = tls_gateway.account(10_000_000)
    trusting = ssl.create_default_context(cafile=str(tls_files["ca"]))
    stats = f"https://127.0.0.1:{tls_sim.port}/sim/stats"
    before = httpx.get(stats, verify=trusting).json()["requests"]
    with (
        openai.OpenAI(base_url=tls_gateway.url + "/v1", api_key=key, max_retries=0) as client,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        client.chat.completions.create(model="sim-small", messages=MSG, max_tokens=20)
    assert caught.value.status_code == 503
    assert caught.value.body["code"] == "no_provider_available"  # type: ignore[index]
    assert caught.value.response.headers["x-faregate-attempts"] == "sim/sim-small=tls"
    assert httpx.get(stats, verify=trusting).json()["requests"] == before  # nothing got through


@pytest.fixture(scope="module")
def proxy() -> Iterator[Proxy]:
    """The recording CONNECT proxy, on an event loop of its own in a thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    running = Proxy()
    asyncio.run_coroutine_threadsafe(running.__aenter__(), loop).result(10)
    try:
        yield running
    finally:
        asyncio.run_coroutine_threadsafe(running.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_https_proxy_from_the_environment_tunnels_to_the_upstream(
    tls_sim: Sim,
    tls_files: dict[str, Path],
    proxy: Proxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"https://{NAME}:{tls_sim.port}"
    monkeypatch.setenv("HTTPS_PROXY", proxy.url())
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "example.org")
    gw = start_gateway(url, tmp_path, extra_models=_provider(url, tls_files["ca"]))
    try:
        _, key = gw.account(10_000_000)
        with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as client:
            reply = client.chat.completions.create(model="tls-small", messages=MSG, max_tokens=20)
        assert reply.choices[0].message.content
    finally:
        stop(gw.proc)
    assert [target for target, _ in proxy.tunnels] == [f"{NAME}:{tls_sim.port}"]
