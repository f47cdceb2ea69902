"""One error shape per front end: JSON for the API, an HTML page for people."""

from tests.receiver_helpers import alert, fire, signed_in


class TestErrorShapes:
    async def test_api_errors_are_json_naming_the_problem(self, receiver):
        client = await receiver()
        unsigned = await client.get("/api/v1/incidents")
        assert unsigned.status == 401 and "Basic" in unsigned.headers["WWW-Authenticate"]
        assert await unsigned.json() == {"error": "sign in required"}
        missing = await client.get("/api/v1/incidents/999", headers=signed_in())
        assert missing.status == 404
        assert await missing.json() == {"error": "incident 999 not found"}
        viewer = await client.post("/api/v1/incidents/1/approve", json={},
                                   headers=signed_in("bob"))
        assert viewer.status == 403
        assert await viewer.json() == {"error": "bob is a viewer and cannot decide"}
        nowhere = await client.get("/api/v1/nowhere", headers=signed_in())
        assert nowhere.status == 404 and "error" in await nowhere.json()

    async def test_page_errors_are_an_html_page(self, receiver):
        client = await receiver()
        await fire(client, alert())
        missing = await client.get("/incidents/999", headers=signed_in())
        assert missing.status == 404 and missing.content_type == "text/html"
        text = await missing.text()
        assert "404 Not Found" in text and "incident 999 not found" in text
        assert missing.headers["X-Frame-Options"] == "DENY"
        forged = await client.post("/incidents/1/approve", data={"csrf": "x"},
                                   headers=signed_in(), allow_redirects=False)
        assert forged.status == 403 and forged.content_type == "text/html"
        assert "CSRF token was not issued to alice; reload the page" in await forged.text()
        unsigned = await client.get("/")
        assert unsigned.status == 401 and unsigned.content_type == "text/html"
        assert "Basic" in unsigned.headers["WWW-Authenticate"]

    async def test_metrics_are_served_in_the_prometheus_text_format(self, receiver):
        client = await receiver()
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "fleet_receiver_webhook_requests" in await response.text()
