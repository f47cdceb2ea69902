"""Signing in under attack: guessing is slowed and locked out, checks run off the event
loop, unknown users cost what known ones do, and CSRF tokens rotate and expire."""

import hashlib
import threading

import pytest

from receiver import auth, passwords
from receiver import csrf as csrf_tokens
from receiver.passwords import hash_password
from tests.helpers import Clock
from tests.receiver_helpers import PASSWORDS, T0, alert, fire, signed_in
from tests.test_receiver_pages import csrf, page, submit

CAROL = "carol-password"


@pytest.fixture(autouse=True)
def no_tarpit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locked-out guesses are answered at once here: the tests' clock does not move."""
    monkeypatch.setattr(auth, "TARPIT_SECONDS", 0.0)


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads each password check ran in."""
    calls: list[str] = []
    real = hashlib.scrypt

    def recording(*args, **kwargs):
        calls.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(passwords.hashlib, "scrypt", recording)
    return calls


async def get(client, user: str, password: str):
    return await client.get("/", headers=signed_in(user, password))


class TestGuessing:
    async def test_guessing_one_user_is_slowed_then_locked_out_for_a_while(self, receiver):
        clock = Clock(T0)
        client = await receiver(clock=clock)
        for _ in range(6):
            assert (await get(client, "alice", "wrong")).status == 401
        locked = await get(client, "alice", "wrong")
        assert locked.status == 429
        assert locked.headers["Retry-After"] == "1"
        assert "too many failed sign-ins" in await locked.text()
        # Locked out means the right password waits too, or guessing would go on.
        assert (await get(client, "alice", PASSWORDS["alice"])).status == 429
        clock.now += 1
        assert (await get(client, "alice", "wrong")).status == 401
        second = await get(client, "alice", "wrong")
        assert second.status == 429 and second.headers["Retry-After"] == "2"
        # The lockout expires; signing in clears it.
        clock.now += 2
        assert (await get(client, "alice", PASSWORDS["alice"])).status == 200
        for _ in range(5):
            assert (await get(client, "alice", "wrong")).status == 401

    async def test_the_lockout_grows_but_never_lasts_for_good(self, receiver):
        clock = Clock(T0)
        client = await receiver(clock=clock)
        seen = []
        for _ in range(100):
            response = await get(client, "alice", "wrong")
            if response.status == 429:
                retry_after = int(response.headers["Retry-After"])
                seen.append(retry_after)
                clock.now += retry_after
                if retry_after == 900:  # the cap: 15 minutes
                    break
        assert seen == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]
        assert (await get(client, "alice", PASSWORDS["alice"])).status == 200

    async def test_guessing_many_names_from_one_address_is_locked_out(self, receiver):
        clock = Clock(T0)
        client = await receiver(clock=clock)
        for i in range(21):
            assert (await get(client, f"user{i}", "wrong")).status == 401
        locked = await get(client, "alice", PASSWORDS["alice"])
        assert locked.status == 429 and locked.headers["Retry-After"] == "1"
        clock.now += 1
        assert (await get(client, "alice", PASSWORDS["alice"])).status == 200

    async def test_unknown_users_are_locked_out_like_known_ones(self, receiver):
        """Otherwise the 429 itself would tell which names exist."""
        client = await receiver(clock=Clock(T0))
        statuses = [(await get(client, "nobody", "wrong")).status for _ in range(7)]
        assert statuses == [401] * 6 + [429]

    async def test_the_webhook_is_never_throttled(self, receiver):
        client = await receiver(clock=Clock(T0))
        for i in range(30):
            await get(client, f"user{i}", "wrong")
        await fire(client, alert())


class TestPasswordChecks:
    async def test_checks_run_in_a_worker_thread(self, receiver, scrypt_calls):
        client = await receiver()
        assert (await get(client, "alice", PASSWORDS["alice"])).status == 200
        assert scrypt_calls and threading.main_thread().name not in scrypt_calls

    @pytest.mark.parametrize("name", ["alice", "nobody", "carol"])
    async def test_every_name_costs_one_scrypt(self, receiver, scrypt_calls, name):
        """A known user, an unknown one, and one without a password (auth proxy only)."""
        client = await receiver(users=[
            {"name": "alice", "password_hash": hash_password(PASSWORDS["alice"]),
             "role": "approver"},
            {"name": "carol", "role": "approver"}],
            trusted_header="X-Forwarded-User", trusted_proxies=["10.9.0.0/16"])
        scrypt_calls.clear()
        assert (await get(client, name, "wrong")).status == 401
        assert len(scrypt_calls) == 1

    def test_the_dummy_hash_costs_what_a_real_one_does(self):
        assert passwords.DUMMY_HASH.split("$")[:4] == hash_password("x").split("$")[:4]
        assert len(passwords.DUMMY_HASH) == len(hash_password("x"))


def _carol_too() -> list[dict[str, str]]:
    return [{"name": "alice", "password_hash": hash_password(PASSWORDS["alice"]),
             "role": "approver"},
            {"name": "carol", "password_hash": hash_password(CAROL), "role": "approver"}]


class TestCsrf:
    async def test_the_token_rotates_and_an_open_page_keeps_working(self, receiver):
        clock = Clock(T0)
        client = await receiver(clock=clock)
        incident = await fire(client, alert())
        old = csrf(await page(client))
        clock.now += csrf_tokens.ROTATE_EVERY
        assert csrf(await page(client)) != old
        clock.now += csrf_tokens.VALID_FOR - csrf_tokens.ROTATE_EVERY
        assert (await submit(client, incident, "approve", old)).status == 303

    async def test_an_expired_token_is_refused(self, receiver):
        clock = Clock(T0)
        client = await receiver(clock=clock)
        incident = await fire(client, alert())
        token = csrf(await page(client))
        clock.now += csrf_tokens.VALID_FOR + csrf_tokens.ROTATE_EVERY + 1
        response = await submit(client, incident, "approve", token)
        assert response.status == 403
        assert "CSRF token expired; reload the page" in await response.text()

    async def test_another_users_token_is_refused(self, receiver):
        client = await receiver(users=_carol_too())
        incident = await fire(client, alert())
        signed = await client.get("/", headers=signed_in("carol", CAROL))
        carols = csrf(await signed.text())
        response = await submit(client, incident, "approve", carols)
        assert response.status == 403
        assert "CSRF token was not issued to alice; reload the page" in await response.text()
