"""Colour mode in Chromium (static/js/theme.js): the system's setting by default, a navbar button
that cycles system, light and dark, remembered across pages."""

import pytest
from django.db import connections

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

THEME = "document.documentElement.getAttribute('data-bs-theme')"
BACKGROUND = "getComputedStyle(document.body).backgroundColor"


def test_dark_mode_follows_the_system_and_the_button(browser, static_root, uvicorn_server):
    base = uvicorn_server(STATIC_ROOT=str(static_root))
    try:
        dark_system = browser.new_context(color_scheme="dark")
        page = dark_system.new_page()
        page.goto(base + "/accounts/login/")
        assert page.evaluate(THEME) == "dark"
        assert page.evaluate(BACKGROUND) != "rgb(255, 255, 255)"
        toggle = page.locator("#theme-toggle")
        assert toggle.text_content() == "Theme: system"
        toggle.click()
        assert page.evaluate(THEME) == "light" and toggle.text_content() == "Theme: light"
        assert page.evaluate(BACKGROUND) == "rgb(255, 255, 255)"
        page.goto(base + "/no-such-page/")  # another page, an error page too: remembered
        assert page.evaluate(THEME) == "light"
        page.locator("#theme-toggle").click()
        assert page.evaluate(THEME) == "dark"
        page.locator("#theme-toggle").click()
        assert page.evaluate(THEME) == "dark" and page.locator("#theme-toggle").text_content() == "Theme: system"

        light_system = browser.new_context(color_scheme="light")
        page = light_system.new_page()
        page.goto(base + "/accounts/login/")
        assert page.evaluate(THEME) == "light"
    finally:
        connections.close_all()
