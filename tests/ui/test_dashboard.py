"""The dashboard end to end: a real server, a real city, a real headless browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.ui.city import (
    JUNCTIONS,
    LINK,
    LIVE_PRESSURE,
    PAST,
    PAST_PRESSURE,
    RECENT,
    SDM,
    SIMULATED_JUNCTION,
)
from tests.ui.conftest import Page, opened

SOURCE_FEATURES = """async (source) => {
    const data = await window.cityverse.map.getSource(source).getData();
    return data.features.map((f) => f.properties);
}"""


def source_features(page: Any, source: str) -> list[dict[str, Any]]:
    """The features MapLibre holds in one GeoJSON source."""
    return page.evaluate(SOURCE_FEATURES, source)


def test_the_page_is_served_with_its_assets(server: str) -> None:
    page = httpx.get(server + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script id="cityverse-config"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "app.css", "maplibre-gl-worker.mjs"):
        r = httpx.get(f"{server}/ui/static/{asset}")
        assert r.status_code == 200 and len(r.content) > 10_000, asset


def test_the_map_renders_the_city(dashboard: Page, artefacts: Path) -> None:
    page = dashboard.page
    junctions = [p for p in source_features(page, "water-pt") if p["type"] == "Junction"]
    assert len(junctions) == JUNCTIONS
    expected = [pytest.approx(LIVE_PRESSURE + i * 0.1) for i in range(JUNCTIONS)]
    assert sorted(p["pressure"] for p in junctions) == expected
    pipes = source_features(page, "water-geo")
    assert sum(p["type"] == "Pipe" for p in pipes) == JUNCTIONS - 1
    buildings = source_features(page, "buildings-geo")
    assert sorted(p["height"] for p in buildings) == [6, 12, 18, 24, 30, 36]
    page.wait_for_timeout(500)
    shot = artefacts / "map.png"
    page.locator("#map").screenshot(path=str(shot))
    # A blank canvas is one colour; the city draws many.
    colours = page.evaluate(
        """() => {
        const gl = window.cityverse.map.getCanvas();
        const c = document.createElement('canvas');
        c.width = gl.width; c.height = gl.height;
        window.cityverse.map.triggerRepaint();
        return new Promise((resolve) => window.cityverse.map.once('render', () => {
            const ctx = c.getContext('2d');
            ctx.drawImage(gl, 0, 0);
            const data = ctx.getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let i = 0; i < data.length; i += 4 * 97) {
                seen.add(data[i] << 16 | data[i + 1] << 8 | data[i + 2]);
            }
            resolve(seen.size);
        }));
    }"""
    )
    assert colours > 5, f"the map looks blank ({colours} colours); see {shot}"
    assert not dashboard.errors


def test_the_map_is_given_only_what_it_draws(dashboard: Page) -> None:
    page = dashboard.page
    # Each feature in the map's sources: its id, its type and what its layer's style reads.
    for source, drawn in (
        ("water-pt", {"pressure"}),
        ("water-geo", set()),
        ("buildings-geo", {"height"}),
    ):
        features = source_features(page, source)
        assert features, source
        for properties in features:
            assert set(properties) <= {"id", "type", *drawn}, (source, properties)
    # The page keeps the rest (for the search and the panels), but the location only once:
    # as the geometry.
    stored = page.evaluate("() => window.cityverse.entities.get('urn:ngsi-ld:Junction:J1').feature")
    assert stored["properties"]["name"] == "Junction 1"
    assert "location" not in stored["properties"]
    assert stored["geometry"]["type"] == "Point"


def test_the_layers_switched_on_are_asked_for_first(dashboard: Page) -> None:
    page = dashboard.page
    page.wait_for_selector("body[data-loaded='true']")
    api = [unquote(url) for url in dashboard.requests if "/ngsi-ld/v1/" in url]
    queries = [url for url in api if "/ngsi-ld/v1/entities?" in url]
    # The water network, switched on, under its Smart Data Models names: asked for before
    # the list of the twin's types (which reads every entity).
    junctions = api.index(next(url for url in queries if "EPANET/Junction" in url))
    assert junctions < api.index(next(url for url in api if "/ngsi-ld/v1/types" in url))
    # The location comes once, as the geometry, in every answer.
    assert all("omit=location" in url for url in queries), queries
    # The layers switched off are asked for once the others are drawn.
    drawn, switched_off = page.evaluate(
        r"""() => [
        performance.getEntriesByName('cityverse-layers-drawn')[0].startTime,
        performance.getEntriesByType('resource')
            .filter((e) => /\/entities\?type=[^&]*(Streetlight|WasteContainer|ParkingSpot)/
                .test(decodeURIComponent(e.name)))
            .map((e) => e.startTime),
    ]"""
    )
    assert len(switched_off) == 3, switched_off
    assert min(switched_off) >= drawn


def test_the_first_requests_are_few_and_the_rest_waits(dashboard: Page) -> None:
    """boot.js asks for the layers switched on, a request per layer (those that ask for
    every attribute together), and the page takes its answers rather than asking again;
    what the panels need waits for those answers, the list of types for the drawing."""
    page = dashboard.page
    page.wait_for_selector("body[data-loaded='true']")
    entries = page.evaluate(
        """() => performance.getEntriesByType('resource').map((e) => ({
            url: decodeURIComponent(e.name), start: e.startTime, end: e.responseEnd }))"""
    )
    # The answers for the layers switched on under their usual names are in (the city's
    # buildings, written with the core @context, are loaded after the list of types).
    answered = page.evaluate(
        "() => performance.getEntriesByName('cityverse-layers-answered')[0].startTime"
    )
    queries = [e for e in entries if "/ngsi-ld/v1/entities?" in e["url"]]
    first = [e for e in queries if "offset=0" in e["url"] and e["start"] < answered]
    types = {e["url"].split("type=")[1].split("&")[0]: e for e in first}  # the types each asked for
    assert len(first) == len(types) == 4, [e["url"] for e in first]
    kinds = sorted(",".join(t.split("/")[-1] for t in key.split(",")) for key in types)
    assert kinds[0].startswith("Building") and "RoadSegment" in kinds
    assert any(k.startswith("Junction,Pipe,") for k in kinds)
    assert any(k.startswith("Device,") and ",Alert," in k for k in kinds)
    urls = [e["url"] for e in queries]
    assert len(urls) == len(set(urls)), "a page of entities was asked for twice"
    last = max(e["end"] for e in queries if e["start"] < answered)
    for path in ("/cityverse/v1/security/whoami", "/cityverse/v1/water/networks"):
        asked = [e["start"] for e in entries if e["url"].endswith(path)]
        assert asked and min(asked) >= last, path
    listed = [e["start"] for e in entries if "/ngsi-ld/v1/types" in e["url"]]
    assert listed and min(listed) >= answered


def test_types_and_attributes_named_otherwise_are_drawn_with_the_rest(
    browser: Any, server: str
) -> None:
    """What the Smart Data Models names did not bring is loaded, from the twin's list of
    types, before the map counts as drawn: here the buildings (written with the core
    @context) and a junction whose pressure has an IRI of its own."""
    junction = {
        "id": "urn:ngsi-ld:Junction:elsewhere",
        "type": "https://smartdatamodels.org/dataModel.WaterDistributionManagementEPANET/Junction",
        "https://example.org/water#pressure": {"type": "Property", "value": 77.5},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [-2.31, 34.921]},
        },
    }
    r = httpx.post(f"{server}/ngsi-ld/v1/entities", json=junction)
    assert r.status_code == 201, r.text
    try:
        with opened(browser, server, 30_000) as dashboard:
            page = dashboard.page
            page.wait_for_function(
                "() => performance.getEntriesByName('cityverse-layers-drawn').length > 0"
            )
            water = {p["id"]: p for p in source_features(page, "water-pt")}
            assert water[junction["id"]]["pressure"] == 77.5
            assert water["urn:ngsi-ld:Junction:J0"]["pressure"] == pytest.approx(LIVE_PRESSURE)
            heights = sorted(p["height"] for p in source_features(page, "buildings-geo"))
            assert heights == [6, 12, 18, 24, 30, 36]
            assert not dashboard.errors
    finally:
        httpx.delete(f"{server}/ngsi-ld/v1/entities/{junction['id']}")


def test_the_scale_bar_follows_the_map_when_it_stops(dashboard: Page) -> None:
    scale = dashboard.page.locator(".maplibregl-ctrl-scale")
    before = scale.inner_text()
    # Two zoom levels in: the bar is measured again once the movement ends, not during it.
    moved = dashboard.page.evaluate(
        """() => new Promise((resolve) => {
            const map = window.cityverse.map;
            const bar = document.querySelector('.maplibregl-ctrl-scale');
            const seen = new Set();
            const watch = () => seen.add(bar.textContent);
            map.on('move', watch);
            map.once('moveend', () => {
                map.off('move', watch);
                resolve({ during: [...seen], after: bar.textContent });
            });
            map.easeTo({ zoom: map.getZoom() + 2, duration: 300 });
        })"""
    )
    assert moved["during"] == [before]
    assert moved["after"] != before
    assert scale.inner_text() == moved["after"]


def test_without_a_gpu_the_map_moves_at_a_third_of_the_resolution(dashboard: Page) -> None:
    # The test browser renders WebGL in software (SwiftShader): the page knows it.
    page = dashboard.page
    assert page.evaluate("() => document.body.dataset.rendering") == "software"
    ratios = page.evaluate(
        """async () => {
            const map = window.cityverse.map;
            const sharp = window.devicePixelRatio;
            // Sharp again within 10 s, or the test fails (rather than waiting forever).
            const still = () => new Promise((resolve, fail) => {
                const until = performance.now() + 10000;
                const wait = () => {
                    if (map.getPixelRatio() === sharp) resolve();
                    else if (performance.now() > until) fail(new Error('never sharp again'));
                    else setTimeout(wait, 50);
                };
                wait();
            });
            await still();
            const seen = new Set();
            const watch = () => seen.add(map.getPixelRatio() / sharp);
            map.on('render', watch);
            const ended = new Promise((resolve) => map.once('moveend', resolve));
            map.easeTo({ zoom: map.getZoom() + 1, duration: 400 });
            await ended;
            map.off('render', watch);
            await still();
            return { during: [...seen], after: map.getPixelRatio() / sharp };
        }"""
    )
    # Sharp before and after; while it moves, every frame at a third (the last frame, at
    # the moveend, too: the map sharpens once it has been still a moment).
    assert ratios["during"] == [pytest.approx(1 / 3)]
    assert ratios["after"] == 1


def test_a_layer_switches_off_and_on(dashboard: Page) -> None:
    page = dashboard.page
    visibility = "() => window.cityverse.map.getLayoutProperty('water-pt-point', 'visibility')"
    assert page.evaluate(visibility) == "visible"
    checkbox = page.get_by_role("checkbox", name="Water network")
    checkbox.uncheck()
    assert page.evaluate(visibility) == "none"
    checkbox.check()
    assert page.evaluate(visibility) == "visible"


def test_clicking_an_asset_opens_the_inspector(dashboard: Page, artefacts: Path) -> None:
    page = dashboard.page
    target = "urn:ngsi-ld:Junction:J4"
    page.evaluate(
        """(id) => {
        const map = window.cityverse.map;
        const stored = window.cityverse.entities.get(id);
        map.jumpTo({ center: stored.feature.geometry.coordinates, zoom: 18 });
    }""",
        target,
    )
    page.wait_for_function(
        "() => window.cityverse.map.queryRenderedFeatures({layers: ['water-pt-point']}).length > 0"
    )
    point = page.evaluate(
        """(id) => {
        const at = window.cityverse.entities.get(id).feature.geometry.coordinates;
        const p = window.cityverse.map.project(at);
        const box = window.cityverse.map.getCanvas().getBoundingClientRect();
        return [box.left + p.x, box.top + p.y];
    }""",
        target,
    )
    page.mouse.click(point[0], point[1])
    page.wait_for_selector(f"[data-testid='inspector-id']:text-is('{target}')")
    pressure = page.locator("#inspector tr[data-attr='pressure'] td.value").inner_text()
    assert float(pressure) == pytest.approx(LIVE_PRESSURE + 0.4)
    assert page.locator("#inspector tr[data-attr='name'] td.value").inner_text() == "Junction 4"
    page.screenshot(path=str(artefacts / "inspector.png"))


def test_relationships_link_to_their_entities(dashboard: Page) -> None:
    page = dashboard.page
    page.evaluate("() => { window.location.hash = 'entity=urn%3Angsi-ld%3APipe%3AP2'; }")
    link = page.locator("#inspector tr[data-attr='startsAt'] a")
    link.wait_for()
    assert link.inner_text() == "urn:ngsi-ld:Junction:J2"
    link.click()
    page.wait_for_selector("[data-testid='inspector-id']:text-is('urn:ngsi-ld:Junction:J2')")


def test_search_finds_by_name_and_opens_with_the_keyboard(dashboard: Page) -> None:
    page = dashboard.page
    box = page.get_by_role("combobox", name="Search")
    box.fill("château")
    options = page.locator("#search-results [role='option']")
    assert options.count() == 1 and "urn:ngsi-ld:Tank:T1" in options.first.inner_text()
    box.press("ArrowDown")
    box.press("Enter")
    page.wait_for_selector("[data-testid='inspector-id']:text-is('urn:ngsi-ld:Tank:T1')")


def test_an_alert_is_acknowledged_and_assigned_through_ngsi_ld(
    dashboard: Page, server: str
) -> None:
    page = dashboard.page
    alert_id = "urn:ngsi-ld:Alert:bin-full"
    item = page.locator(f"#alerts li[data-id='{alert_id}']")
    item.get_by_role("button", name="Acknowledge").click()
    item.locator(".saved").filter(has_text="Saved").wait_for()
    item.get_by_label("Assignee").fill("Equipe propreté")
    item.get_by_role("button", name="Assign").click()
    page.wait_for_function(
        """(id) => {
        const shown = window.cityverse.entities.get(id).feature.properties;
        return shown.assignee === 'Equipe propreté';
    }""",
        arg=alert_id,
    )
    stored = httpx.get(f"{server}/ngsi-ld/v1/entities/{alert_id}?options=keyValues").json()
    assert stored["status"] == "acknowledged"
    assert stored["assignee"] == "Equipe propreté"


def test_arabic_turns_the_page_right_to_left(dashboard: Page, artefacts: Path) -> None:
    page = dashboard.page
    page.get_by_label("Language").select_option("ar")
    assert page.evaluate("() => [document.documentElement.dir, document.documentElement.lang]") == [
        "rtl",
        "ar",
    ]
    assert page.locator("#layers-h").inner_text() == "الطبقات"
    assert page.get_by_role("checkbox", name="شبكة الماء").is_checked()
    page.screenshot(path=str(artefacts / "arabic.png"))
    page.get_by_label("اللغة").select_option("fr")
    assert page.evaluate("() => document.documentElement.dir") == "ltr"
    assert page.locator("#layers-h").inner_text() == "Couches"
    page.get_by_label("Langue").select_option("en")


def test_the_page_loads_nothing_from_elsewhere(dashboard: Page) -> None:
    page = dashboard.page
    page.mouse.wheel(0, -400)
    page.wait_for_timeout(300)
    hosts = {
        urlsplit(url).hostname
        for url in dashboard.requests
        if not url.startswith(("data:", "blob:"))
    }
    assert hosts == {"127.0.0.1"}, hosts


def test_the_time_slider_replays_past_pressure(
    dashboard: Page, server: str, artefacts: Path
) -> None:
    page = dashboard.page
    probe = httpx.get(f"{server}/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Junction:J0")
    if probe.status_code == 404 and "no resource" in probe.text:
        pytest.skip("the server has no temporal API (GET /ngsi-ld/v1/temporal/entities)")
    # Half-way between the past and the recent pressure, in the 24 h window.
    at = PAST + (RECENT - PAST) / 2
    page.evaluate(
        """(atMs) => {
        const s = document.getElementById('slider');
        const end = Date.now(), start = end - 86400000;
        s.value = String(Math.round((atMs - start) / 86400000 * Number(s.max)));
        s.dispatchEvent(new Event('change'));
    }""",
        at.timestamp() * 1000,
    )
    page.wait_for_function(
        "() => !['live', 'error', undefined].includes(document.body.dataset.replay)"
    )
    junctions = {p["id"]: p for p in source_features(page, "water-pt") if p["type"] == "Junction"}
    # The simulated junction's last instances before that time may all be simulated ones
    # (lastN counts instances of every datasetId): it shows the past value or none.
    assert junctions.pop(SIMULATED_JUNCTION)["pressure"] in (PAST_PRESSURE, None)
    assert [p["pressure"] for p in junctions.values()] == [PAST_PRESSURE] * (JUNCTIONS - 1)
    page.screenshot(path=str(artefacts / "replay.png"))
    page.get_by_role("button", name="Now", exact=True).click()
    page.wait_for_function("() => document.body.dataset.replay === 'live'")
    live = [p["pressure"] for p in source_features(page, "water-pt") if p["type"] == "Junction"]
    assert min(live) == pytest.approx(LIVE_PRESSURE)


def test_a_change_arrives_live_on_the_map(dashboard: Page, server: str) -> None:
    page = dashboard.page
    page.wait_for_function("() => document.getElementById('live').dataset.state === 'on'")
    # A layer switched off is drawn when switched on, with what arrived meanwhile.
    page.wait_for_selector("body[data-loaded='true']")
    assert page.evaluate("() => window.cityverse.map.getSource('waste-pt')") is None
    page.get_by_role("checkbox", name="Waste containers").check()
    r = httpx.patch(
        f"{server}/ngsi-ld/v1/entities/urn:ngsi-ld:WasteContainer:W0/attrs",
        json={"fillingLevel": {"type": "Property", "value": 0.95}},
        headers={"Link": LINK.format(SDM.format("WasteManagement"))},
    )
    assert r.status_code == 204, r.text
    page.wait_for_function(
        """async () => {
        const data = await window.cityverse.map.getSource('waste-pt').getData();
        const w0 = data.features.find((f) => f.properties.id === 'urn:ngsi-ld:WasteContainer:W0');
        return w0 && w0.properties.fillingLevel === 0.95;
    }""",
        timeout=10_000,
    )


def test_the_chart_shows_measured_and_simulated_series(dashboard: Page, artefacts: Path) -> None:
    page = dashboard.page
    page.evaluate(f"() => {{ window.location.hash = 'entity={SIMULATED_JUNCTION}'; }}")
    page.get_by_role("button", name="Chart pressure").click()
    page.wait_for_selector("#chart[data-series]")
    assert page.locator("#chart").get_attribute("data-series") == "2"
    legend = page.locator("#chart .u-legend").inner_text()
    assert "measured" in legend and "simulated" in legend
    page.locator("#chart").screenshot(path=str(artefacts / "chart.png"))
