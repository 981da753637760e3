"""The dashboard on the demo city, as ``cityverse demo`` runs it: a real ``cityverse demo``
on a free port over a temporary data directory, its clock driven fast (300x: the
morning's leak opens some 30 s after the start), and a real headless Chromium.

The water panels show the twin's own figures (the baseline run the demo asks for, a
scenario run from the page), the leak Alert the twin's detection raises arrives in the
alerts panel while the page is open, and the time slider and the chart read the
sensors' history. The last test leaves ``demo.png`` in the screenshots directory: the
picture in docs/dashboard.md (``docs/dashboard.png``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.conftest import Page, free_port, opened

SPEED = "300"
EPANET = (
    "https://raw.githubusercontent.com/smart-data-models/"
    "dataModel.WaterDistributionManagementEPANET/master/context.jsonld"
)
LINK = {"Link": f'<{EPANET}>; rel="http://www.w3.org/ns/json-ld#context"'}
N1 = "urn:ngsi-ld:Junction:L-Town:n1"
LEAKS = "/cityverse/v1/water/networks/L-Town/leaks"
NUMBER = re.compile(r"^-?\d+(\.\d+)? %$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running ``cityverse demo`` whose devices are playing."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYVERSE_")}
    data = tmp_path_factory.mktemp("demo")
    log = (data / "demo.log").open("w")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "cityverse.cli", "demo", "--port", str(port)),
            *("--data-dir", str(data), "--speed", SPEED),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (data / "demo.log").read_text()
            try:
                if httpx.get(f"{base}/ngsi-ld/v1/info/sourceIdentity", timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the demo did not answer within 90 s"
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def dashboard(browser: Any, demo: str) -> Iterator[Page]:
    """The dashboard open on the demo city, once the layers that are on are drawn."""
    with opened(browser, demo, 60_000) as page:
        yield page


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _leaks(base: str) -> list[dict[str, Any]]:
    response = httpx.get(base + LEAKS, timeout=10)
    assert response.status_code == 200, response.text
    return [a for a in response.json() if a.get("subCategory") == "leak"]


def test_the_leak_alert_arrives_in_the_alerts_panel(
    dashboard: Page, demo: str, artefacts: Path
) -> None:
    page = dashboard.page
    page.wait_for_function("() => document.getElementById('live').dataset.state === 'on'")
    # The page is open before the twin finds the leak: the Alert comes by the live stream.
    assert _leaks(demo) == [], "the leak was found before the page opened: raise SPEED"
    item = page.locator("#alerts li[data-id^='urn:ngsi-ld:Alert:L-Town:leak:']")
    item.wait_for(timeout=240_000)
    [alert] = _leaks(demo)
    assert item.get_attribute("data-id") == alert["id"]
    assert "leak" in item.inner_text()
    assert "sev-critical" in (item.get_attribute("class") or "")
    # The localisation follows: the pipes to search, the bursting one first.
    pipe = item.locator(".candidates a").first
    pipe.wait_for(timeout=60_000)
    assert pipe.get_attribute("data-pipe") == "p257"
    # On the map: the Alert where the pressure dropped most, and the area to search.
    page.wait_for_function(
        """async () => {
        const map = window.cityverse.map;
        if (!map.getSource('alerts-geo')) return false;
        const areas = (await map.getSource('alerts-geo').getData()).features;
        return areas.some((f) => f.properties.area && f.geometry.type === 'Polygon');
    }""",
        timeout=30_000,
    )
    item.get_by_role("button", name="Show on map").click()
    page.wait_for_timeout(1200)
    page.screenshot(path=str(artefacts / "demo-alert.png"))
    pipe.click()
    page.wait_for_selector(
        "[data-testid='inspector-id']:text-is('urn:ngsi-ld:Pipe:L-Town:p257')", timeout=10_000
    )
    assert not dashboard.errors


def test_the_city_is_drawn_before_its_list_of_types_is_asked_for(dashboard: Page) -> None:
    """Every layer switched on is there under its Smart Data Models names: the list of
    the twin's types, which the server makes by reading every entity, waits until the
    map has drawn them, and finds nothing missing."""
    page = dashboard.page
    page.wait_for_selector("body[data-loaded='true']")
    drawn, listed, fetched = page.evaluate(
        """() => [
        performance.getEntriesByName('cityverse-layers-drawn')[0].startTime,
        performance.getEntriesByType('resource')
            .filter((e) => e.name.includes('/ngsi-ld/v1/types')).map((e) => e.startTime),
        performance.getEntriesByType('resource')
            .filter((e) => e.name.includes('/ngsi-ld/v1/entities?')).map((e) => e.name),
    ]"""
    )
    assert listed and min(listed) >= drawn
    # Nothing was asked for again under another name before the drawing.
    assert not any("default-context" in url for url in fetched), fetched


def test_the_water_kpis_show_the_baseline(dashboard: Page) -> None:
    page = dashboard.page
    for kpi in ("waterBalance", "nrw", "pressureAdequacy"):
        value = page.locator(f"#kpis [data-kpi='{kpi}'] .kpi-value")
        value.wait_for(timeout=120_000)
        assert NUMBER.match(value.inner_text()), (kpi, value.inner_text())
    adequacy = page.locator("#kpis [data-kpi='pressureAdequacy'] .kpi-value").inner_text()
    assert 0 < float(adequacy.split()[0]) <= 100


def test_a_scenario_runs_beside_the_baseline(dashboard: Page) -> None:
    page = dashboard.page
    page.locator("#scenario").wait_for()
    page.locator("#scenario").select_option("drought20")
    page.get_by_role("button", name="Run", exact=True).click()
    table = page.locator("#scenario-result table.compare")
    table.wait_for(timeout=180_000)
    row = table.locator("tr[data-kpi='systemInputVolume'] td")
    baseline, scenario = (float(row.nth(i).inner_text()) for i in (0, 1))
    # A fifth less demand: about a fifth less water put into the network.
    assert 0.7 * baseline < scenario < 0.95 * baseline
    assert row.nth(2).inner_text().startswith("-")


def test_the_time_slider_and_the_chart_read_the_sensors_history(dashboard: Page, demo: str) -> None:
    page = dashboard.page
    # Over the last 7 days: the sensors' logged week lies in it, whatever the time of day
    # (the demo's clock replays a morning that may be more than a day old).
    page.get_by_label("Time window").select_option("604800000")
    # A pressure sensor's junction: its chart holds the mean of every hour of the week
    # (the server answers a week of 5-minute readings in several parts).
    page.evaluate(f"() => {{ window.location.hash = 'entity={N1}'; }}")
    page.get_by_role("button", name="Chart pressure").click()
    page.wait_for_selector("#chart[data-series]", timeout=30_000)
    points = int(page.locator("#chart").get_attribute("data-points") or 0)
    assert 5 * 24 <= points <= 7 * 24 + 1
    assert "hourly mean" in page.locator("#chart .u-legend").inner_text()
    # Over a day, every reading: all of them, however many parts the answer comes in.
    page.get_by_label("Time window").select_option("86400000")
    page.wait_for_function(
        "() => document.querySelector('#chart .u-legend')?.innerText.includes('hourly') === false",
        timeout=30_000,
    )
    day = httpx.get(
        f"{demo}/ngsi-ld/v1/temporal/entities/{N1}",
        params={
            "attrs": "pressure",
            "timerel": "after",
            "options": "temporalValues",
            "timeAt": _iso(datetime.now(UTC) - timedelta(days=1)),
        },
        headers=LINK,
        timeout=10,
    )
    shown = int(page.locator("#chart").get_attribute("data-points") or 0)
    assert shown >= len(day.json()["pressure"]["values"]) - 2
    page.get_by_label("Time window").select_option("604800000")
    # Three and a half days back: each junction shows its last reading before then.
    at_ms = page.evaluate(
        """() => {
        const s = document.getElementById('slider');
        s.value = String(Number(s.max) / 2);
        s.dispatchEvent(new Event('change'));
        return Date.now() - 7 * 86400000 / 2;
    }"""
    )
    page.wait_for_function(
        "() => !['live', 'error', undefined].includes(document.body.dataset.replay)",
        timeout=60_000,
    )
    at = datetime.fromtimestamp(
        int(page.evaluate("() => document.body.dataset.replay")) / 1000, UTC
    )
    assert abs(at.timestamp() * 1000 - at_ms) < 60_000
    stored = httpx.get(
        f"{demo}/ngsi-ld/v1/temporal/entities/{N1}",
        params={
            "attrs": "pressure",
            "timerel": "before",
            "timeAt": _iso(at),
            "lastN": "1",
            "options": "temporalValues",
        },
        headers=LINK,
        timeout=10,
    )
    assert stored.status_code == 200, stored.text
    expected = stored.json()["pressure"]["values"][-1][0]
    shown = page.evaluate(
        """async (id) => {
        const data = await window.cityverse.map.getSource('water-pt').getData();
        return data.features.find((f) => f.properties.id === id).properties.pressure;
    }""",
        N1,
    )
    assert shown == pytest.approx(expected)
    page.get_by_role("button", name="Now", exact=True).click()
    page.wait_for_function("() => document.body.dataset.replay === 'live'")


def test_the_demo_at_a_glance(dashboard: Page, artefacts: Path) -> None:
    """The picture of docs/dashboard.md: the leak's alert and search area, the KPIs, and
    the pressure chart of the junction next to the burst."""
    page = dashboard.page
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.locator("#alerts li[data-id^='urn:ngsi-ld:Alert:L-Town:leak:'] .candidates").wait_for(
        timeout=240_000
    )
    page.locator("#kpis [data-kpi='nrw'] .kpi-value").wait_for(timeout=120_000)
    page.evaluate(f"() => {{ window.location.hash = 'entity={N1}'; }}")
    page.get_by_role("button", name="Chart pressure").click()
    page.wait_for_selector("#chart[data-series]", timeout=30_000)
    page.locator("#alerts li").first.get_by_role("button", name="Show on map").click()
    page.wait_for_timeout(1500)
    page.evaluate("() => { for (const s of document.querySelectorAll('.side')) s.scrollTop = 0; }")
    page.wait_for_timeout(300)
    page.screenshot(path=str(artefacts / "demo.png"))
    assert not dashboard.errors
