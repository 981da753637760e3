"""Signing in to the dashboard, end to end: a real ``cityverse serve`` with security on,
a city whose public role may read nothing (the built-in policy), keys made by
``cityverse keys create`` and by the security API, and a real headless Chromium.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.city import EPANET, JUNCTIONS, LINK, others, water
from tests.ui.conftest import Page, free_port

SESSION_KEY = "cityverse.credential"
REFUSED = "This key or token is not accepted (wrong, revoked or expired)"
NOT_PUBLIC = "This city's data is not open to the public"
SESSION_ENDED = "Your key was revoked or has expired: sign in again."
UNKNOWN_KEY = "cvk_0123456789abcdef_" + "A" * 43

WATER_FEATURES = """async () => {
    const source = window.cityverse.map.getSource('water-pt');
    if (!source) return [];
    const data = await source.getData();
    return data.features.map((f) => f.properties);
}"""


def _command() -> list[str]:
    script = Path(sys.executable).with_name("cityverse")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cityverse.cli"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CITYVERSE_")}


def create_key(data_dir: Path, role: str, name: str, tenant: str = "") -> str:
    """A new key, made as an administrator makes one: ``cityverse keys create``."""
    where = ["--tenant", tenant] if tenant else []
    options = ["--role", role, "--name", name, *where, "--data-dir", str(data_dir)]
    done = subprocess.run(
        [*_command(), "keys", "create", *options],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = done.stdout.strip()
    assert key.startswith("cvk_"), done.stderr
    return key


class SecuredCity:
    """A CityVerse server with security on, over one data directory, restartable."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.admin = ""
        self.operator = ""
        self.analyst = ""
        self.elsewhere = ""

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *_command(),
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--log-level",
                    "warning",
                ],
                env=_env(),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cityverse serve exited: {self.log.read_text()}")
            try:
                httpx.get(self.base + "/cityverse/v1/security/whoami", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.process.kill()
        raise RuntimeError("cityverse serve did not answer within 30 s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def as_admin(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}", **(extra or {})}

    def set_pressure(self, junction: int, value: float) -> None:
        """Change a junction's pressure through the NGSI-LD API, as an admin."""
        r = httpx.patch(
            f"{self.base}/ngsi-ld/v1/entities/urn:ngsi-ld:Junction:J{junction}/attrs",
            json={"pressure": {"type": "Property", "value": value}},
            headers=self.as_admin({"Link": LINK.format(EPANET)}),
        )
        assert r.status_code == 204, r.text


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCity]:
    """The small city on a server with security on; its keys made by the CLI."""
    server = SecuredCity(tmp_path_factory.mktemp("secured"))
    server.admin = create_key(server.data_dir, "admin", "IT team")
    server.operator = create_key(server.data_dir, "operator", "control room")
    server.analyst = create_key(server.data_dir, "analyst", "planning")
    server.elsewhere = create_key(server.data_dir, "operator", "other city", tenant="oujda")
    server.start()
    try:
        for context, entities in [(EPANET, water()), *others()]:
            headers = server.as_admin({"Link": LINK.format(context)} if context else {})
            r = httpx.post(
                f"{server.base}/ngsi-ld/v1/entityOperations/upsert",
                json=entities,
                headers=headers,
                timeout=30,
            )
            assert r.status_code in (201, 204), r.text
        # The public may read nothing here: the dashboard has to sign in.
        r = httpx.get(f"{server.base}/ngsi-ld/v1/entities?type=Building")
        assert r.status_code == 401, r.text
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any, city: SecuredCity) -> Iterator[Page]:
    """The dashboard of the secured city in a new browser session, nobody signed in."""
    context = browser.new_context(viewport={"width": 1400, "height": 860}, locale="en-GB")
    wrapped = Page(context.new_page())
    wrapped.page.goto(city.base + "/")
    wrapped.page.wait_for_selector("body[data-ready='true']", timeout=30_000)
    try:
        yield wrapped
    finally:
        context.close()


def shown(page: Any) -> int:
    return int(page.evaluate("() => window.cityverse.entities.size"))


