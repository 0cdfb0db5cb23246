"""A resident on a 390 px phone: picks the place on the map (community suggested from the boundary),
sees that someone already reported a similar problem, attaches a photo, asks for SMS updates, gets the
受理 SMS at the local gateway and finds the photo on the status page its link opens."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, LIVE_APPS
from tests.images import jpeg_with_gps

pytestmark = pytest.mark.e2e

COMMUNITY = "420102-S1-C1"


def _boundary_around_the_map_centre() -> None:
    from app.extensions import db
    from routing.places import import_boundaries

    app = LIVE_APPS[0]
    lat, lng = (float(x) for x in app.config["MAP_CENTER"].split(","))
    ring = [
        [lng - 0.05, lat - 0.05],
        [lng + 0.05, lat - 0.05],
        [lng + 0.05, lat + 0.05],
        [lng - 0.05, lat + 0.05],
    ]
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": COMMUNITY},
                "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
            }
        ],
    }
    with app.app_context():
        assert import_boundaries(db.session, collection).problems == []
        db.session.commit()
        db.session.remove()


def test_resident_uses_map_sees_duplicate_hint_and_attaches_a_photo(
    live_server: str, browser_page: Any, sms_gateway_fake: Any
) -> None:
    _boundary_around_the_map_centre()
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{live_server}/requests/new")
    page.select_option("#category", "HW-01")
    page.fill("#description", "垃圾桶三天没有清运，气味很大。")

    picker = page.locator("#map-picker")
    picker.wait_for(state="visible")
    box = picker.bounding_box()
    assert box is not None and box["width"] <= 390
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # tap the map (no tiles)
    expect(page.locator("#community")).to_have_value(COMMUNITY)
    assert page.input_value("#district") == "420102" and page.input_value("#street") == "420102-S1"
    assert "推荐社区" in page.locator("#place-suggestion").inner_text()
    assert page.input_value("#lat") and page.input_value("#lng")
    assert page.locator(".leaflet-marker-icon").count() == 1

    hint = page.locator("#duplicates")
    hint.wait_for(state="visible")
    assert "也许已经有人反映了" in hint.inner_text()
    assert re.search(r"MH\d{8}-[A-Z2-9]{5}", page.locator("#duplicate-list").inner_text())
    assert page.locator("#duplicate-list button").count() >= 1

    page.set_input_files(
        "#photos", {"name": "IMG_0001.JPG", "mimeType": "image/jpeg", "buffer": jpeg_with_gps()}
    )
    page.locator("#photo-previews img").wait_for()
    page.fill("#address", "幸福小区 3 栋 2 单元")
    page.fill("#contact_name", "张三")
    page.fill("#contact_phone", "13812345677")
    page.check("#sms_opt_in")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path="/tmp/photos-intake-390.png", full_page=True)
    page.screenshot(path=str(ARTIFACTS / "e2e-intake-photo-map-duplicate.png"), full_page=True)

    page.click("button[type=submit]")  # not the same problem after all: submit a new request
    page.wait_for_url(re.compile(r"/requests/MH\d{8}-[A-Z2-9]{5}/submitted"))
    tracking = page.locator("#tracking-number").inner_text()
    texts = [m["text"] for m in sms_gateway_fake.received if m["to"] == "13812345677"]
    assert texts and tracking in texts[0] and "张三" not in texts[0]  # the 受理 SMS, no name in it
    link = re.search(r"https?://\S+", texts[0])
    assert link is not None
    page.goto(link.group(0))  # the SMS link opens the private status page
    thumb = page.locator("#photos-intake img")
    thumb.wait_for()
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("img => img.naturalWidth") > 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path="/tmp/photos-status-390.png", full_page=True)
    assert errors == []
