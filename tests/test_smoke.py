from tests.support import Api, create_order


def test_create_then_track(api: Api) -> None:
    pkg = create_order(api)
    r = api.track(pkg["order_id"])
    assert r.status_code == 200
    assert r.json()["result"]["status_name"] == "finding_driver"
