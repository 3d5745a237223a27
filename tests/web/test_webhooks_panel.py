"""The Webhooks tab over plain HTTP: admins only, the secret shown once, replay and test."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import select

from relaydesk.webhooks_out.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import wait_for
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.web.test_inbox_notes_labels_pages import post
from tests.web.test_inbox_pages import Member
from tests.web.test_inbox_pages import member as member  # the fixture, shared

MakeMember = Callable[..., Member]


def test_admins_create_an_endpoint_see_its_secret_once_and_replay(
    member: MakeMember, db: object
) -> None:
    ada, anna = member("Ada", "admin"), member("Anna", "operator")
    assert anna.client.get("/webhooks").status_code == 403
    assert (
        post(anna, "/webhooks", {"url": "http://x.example/", "event": ["message.sent"]}).status_code
        == 403
    )
    page = ada.client.get("/webhooks")
    assert page.status_code == 200 and "No endpoints yet." in page.text
    assert 'href="/webhooks"' in page.text  # the tab

    with WebhookReceiver() as receiver:
        made = post(ada, "/webhooks", {"url": receiver.url, "event": ["message.received"]})
        assert made.status_code == 200, made.text
        secret = re.search(r"<code>(whsec_[^<]+)</code>", made.text)
        assert secret and receiver.url in made.text
        again = ada.client.get("/webhooks")
        assert secret.group(1) not in again.text  # shown once

        endpoint_id = db.scalar(select(WebhookEndpoint.id))  # type: ignore[attr-defined]
        tested = post(ada, f"/webhooks/{endpoint_id}/test")
        assert tested.status_code == 200 and "webhook.test" in tested.text
        wait_for(lambda: receiver.events("webhook.test"), what="the test event")
        delivery = wait_for(
            lambda: db.scalar(  # type: ignore[attr-defined]
                select(WebhookDelivery).where(WebhookDelivery.state == "delivered")
            ),
            what="recorded",
        )
        shown = ada.client.get("/webhooks/panel").text
        assert "delivered" in shown and "<code>200</code>" in shown
        replayed = post(ada, f"/webhooks/{endpoint_id}/deliveries/{delivery.id}/replay")
        assert replayed.status_code == 200
        wait_for(lambda: len(receiver.events("webhook.test")) == 2, what="the replay")

        off = post(ada, f"/webhooks/{endpoint_id}/enabled", {"enabled": "false"})
        assert "disabled" in off.text
        refused = post(ada, "/webhooks", {"url": "ftp://x.example/", "event": ["message.sent"]})
        assert refused.status_code == 422
        gone = post(ada, f"/webhooks/{endpoint_id}/delete")
        assert "No endpoints yet." in gone.text


def test_the_webhooks_tab_fits_a_phone_with_a_long_url_and_deliveries(
    new_page: Callable[..., object], make_user: Callable[[str], str], api: object
) -> None:
    from tests.web.conftest import browser_sign_in
    from tests.web.test_every_page_fits_browser import OVERFLOW

    with WebhookReceiver() as receiver:
        url = receiver.url + "/bardzo-dlugi-adres-odbiorcy-zdarzen/" + "x" * 120 + "?token=abc"
        made = api.post(  # type: ignore[attr-defined]
            "/api/webhooks", json={"url": url, "events": ["message.received", "message.sent"]}
        )
        assert made.status_code == 201
        api.post(f"/api/webhooks/{made.json()['id']}/test")  # type: ignore[attr-defined]
        wait_for(lambda: receiver.events("webhook.test"), what="the test event")
        for locale in ("en-GB", "pl-PL"):
            page = new_page(locale)
            browser_sign_in(page, make_user("admin"))  # type: ignore[attr-defined]
            page.wait_for_url("**/inbox")  # type: ignore[attr-defined]
            for width, height in ((1280, 900), (390, 844)):
                page.set_viewport_size({"width": width, "height": height})  # type: ignore[attr-defined]
                answer = page.goto("/webhooks")  # type: ignore[attr-defined]
                assert answer.status == 200
                page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
                assert page.evaluate(OVERFLOW) is None, (locale, width)  # type: ignore[attr-defined]
                if width == 390 and locale == "pl-PL":
                    page.screenshot(path="/tmp/s29/hooks/webhooks-390-pl.png", full_page=True)  # type: ignore[attr-defined]
