"""Photos at intake and resolve (every limit and type, EXIF removal, access), duplicates, places."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.web.public import token_key
from core.images import MAX_SIDE, THUMB_SIDE
from routing.intake import case_token
from routing.models import Case, CasePhoto
from routing.places import boundary_index, import_boundaries
from tests.builders import accepted
from tests.conftest import login
from tests.images import GPS_IFD, image_bytes, jpeg_with_gps, opened
from tests.web.test_intake_form import VALID

NEW_TEXT = "小区东门路灯坏了一周，晚上很黑。"  # not like any demo case


def photo_post(
    client: Any, files: list[tuple[bytes, str]], path: str = "/requests/new", **changes: str
) -> Any:
    """POST the intake form as multipart with ``files`` as photos."""
    data: dict[str, Any] = {**VALID, "category": "DLU-02", "description": NEW_TEXT, **changes}
    data["photos"] = [(io.BytesIO(content), name) for content, name in files]
    return client.post(path, data=data, content_type="multipart/form-data")


def photo_count(session: Session) -> int:
    return int(session.scalar(select(func.count(CasePhoto.id))) or 0)


def stored(app: Flask, photo: CasePhoto, thumb: bool = False) -> bytes:
    name = f"{photo.key}.thumb.jpg" if thumb else f"{photo.key}.jpg"
    return (Path(app.config["UPLOAD_DIR"]) / "photos" / name).read_bytes()


def submitted_case(session: Session, response: Any) -> tuple[Case, str]:
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    url = urlsplit(response.headers["Location"])
    number = url.path.split("/")[2]
    case = session.scalar(select(Case).where(Case.tracking_number == number))
    assert case is not None
    return case, parse_qs(url.query)["k"][0]


def test_photo_is_reencoded_upright_without_exif_or_gps(app: Flask, client: Any, session: Session) -> None:
    original = jpeg_with_gps(400, 200, orientation=6)
    assert GPS_IFD in opened(original).getexif()  # the test photo does carry GPS
    case, _token = submitted_case(session, photo_post(client, [(original, "IMG_0001.JPG")]))
    [photo] = case.photos
    data = stored(app, photo)
    image = opened(data)
    assert image.format == "JPEG"
    assert (image.width, image.height) == (200, 400) == (photo.width, photo.height)  # rotated upright
    assert len(image.getexif()) == 0 and b"Exif" not in data[:2048] and b"TestCam" not in data
    assert "exif" not in image.info and "xmp" not in image.info
    # After rotating 90° clockwise, the blue left half is at the top.
    assert image.getpixel((100, 50))[2] > 150 and image.getpixel((100, 350))[0] > 150
    thumb = opened(stored(app, photo, thumb=True))
    assert max(thumb.size) <= THUMB_SIDE and len(thumb.getexif()) == 0


def test_photos_are_listed_and_served_only_to_those_who_may_see_the_case(
    app: Flask, client: Any, session: Session
) -> None:
    case, token = submitted_case(session, photo_post(client, [(image_bytes("PNG"), "a.png")] * 2))
    page = client.get(f"/status/{case.tracking_number}?k={token}").get_data(as_text=True)
    assert page.count('id="photos-intake"') == 1 and page.count("/thumb.jpg?k=") == 2
    api = client.get(f"/api/v1/requests/{case.tracking_number}?token={token}").get_json()
    assert [p["kind"] for p in api["photos"]] == ["intake", "intake"]
    url = api["photos"][0]["url"]
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert "public" not in response.headers["Cache-Control"]
    bare = url.split("?")[0]
    assert client.get(bare).status_code == 404  # no token, nobody signed in
    assert client.get(bare + "?k=wrong").status_code == 404
    login(client, "handler-fgj")  # a city department not handling this case
    assert client.get(bare).status_code == 404
    login(client, "admin")
    assert client.get(bare).status_code == 200
    other = photo_post(client, [(image_bytes("PNG"), "b.png")], idempotency_key="other")
    other_case, _token = submitted_case(session, other)
    # A photo key of one case under another case's number is not served.
    assert (
        client.get(f"/requests/{other_case.tracking_number}/photos/{case.photos[0].key}/full.jpg").status_code
        == 404
    )


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (image_bytes("GIF"), "anim.gif", "只支持 JPEG、PNG 或 HEIC"),
        (b"<html>not a photo</html>", "photo.jpg", "只支持 JPEG、PNG 或 HEIC"),
        (image_bytes("JPEG")[:200], "cut.jpg", "照片文件已损坏"),
    ],
)
def test_wrong_type_or_broken_file_is_refused_and_nothing_stored(
    client: Any, session: Session, content: bytes, name: str, message: str
) -> None:
    cases = session.scalar(select(func.count(Case.id)))
    response = photo_post(client, [(image_bytes("PNG"), "ok.png"), (content, name)])
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and message in body and name in body
    assert session.scalar(select(func.count(Case.id))) == cases and photo_count(session) == 0
    assert NEW_TEXT in body  # what was typed is kept


def test_more_than_six_photos_are_refused(client: Any, session: Session) -> None:
    response = photo_post(client, [(image_bytes("PNG"), f"{i}.png") for i in range(7)])
    assert response.status_code == 422 and "最多上传 6 张照片" in response.get_data(as_text=True)
    assert photo_count(session) == 0
    case, _token = submitted_case(
        session, photo_post(client, [(image_bytes("PNG"), f"{i}.png") for i in range(6)])
    )
    assert len(case.photos) == 6


def test_a_photo_over_the_size_cap_is_refused(app: Flask, client: Any, session: Session) -> None:
    big = jpeg_with_gps(1200, 900)
    previous = app.config["PHOTO_MAX_BYTES"]
    app.config["PHOTO_MAX_BYTES"] = len(big) - 1
    try:
        response = photo_post(client, [(big, "big.jpg")])
    finally:
        app.config["PHOTO_MAX_BYTES"] = previous
    assert response.status_code == 422 and "单张照片不能超过" in response.get_data(as_text=True)
    assert photo_count(session) == 0


def test_the_whole_request_is_bounded(app: Flask, client: Any, session: Session) -> None:
    previous = app.config["PHOTO_MAX_BYTES"]
    app.config["PHOTO_MAX_BYTES"] = 100 * 1024  # request limit: 6 × 100 KB + 256 KB
    fields = {**VALID, "photos": FileStorage(io.BytesIO(b"\xff" * (900 * 1024)), "huge.jpg")}
    # Encoded here, in memory: the test client would spool a big body to a temp file it never closes.
    boundary, body = encode_multipart(fields)
    try:
        response = client.post(
            "/requests/new", data=body, content_type=f"multipart/form-data; boundary={boundary}"
        )
    finally:
        app.config["PHOTO_MAX_BYTES"] = previous
    assert response.status_code == 413 and photo_count(session) == 0


def test_large_photo_is_scaled_and_transparent_png_gets_white(
    app: Flask, client: Any, session: Session
) -> None:
    files = [(image_bytes("JPEG", (3000, 1500)), "wide.jpg"), (image_bytes("PNG", (50, 50), "RGBA"), "t.png")]
    case, _token = submitted_case(session, photo_post(client, files))
    wide, clear = case.photos
    assert (wide.width, wide.height) == (MAX_SIDE, MAX_SIDE // 2)
    assert opened(stored(app, clear)).mode == "RGB"


def test_heic_is_accepted_as_jpeg(app: Flask, client: Any, session: Session) -> None:
    pytest.importorskip("pillow_heif")
    case, _token = submitted_case(session, photo_post(client, [(image_bytes("HEIF", (80, 60)), "IMG.HEIC")]))
    assert opened(stored(app, case.photos[0])).format == "JPEG"


def test_api_takes_multipart_photos_and_lists_them(client: Any, session: Session) -> None:
    body = {**VALID, "category": "DLU-02", "description": NEW_TEXT}
    body.pop("duplicates_seen")
    body.pop("lat"), body.pop("lng")
    data: dict[str, Any] = {**body, "photos": [(io.BytesIO(jpeg_with_gps()), "p.jpg")]}
    response = client.post("/api/v1/requests", data=data, content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["possible_duplicates"] == []
    status = client.get(f"/api/v1/requests/{created['tracking_number']}?token={created['token']}").get_json()
    assert len(status["photos"]) == 1 and status["photos"][0]["thumbnail_url"].endswith(created["token"])
    data = {**body, "photos": [(io.BytesIO(b"GIF89a junk"), "x.gif")]}
    refused = client.post("/api/v1/requests", data=data, content_type="multipart/form-data")
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["field"] == "photos"


def test_handler_attaches_evidence_when_resolving_and_the_resident_sees_it(
    client: Any, session: Session
) -> None:
    case = accepted(session)
    session.commit()
    login(client, "handler-community")
    data = {
        "resolve-result": "已清运",
        "resolve-reply": "垃圾已清运，请查看照片。",
        "resolve-evidence": [(io.BytesIO(jpeg_with_gps()), "after.jpg")],
    }
    response = client.post(
        f"/workbench/cases/{case.tracking_number}/resolve", data=data, content_type="multipart/form-data"
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    session.refresh(case)
    assert case.state == "resolved" and [p.kind for p in case.photos] == ["evidence"]
    client.post("/logout")
    with client.application.test_request_context():
        token = case_token(token_key(), case.tracking_number)
    page = client.get(f"/status/{case.tracking_number}?k={token}").get_data(as_text=True)
    assert 'id="photos-evidence"' in page


# --- duplicates ------------------------------------------------------------------------------------


def test_duplicate_hint_is_shown_before_storing_then_submit_goes_through(
    client: Any, session: Session
) -> None:
    cases = session.scalar(select(func.count(Case.id)))
    data = {**VALID, "duplicates_seen": ""}
    response = client.post("/requests/new", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "也许已经有人反映了" in page
    demo = session.scalar(
        select(Case).where(Case.description.like("垃圾桶已经三天没有清运%"), Case.merged_into_id.is_(None))
    )
    assert demo is not None and demo.tracking_number in page
    assert session.scalar(select(func.count(Case.id))) == cases  # nothing stored yet
    assert 'name="duplicates_seen" type="hidden" value="1"' in page
    again = client.post("/requests/new", data={**VALID, "duplicates_seen": "1"})
    assert again.status_code == 302
    assert session.scalar(select(func.count(Case.id))) == cases + 1


def test_me_too_counts_once_per_browser(client: Any, session: Session) -> None:
    case = accepted(session)
    session.commit()
    first = client.post(f"/requests/{case.tracking_number}/me-too")
    assert first.status_code == 200 and "共有 1 位居民也遇到了这个问题" in first.get_data(as_text=True)
    client.post(f"/requests/{case.tracking_number}/me-too")
    session.refresh(case)
    assert case.me_too_count == 1
    assert client.post("/requests/NOPE-1/me-too").status_code == 404
    login(client, "handler-community")
    page = client.get(f"/workbench/cases/{case.tracking_number}").get_data(as_text=True)
    assert 'id="me-too-count"' in page


def test_api_returns_possible_duplicates_and_staff_see_suggested_merges(
    client: Any, session: Session
) -> None:
    body = {k: v for k, v in VALID.items() if k not in ("duplicates_seen", "lat", "lng")}
    first = client.post("/api/v1/requests", json=body).get_json()
    second = client.post(
        "/api/v1/requests", json={**body, "description": body["description"] + "！"}
    ).get_json()
    assert first["tracking_number"] in second["possible_duplicates"]
    assert second["tracking_number"] not in second["possible_duplicates"]
    other = client.post("/api/v1/requests", json={**body, "category": "DLU-02"}).get_json()
    assert first["tracking_number"] not in other["possible_duplicates"]  # another category
    hint = client.get(
        "/api/v1/duplicates",
        query_string={"category": "HW-01", "community": VALID["community"], "description": "垃圾没有清运"},
    ).get_json()
    assert first["tracking_number"] in [d["tracking_number"] for d in hint["possible_duplicates"]]
    login(client, "admin")
    page = client.get(f"/workbench/cases/{second['tracking_number']}").get_data(as_text=True)
    assert 'id="suggested-merges"' in page and first["tracking_number"] in page


# --- places ----------------------------------------------------------------------------------------

SQUARE = {
    "type": "Polygon",
    "coordinates": [[[114.30, 30.58], [114.32, 30.58], [114.32, 30.60], [114.30, 30.60], [114.30, 30.58]]],
}


def boundaries(*features: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {"code": c}, "geometry": g} for c, g in features],
    }


def test_community_is_suggested_from_the_point(client: Any, session: Session) -> None:
    report = import_boundaries(session, boundaries((VALID["community"], SQUARE)))
    assert (report.created, report.problems) == (1, [])
    session.commit()
    found = client.get("/api/v1/places/suggest?lat=30.59&lng=114.31").get_json()
    assert found == {
        "community": VALID["community"],
        "community_name": found["community_name"],
        "street": VALID["street"],
        "district": VALID["district"],
    }
    assert client.get("/api/v1/places/suggest?lat=30.70&lng=114.31").get_json() == {"community": None}
    assert client.get("/api/v1/places/suggest?lat=x&lng=1").status_code == 422
    moved = {
        "type": "Polygon",
        "coordinates": [[[114.40, 30.58], [114.42, 30.58], [114.42, 30.60], [114.40, 30.58]]],
    }
    assert import_boundaries(session, boundaries((VALID["community"], moved))).updated == 1
    session.commit()
    assert boundary_index.suggest(session, 30.59, 114.31) is None  # the cache followed the change


def test_bad_boundaries_report_every_problem_and_store_nothing(session: Session) -> None:
    line = {"type": "LineString", "coordinates": [[114.3, 30.5], [114.4, 30.6]]}
    report = import_boundaries(
        session,
        boundaries(("NOPE", SQUARE), (VALID["community"], line), ("420102-S1-C2", {"type": "Polygon"})),
    )
    assert len(report.problems) == 3 and report.created == 0


def test_boundaries_cli(app: Flask, session: Session, tmp_path: Path) -> None:
    path = tmp_path / "b.geojson"
    path.write_text(json.dumps(boundaries(("NOPE", SQUARE))), encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["units", "boundaries", str(path)])
    assert result.exit_code == 1 and "找不到社区编码 NOPE" in result.output


def test_known_addresses_autocomplete(client: Any, session: Session) -> None:
    """An address is offered once three different phones gave it: a shared place, not someone's home."""

    def offered() -> list[str]:
        return client.get(
            "/api/v1/places/addresses", query_string={"community": VALID["community"], "q": "幸福"}
        ).get_json()

    shared = {**VALID, "category": "DLU-02", "description": NEW_TEXT, "address": "幸福小区东门公交站"}
    for phone in ("13800000001", "13800000001", "13800000002"):
        client.post("/requests/new", data={**shared, "contact_phone": phone})
    assert shared["address"] not in offered()  # two residents so far (one of them twice)
    client.post("/requests/new", data={**shared, "contact_phone": "13800000003"})
    assert shared["address"] in offered()
    assert client.get("/api/v1/places/addresses").get_json() == []


def test_hotline_form_has_no_use_my_location(client: Any, session: Session) -> None:
    assert 'id="locate"' in client.get("/requests/new").get_data(as_text=True)
    login(client, "operator")
    page = client.get("/hotline/new").get_data(as_text=True)
    assert 'id="locate"' not in page and 'id="map-picker"' in page
