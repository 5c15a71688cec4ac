"""The review page in a real headless browser (Debian's chromium through chromedriver):
open, pick two, comment one, compare A/B, reload — the decisions are still there, in the page
and in review.sqlite; a page from another origin cannot read or write even holding the token.

The grid's screenshot goes to $SFUMATO_REVIEW_SCREENSHOT when set (docs/images/review.png is
made that way), else to the test's temp folder."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sfumato.review import Decision, Decisions

from ..ci import missing
from .conftest import AUTH, TOKEN, call

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WAIT = 30  # seconds; generous, a 2-core CI box runs other tests beside this one


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not CHROMIUM or not DRIVER:
        missing("chromium and chromedriver are not installed",
                "apt-get install chromium chromium-driver (./dev setup does)")  # fmt: skip
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed", "pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1360,900", "--no-first-run",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)  # no driver download
    yield driver
    driver.quit()


def until(driver: Any, condition: Any, what: str) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # the grid re-renders as decisions and images arrive: an element read mid-render is retried
    retried = (NoSuchElementException, StaleElementReferenceException)
    wait = WebDriverWait(driver, WAIT, ignored_exceptions=retried)
    return wait.until(lambda d: condition(d), message=what)


def cards(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, ".card")


def card(driver: Any, key: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'.card[data-key="{key}"]')


def loaded(driver: Any, n: int) -> None:
    """The grid shows n cards and every image arrived (fetched with the token)."""
    until(driver, lambda d: len(cards(d)) == n and all(
        (c.find_element("css selector", "img").get_attribute("src") or "").startswith("blob:")
        for c in cards(d)), f"{n} cards with their images")  # fmt: skip


def test_pick_two_comment_one_reload_and_they_are_still_there(
    browser: Any, batch: Path, review, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    r = review(batch)
    browser.get(f"{r.base}/index.html")  # without the token: the page says what to do
    until(
        browser, lambda d: "needs its token" in d.find_element(By.ID, "status").text, "token notice"
    )
    assert cards(browser) == []

    browser.get(r.url)
    loaded(browser, 8)
    keys = [c.get_attribute("data-key") for c in cards(browser)]
    first, second = keys[0], keys[5]
    for key in (first, second):
        card(browser, key).find_element(By.CSS_SELECTOR, ".pick").click()
        until(browser, lambda d, k=key: card(d, k).get_attribute("data-decision") == "pick",
              f"{key} saved as picked")  # fmt: skip
    box = card(browser, second).find_element(By.CSS_SELECTOR, ".comment")
    box.send_keys("use for the poster")
    box.send_keys(Keys.TAB)  # leaving the box saves it
    until(browser, lambda d: card(d, second).get_attribute("data-comment") == "use for the poster",
          "comment saved")  # fmt: skip
    card(browser, keys[1]).find_element(By.CSS_SELECTOR, ".reject").click()
    until(
        browser,
        lambda d: card(d, keys[1]).get_attribute("data-decision") == "reject",
        "reject saved",
    )
    assert "2 picked · 1 rejected" in browser.find_element(By.ID, "counts").text

    Select(browser.find_element(By.ID, "group")).select_by_value("segment")
    groups = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#grid h2")]
    assert groups == ["segment: bright (4)", "segment: dark (4)"]
    loaded(browser, 8)
    browser.execute_script("window.scrollTo(0, 0)")
    shot = Path(os.environ.get("SFUMATO_REVIEW_SCREENSHOT", str(tmp_path / "review.png")))
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    Select(browser.find_element(By.ID, "show")).select_by_value("pick")
    assert sorted(c.get_attribute("data-key") for c in cards(browser)) == sorted([first, second])
    Select(browser.find_element(By.ID, "show")).select_by_value("")
    Select(browser.find_element(By.ID, "filter-seed")).select_by_value("6")
    assert len(cards(browser)) == 4 and all("seed 6" in c.text for c in cards(browser))
    Select(browser.find_element(By.ID, "filter-seed")).select_by_value("")

    # A/B: tick two, compare; swipe and toggle show one image over the other
    loaded(browser, 8)
    for key in (first, keys[1]):
        card(browser, key).find_element(By.CSS_SELECTOR, ".ab-pick").click()
    browser.find_element(By.ID, "compare").click()
    until(browser, lambda d: d.find_element(By.ID, "ab").is_displayed(), "A/B view open")
    panes = browser.find_elements(By.CSS_SELECTOR, ".ab-pane")
    assert [p.get_attribute("data-key") for p in panes] == [first, keys[1]]
    until(browser, lambda d: all(p.find_element(By.TAG_NAME, "img").get_attribute("src").startswith("blob:")
                                 for p in panes), "both A/B images")  # fmt: skip
    a, b = (p.find_element(By.TAG_NAME, "img").rect for p in panes)
    assert a["x"] + a["width"] <= b["x"] + 1  # side by side
    browser.find_element(By.CSS_SELECTOR, '.mode[data-mode="swipe"]').click()
    a, b = (p.find_element(By.TAG_NAME, "img").rect for p in panes)
    assert (a["x"], a["y"]) == (b["x"], b["y"])  # stacked; the slider uncovers B
    assert browser.save_screenshot(str(shot.with_name(shot.stem + "-ab.png")))
    browser.find_element(By.CSS_SELECTOR, '.mode[data-mode="toggle"]').click()
    assert [p.is_displayed() for p in panes] == [True, False]
    browser.find_element(By.TAG_NAME, "body").send_keys(" ")
    assert [p.is_displayed() for p in panes] == [False, True]
    browser.find_element(By.ID, "ab-close").click()

    browser.refresh()
    loaded(browser, 8)
    assert card(browser, first).get_attribute("data-decision") == "pick"
    assert card(browser, second).get_attribute("data-decision") == "pick"
    assert card(browser, keys[1]).get_attribute("data-decision") == "reject"
    assert card(browser, second).find_element(By.CSS_SELECTOR, ".comment").get_attribute(
        "value"
    ) == ("use for the poster")
    others = [k for k in keys if k not in (first, second, keys[1])]
    assert all(card(browser, k).get_attribute("data-decision") == "none" for k in others)
    with Decisions(batch) as store:
        stored = store.all()
    assert {k for k, v in stored.items() if v.decision is Decision.PICK} == {first, second}
    assert stored[second].comment == "use for the poster" and stored[first].reviewer == "cd"

    # another reviewer decides meanwhile (here: straight through the API): the page follows
    status, _ = call(r.base, "POST", "/api/decision", {"key": others[1], "star": True}, **AUTH)
    assert status == 200
    until(browser, lambda d: card(d, others[1]).get_attribute("data-star") == "true", "poll")
    assert "1 starred" in browser.find_element(By.ID, "counts").text

    r.kill()  # the server gone: a click is not shown as decided, and the page says so
    card(browser, others[0]).find_element(By.CSS_SELECTOR, ".pick").click()
    until(
        browser, lambda d: "not saved" in d.find_element(By.ID, "status").text, "not-saved notice"
    )
    assert card(browser, others[0]).get_attribute("data-decision") == "none"


def test_a_page_from_another_origin_cannot_read_or_write(browser: Any, batch: Path, review) -> None:
    r = review(batch)
    key = json.loads((batch / "manifest.json").read_text())["items"][0]["key"]
    browser.get("data:text/html,<title>elsewhere</title><p>another site</p>")
    outcome = browser.execute_async_script(
        """
        const [base, token, key, done] = arguments;
        const results = [];
        try {
          await fetch(base + "/api/items", {headers: {Authorization: "Bearer " + token}});
          results.push("read allowed");
        } catch (e) { results.push("read refused"); }
        try {  // a "simple" request: no preflight, so the server itself must refuse it
          await fetch(base + "/api/decision", {method: "POST", mode: "no-cors",
            headers: {"Content-Type": "text/plain"}, body: JSON.stringify({key, decision: "pick"})});
          results.push("write sent");
        } catch (e) { results.push("write failed"); }
        done(results);
        """,
        r.base,
        TOKEN,
        key,
    )
    assert outcome[0] == "read refused"
    with Decisions(batch) as store:
        assert store.all() == {}  # nothing written
