"""Logging in and out through the real pages, in Chromium, against the running service."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_logs_a_customer_in_through_the_form_and_out_again(live_service, page, web_user, log_in):
    web_user("olivia", customer="Acme")
    log_in(page, "olivia")
    assert page.get_by_role("heading", level=1).inner_text() == "Acme"
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/")
    page.goto("/")
    assert "/login/" in page.url  # the main page needs a login again


def test_it_answers_a_wrong_password_on_the_login_page(live_service, page, web_user, log_in):
    web_user("olivia", customer="Acme")
    with pytest.raises(AssertionError, match="could not log in"):
        log_in(page, "olivia", "not-the-password")
    assert "Please enter a correct" in page.inner_text("main")