def junctions(page: Any) -> list[dict[str, Any]]:
    return [p for p in page.evaluate(WATER_FEATURES) if p["type"] == "Junction"]


def saved_credential(page: Any) -> list[Any]:
    """The credential as kept by the page: [sessionStorage, localStorage]."""
    return page.evaluate(
        "(key) => [sessionStorage.getItem(key), localStorage.getItem(key)]", SESSION_KEY
    )


def sign_in(page: Any, key: str) -> None:
    page.locator("#signin").click()
    page.get_by_label("API key or access token").fill(key)
    page.locator("#signin-form button[type='submit']").click()


def wait_loaded(page: Any) -> None:
    page.wait_for_selector("body[data-loaded='true']", timeout=30_000)


def notice(page: Any) -> str:
    box = page.locator("#notice")
    return box.inner_text() if box.is_visible() else ""


def test_before_sign_in_the_city_is_not_shown_and_the_page_says_why(
    page: Page, artefacts: Path
) -> None:
    p = page.page
    wait_loaded(p)
    assert shown(p) == 0
    assert junctions(p) == []
    assert (
        p.locator("#layers .badge").all_inner_texts() == ["0"] * p.locator("#layers .badge").count()
    )
    p.locator("#notice").filter(has_text=NOT_PUBLIC).wait_for()
    assert p.locator("#live").get_attribute("data-state") != "on"
    assert p.locator("#signin").is_visible() and not p.locator("#signout").is_visible()
    p.screenshot(path=str(artefacts / "signed-out.png"))
    # The control and the message speak the page's language.
    p.get_by_label("Language").select_option("fr")
    assert p.locator("#signin").inner_text() == "Se connecter"
    assert "ne sont pas ouvertes au public" in notice(p)
    p.get_by_label("Langue").select_option("ar")
    assert p.locator("#signin").inner_text() == "تسجيل الدخول"
    p.screenshot(path=str(artefacts / "signed-out-ar.png"))
    p.get_by_label("اللغة").select_option("en")
    assert not page.errors


