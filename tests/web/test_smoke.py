"""Smoke: the pages and read-only API answer."""

import pytest


@pytest.mark.parametrize("path", ["/", "/requests/new", "/login", "/api/v1/categories", "/api/v1/units"])
def test_pages_answer(client, path):
    assert client.get(path).status_code == 200
