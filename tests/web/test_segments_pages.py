"""The Contacts tab over plain HTTP: who sees and may do what, refusals as notices."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.web.conftest import csrf_of

Panel = Callable[[str], httpx.Client]


def htmx(client: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": csrf_of(client), "HX-Request": "true"}


def test_a_viewer_sees_segments_but_changes_nothing(panel: Panel, api: httpx.Client) -> None:
    made = api.post("/api/segments", json={"name": "Wszyscy", "rules": {}})
    assert made.status_code == 201
    viewer = panel("viewer")
    page = viewer.get("/contacts")
    assert page.status_code == 200
    assert "Wszyscy" in page.text and "/api/contacts.csv" in page.text
    assert 'id="segment-form"' not in page.text and "contacts-import-form" not in page.text
    headers = htmx(viewer)
    assert viewer.post("/contacts/segments", data={"name": "x"}, headers=headers).status_code == 403
    delete = viewer.post(f"/contacts/segments/{made.json()['id']}/delete", headers=headers)
    assert delete.status_code == 403
    upload = viewer.post(
        "/contacts/import",
        files={"file": ("c.csv", b"number\n+48600100960\n", "text/csv")},
        headers=headers,
    )
    assert upload.status_code == 403
    assert viewer.post("/contacts/segments/count", headers=headers).status_code == 200
    counted = viewer.get(f"/contacts/segments/{made.json()['id']}/count")
    assert counted.status_code == 200 and "0 recipients, 0 opted out" in counted.text
    assert viewer.get("/contacts/segments/999999/count").status_code == 404
    assert [s["name"] for s in api.get("/api/segments").json()] == ["Wszyscy"]


def test_an_operator_saves_and_deletes_a_segment_from_the_form(
    panel: Panel, api: httpx.Client
) -> None:
    operator = panel("operator")
    headers = htmx(operator)
    bad = operator.post(
        "/contacts/segments", data={"name": "x", "within_days": "soon"}, headers=headers
    )
    assert bad.status_code == 422 and "whole number of days" in bad.text
    assert api.get("/api/segments").json() == []
    saved = operator.post(
        "/contacts/segments",
        data={"name": "SMS", "channel": "sms", "opted_in_only": "1", "status": ["open"]},
        headers=headers,
    )
    assert saved.status_code == 200 and "data-segment-created" in saved.text
    (segment,) = api.get("/api/segments").json()
    assert segment["rules"]["channel"] == "sms" and segment["rules"]["opted_in_only"]
    assert segment["rules"]["conversation_status"] == ["open"]
    gone = operator.post(f"/contacts/segments/{segment['id']}/delete", headers=headers)
    assert gone.status_code == 200 and api.get("/api/segments").json() == []
    missing = operator.post("/contacts/segments/999999/delete", headers=headers)
    assert missing.status_code == 404
    no_csrf = operator.post("/contacts/segments", data={"name": "x"})
    assert no_csrf.status_code == 403


def test_an_operator_edits_a_segment_in_the_form(panel: Panel, api: httpx.Client) -> None:
    vip = api.post("/api/labels", json={"name": "VIP"}).json()["id"]
    api.put(
        "/api/contact-attributes",
        json={"attributes": [{"key": "city", "name": "City", "kind": "text"}]},
    )
    rules = {
        "channel": "whatsapp",
        "labels": [{"match": "all", "label_ids": [vip]}],
        "attributes": [{"key": "city", "op": "contains", "value": "ków"}],
        "last_inbound_within_days": 7,
        "conversation_status": ["pending"],
    }
    made = api.post("/api/segments", json={"name": "Kraków VIP", "rules": rules}).json()
    operator = panel("operator")
    form = operator.get(f"/contacts/segments/{made['id']}/edit")
    assert form.status_code == 200
    text = form.text
    assert f'hx-post="/contacts/segments/{made["id"]}"' in text
    assert 'value="Kraków VIP"' in text and 'value="7"' in text
    assert '<option value="whatsapp" selected>' in text
    assert f'<option value="{vip}" selected>VIP</option>' in text
    assert '<option value="contains" selected>' in text and 'value="ków"' in text
    assert 'value="pending" checked' in text
    saved = operator.post(
        f"/contacts/segments/{made['id']}",
        data={
            "name": "Kraków",
            "channel": "sms",
            "attr_key": ["city"],
            "attr_op": ["equals"],
            "attr_value": ["Kraków"],
        },
        headers=htmx(operator),
    )
    assert saved.status_code == 200, saved.text
    assert 'id="segment-editor"' in saved.text and "hx-swap-oob" in saved.text
    (segment,) = api.get("/api/segments").json()
    assert segment["name"] == "Kraków"
    assert segment["rules"]["channel"] == "sms" and segment["rules"]["labels"] == []
    assert segment["rules"]["attributes"] == [
        {"key": "city", "op": "equals", "value": "Kraków", "values": []}
    ]
    assert operator.get("/contacts/segments/999999/edit").status_code == 404
    assert panel("viewer").get(f"/contacts/segments/{made['id']}/edit").status_code == 403
