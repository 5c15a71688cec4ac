"""The review server over real HTTP on loopback: the token, Origin and Host rules refuse and
change nothing; decisions survive a killed process."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .conftest import AUTH, call


def items(base: str) -> dict[str, dict[str, Any]]:
    status, data = call(base, "GET", "/api/items", **AUTH)
    assert status == 200, data
    return {i["key"]: i for i in data["items"]}


def test_requests_without_the_token_or_from_another_origin_are_refused(batch: Path, review) -> None:
    r = review(batch)
    key = next(iter(items(r.base)))
    status, data = call(r.base, "GET", "/api/items")
    assert status == 401 and data["field"] == "token" and "#token=" in data["message"]
    status, data = call(r.base, "GET", "/api/items", Authorization="Bearer wrong")
    assert status == 401 and "token is wrong" in data["message"]
    status, _ = call(r.base, "GET", f"/api/file/{key}")
    assert status == 401  # the images are data too
    status, data = call(r.base, "GET", "/api/items", Origin="http://evil.example", **AUTH)
    assert status == 403 and data["field"] == "Origin"
    refused = [
        call(r.base, "POST", "/api/decision", {"key": key, "decision": "pick"}),
        call(r.base, "POST", "/api/decision", {"key": key, "decision": "pick"},
             Origin="http://127.0.0.1:1", **AUTH),  # another port is another origin
        call(r.base, "POST", "/api/decision", {"key": key, "decision": "pick"},
             Host="rebound.example:80", **AUTH),  # DNS rebinding: right address, foreign name
        call(r.base, "POST", "/api/decision", b"decision=pick",
             **{"Content-Type": "application/x-www-form-urlencoded"}, **AUTH),  # a form post
    ]  # fmt: skip
    assert [s for s, _ in refused] == [401, 403, 403, 415]
    assert items(r.base)[key]["decision"] == "none"  # nothing changed

    same_origin = urlsplit(r.base).netloc
    status, data = call(r.base, "POST", "/api/decision", {"key": key, "decision": "pick"},
                        Origin=f"http://{same_origin}", **AUTH)  # fmt: skip
    assert status == 200 and data["decision"] == "pick" and data["reviewer"] == "cd"
    status, png = call(r.base, "GET", f"/api/file/{key}", **AUTH)
    assert status == 200 and png == (batch / f"{key}.png").read_bytes()
    status, thumb = call(r.base, "GET", f"/api/thumb/{key}", **AUTH)
    assert status == 200 and thumb == png  # 64² already fits a card
    assert call(r.base, "GET", f"/api/thumb/{key}")[0] == 401


def test_bad_changes_name_the_field_and_change_nothing(batch: Path, review) -> None:
    r = review(batch)
    key = next(iter(items(r.base)))
    bad = {
        "key": {"key": "p9-nothing", "decision": "pick"},
        "decision": {"key": key, "decision": "maybe"},
        "star": {"key": key, "star": "yes"},
        "comment": {"key": key, "comment": "x" * 5000},
        "colour": {"key": key, "colour": "red"},
    }
    for field, body in bad.items():
        status, data = call(r.base, "POST", "/api/decision", body, **AUTH)
        assert status == 400 and data["field"] == field, (field, data)
    status, data = call(r.base, "POST", "/api/decision", b"{not json", **AUTH)
    assert status == 400 and data["field"] == "body"
    assert all(i["decision"] == "none" and not i["comment"] for i in items(r.base).values())
    (batch / f"{key}.png").unlink()  # an output deleted while the page is open
    status, data = call(r.base, "GET", f"/api/file/{key}", **AUTH)
    assert status == 404 and data["field"] == "key" and "rerun the batch" in data["message"]
    assert r.proc.poll() is None  # the server survived every bad request


def test_decisions_survive_a_killed_review_process(batch: Path, review) -> None:
    r = review(batch)
    keys = list(items(r.base))
    changes = [(keys[0], {"decision": "pick"}), (keys[1], {"decision": "reject"}),
               (keys[2], {"star": True}), (keys[2], {"comment": "warmer light"}),
               (keys[0], {"comment": "hero shot"})]  # fmt: skip
    for key, change in changes:
        status, _ = call(r.base, "POST", "/api/decision", {"key": key, **change}, **AUTH)
        assert status == 200
    r.kill()  # SIGKILL: no shutdown, no flush

    again = items(review(batch).base)
    assert again[keys[0]]["decision"] == "pick" and again[keys[0]]["comment"] == "hero shot"
    assert again[keys[1]]["decision"] == "reject"
    assert again[keys[2]]["star"] is True and again[keys[2]]["comment"] == "warmer light"
    assert again[keys[2]]["decision"] == "none"
    assert all(again[k]["decision"] == "none" and not again[k]["star"] for k in keys[3:])
