from tests.support import RunningServer


async def test_health_and_login(server: RunningServer) -> None:
    await server.add_user("alice")
    assert (await server.http.get("/healthz")).status_code == 200
    client = await server.user_socket("alice")
    assert (await client.call("presence:list"))["ok"] is True