def test_a_wrong_key_is_refused_with_a_message_and_changes_nothing(
    page: Page, city: SecuredCity, artefacts: Path
) -> None:
    p = page.page
    wait_loaded(p)
    error = p.locator("#signin-error")
    sign_in(p, UNKNOWN_KEY)
    error.filter(has_text=REFUSED).wait_for()
    assert "the API key is not valid or has been revoked" in error.inner_text()
    p.screenshot(path=str(artefacts / "signin-refused.png"))
    # A token when the server trusts no identity provider: refused too, with the reason.
    p.get_by_label("API key or access token").fill("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
    p.locator("#signin-form button[type='submit']").click()
    error.filter(has_text="no OpenID Connect issuer is configured").wait_for()
    # A good key, of another city: no role here.
    p.get_by_label("API key or access token").fill(city.elsewhere)
    p.locator("#signin-form button[type='submit']").click()
    error.filter(has_text="This key or token gives no role in this city.").wait_for()
    # What cannot be a key or a token is not even sent.
    p.get_by_label("API key or access token").fill("my key please")
    p.locator("#signin-form button[type='submit']").click()
    error.filter(has_text="it is one word, without spaces").wait_for()
    p.get_by_label("API key or access token").fill("  ")
    p.locator("#signin-form button[type='submit']").click()
    error.filter(has_text="Paste an API key or an access token.").wait_for()
    assert p.locator("#signin-dialog").is_visible()
    p.get_by_role("button", name="Cancel").click()
    assert not p.locator("#signin-dialog").is_visible()
    assert saved_credential(p) == [None, None]
    assert p.locator("#account").get_attribute("data-state") == "out"
    assert not p.locator("#who").is_visible()
    assert shown(p) == 0
    assert not any("my%20key" in url or "cvk_" in url for url in page.requests)
    assert not page.errors


def test_signed_in_the_city_shows_and_follows_live_and_signing_out_hides_it(
    page: Page, city: SecuredCity, artefacts: Path
) -> None:
    p = page.page
    wait_loaded(p)
    sent: list[Any] = []
    p.on("request", lambda request: sent.append(request))
    sign_in(p, city.operator)
    p.locator("#who").filter(has_text="control room (operator)").wait_for()
    assert not p.locator("#signin-dialog").is_visible()
    assert not p.locator("#notice").is_visible()
    wait_loaded(p)
    # On the map and in the layer list.
    p.wait_for_function(
        f"async () => (await ({WATER_FEATURES})()).filter((f) => f.type === 'Junction').length"
        f" === {JUNCTIONS}"
    )
    assert p.get_by_role("checkbox", name="Water network").is_checked()
    water_count = p.locator("#layers li").filter(has_text="Water network").locator(".badge")
    assert int(water_count.inner_text()) == len(water())
    # Live: a change made through the API arrives on the map.
    p.wait_for_function("() => document.getElementById('live').dataset.state === 'on'")
    city.set_pressure(3, 55.5)
    p.wait_for_function(
        """async () => {
        const data = await window.cityverse.map.getSource('water-pt').getData();
        const j3 = data.features.find((f) => f.properties.id === 'urn:ngsi-ld:Junction:J3');
        return j3 && j3.properties.pressure === 55.5;
    }""",
        timeout=15_000,
    )
    p.screenshot(path=str(artefacts / "signed-in.png"))
    # Kept for this browser session only, sent in a header, never in a URL.
    assert saved_credential(p) == [city.operator, None]
    assert not any(city.operator in url for url in page.requests)
    streams = [r for r in sent if "/cityverse/v1/stream" in r.url]
    assert streams, "the dashboard did not open the live stream"
    assert streams[-1].all_headers()["authorization"] == f"Bearer {city.operator}"
    api = [r for r in sent if "/ngsi-ld/v1/" in r.url]
    assert api and all(
        r.all_headers().get("authorization") == f"Bearer {city.operator}" for r in api
    )
    # Signing out: the city is gone again.
    p.locator("#signout").click()
    p.wait_for_function("() => window.cityverse.entities.size === 0")
    p.wait_for_function(f"async () => (await ({WATER_FEATURES})()).length === 0")
    p.locator("#notice").filter(has_text=NOT_PUBLIC).wait_for()
    wait_loaded(p)
    assert shown(p) == 0
    assert saved_credential(p) == [None, None]
    assert p.locator("#signin").is_visible() and not p.locator("#who").is_visible()
    assert p.locator("#live").get_attribute("data-state") != "on"
    assert not page.errors


def test_the_sign_in_lasts_the_browser_session_and_no_longer(
    page: Page, city: SecuredCity, browser: Any
) -> None:
    p = page.page
    sign_in(p, city.operator)
    p.locator("#who").filter(has_text="operator").wait_for()
    p.reload()
    p.wait_for_selector("body[data-ready='true']", timeout=30_000)
    p.locator("#who").filter(has_text="control room (operator)").wait_for()
    assert len(junctions(p)) == JUNCTIONS
    # Another browser session starts signed out.
    other = browser.new_context()
    try:
        fresh = other.new_page()
        fresh.goto(city.base + "/")
        fresh.wait_for_selector("body[data-loaded='true']", timeout=30_000)
        assert fresh.evaluate("() => window.cityverse.entities.size") == 0
        assert fresh.locator("#signin").is_visible()
    finally:
        other.close()


def test_a_key_revoked_while_signed_in_ends_the_session_with_a_message(
    page: Page, city: SecuredCity, artefacts: Path
) -> None:
    p = page.page
    r = httpx.post(
        f"{city.base}/cityverse/v1/security/keys",
        json={"role": "operator", "name": "night shift"},
        headers=city.as_admin(),
    )
    assert r.status_code == 201, r.text
    created = r.json()
    sign_in(p, created["key"])
    p.locator("#who").filter(has_text="night shift (operator)").wait_for()
    wait_loaded(p)
    assert shown(p) > 0
    r = httpx.delete(
        f"{city.base}/cityverse/v1/security/keys/{created['id']}", headers=city.as_admin()
    )
    assert r.status_code == 204, r.text
    # The next request is refused: the page says so, and shows nothing any more.
    p.evaluate("() => { window.location.hash = 'entity=urn%3Angsi-ld%3ATank%3AT1'; }")
    p.locator("#notice").filter(has_text=SESSION_ENDED).wait_for()
    p.wait_for_function("() => window.cityverse.entities.size === 0")
    assert p.locator("#account").get_attribute("data-state") == "out"
    assert saved_credential(p) == [None, None]
    wait_loaded(p)
    # Loading as the public again does not hide why the session ended.
    assert SESSION_ENDED in notice(p)
    p.screenshot(path=str(artefacts / "session-ended.png"))
    # The revoked key cannot sign in again.
    sign_in(p, created["key"])
    p.locator("#signin-error").filter(has_text=REFUSED).wait_for()


def test_a_role_that_may_not_write_is_told_so(page: Page, city: SecuredCity) -> None:
    p = page.page
    sign_in(p, city.analyst)
    p.locator("#who").filter(has_text="planning (analyst)").wait_for()
    item = p.locator("#alerts li[data-id='urn:ngsi-ld:Alert:bin-full']")
    item.get_by_role("button", name="Acknowledge").click()
    p.locator("#notice").filter(
        has_text="Your role does not allow this: your role in this tenant does not allow write"
    ).wait_for()
    # Still signed in, and still shown the city.
    assert p.locator("#account").get_attribute("data-state") == "in"
    assert shown(p) > 0
    r = httpx.get(
        f"{city.base}/ngsi-ld/v1/entities/urn:ngsi-ld:Alert:bin-full?options=keyValues",
        headers=city.as_admin(),
    )
    assert r.json()["status"] == "open"


def test_the_signed_in_stream_comes_back_after_the_server_restarts(
    page: Page, city: SecuredCity
) -> None:
    p = page.page
    sign_in(p, city.operator)
    wait_loaded(p)
    p.wait_for_function("() => document.getElementById('live').dataset.state === 'on'")
    city.stop()
    p.wait_for_function("() => document.getElementById('live').dataset.state === 'off'")
    city.start()
    p.wait_for_function(
        "() => document.getElementById('live').dataset.state === 'on'", timeout=40_000
    )
    city.set_pressure(7, 66.6)
    p.wait_for_function(
        """async () => {
        const data = await window.cityverse.map.getSource('water-pt').getData();
        const j7 = data.features.find((f) => f.properties.id === 'urn:ngsi-ld:Junction:J7');
        return j7 && j7.properties.pressure === 66.6;
    }""",
        timeout=15_000,
    )
    assert p.locator("#account").get_attribute("data-state") == "in"


def test_without_security_there_is_nothing_to_sign_in_to(dashboard: Page) -> None:
    p = dashboard.page
    p.wait_for_function("() => document.getElementById('account').hidden")
    assert not p.locator("#signin").is_visible()
    assert not p.locator("#notice").is_visible()


EVENTS = """(text) => {
    const runs = [];
    // Every way of cutting the stream in two pieces parses to the same events.
    for (let cut = 0; cut <= text.length; cut += 1) {
        const events = [];
        const feed = window.cityverse.eventParser((event) => events.push(event));
        feed(text.slice(0, cut));
        feed(text.slice(cut));
        runs.push(JSON.stringify(events));
    }
    return [...new Set(runs)].map((run) => JSON.parse(run));
}"""


def test_the_stream_reader_parses_server_sent_events(page: Page) -> None:
    text = (
        ": stream 1\r\n\r\n"
        'id: urn:n:1\r\nevent: notification\r\ndata: {"a": 1}\r\ndata: second\r\n\r\n'
        "data:plain\n\n"
        "id: urn:n:2\rdata: cr\r\r"
        ": keep-alive\n\n"
        "event: notification\nunknown: field\ndata\n\n"
        "data: never ended"
    )
    assert page.page.evaluate(EVENTS, text) == [
        [
            {"type": "notification", "data": '{"a": 1}\nsecond', "id": "urn:n:1"},
            {"type": "message", "data": "plain", "id": "urn:n:1"},
            {"type": "message", "data": "cr", "id": "urn:n:2"},
            {"type": "notification", "data": "", "id": "urn:n:2"},
        ]
    ]
