"""A tenant's phone numbers: bought or imported on Twilio, assigned to agents, released.

The PhoneNumbers table is the truth for routing, so each step that touches both Twilio and the
table is ordered to leave no half-written record, and undoes its Twilio half when the table
refuses:
- buy: Twilio first (webhooks set in the same request), then the record; a refused record
  releases the number again.
- import: the webhooks on Twilio first, then the record; a refused record puts the old webhooks back.
- release: the record first (routing stops at once), then Twilio; a Twilio failure puts the record back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pynamodb.exceptions import DeleteError, PutError, UpdateError

from voiceline.agents import tenant_agent
from voiceline.calls import utcnow
from voiceline.models import PhoneNumber
from voiceline.ownership import condition_failed, owned_item
from voiceline.twilio_account import NOT_FOUND, OwnedNumber, TwilioAccount, TwilioFailure, Webhooks

logger = logging.getLogger("voiceline.phone_numbers")


class NumberNotFound(LookupError):
    """No such number for this tenant (another tenant's number is not found either)."""


class NumberInUse(Exception):
    """The number already has a record: this tenant's, or another's."""


class NotOwnedOnTwilio(LookupError):
    """The Twilio account has no such number to import."""


class CompensationFailed(Exception):
    """A step failed and undoing the step before it failed too: someone must look (the message says what)."""

    def __init__(self, message: str, cause: Exception) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause


@dataclass(frozen=True)
class NumberRequest:
    """What the tenant wants the number to be: its agent (None: not yet) and its name."""

    agent_id: str | None = None
    friendly_name: str | None = None


def list_numbers(tenant_id: str) -> list[PhoneNumber]:
    """The tenant's numbers in E.164 order."""
    return list(PhoneNumber.tenant_index.query(tenant_id))


def get_number(tenant_id: str, e164: str) -> PhoneNumber:
    number = owned_item(PhoneNumber, e164, tenant_id)
    if number is None:
        raise NumberNotFound(e164)
    return number


def number_for_agent(tenant_id: str, agent_id: str) -> PhoneNumber | None:
    """The number an agent calls out from: its lowest, when it has several.

    A GSI read is eventually consistent: a number assigned a moment ago may not be found yet.
    """
    found = PhoneNumber.tenant_index.query(tenant_id, filter_condition=PhoneNumber.agent_id == agent_id)
    return next(iter(found), None)


def buy_number(account: TwilioAccount, tenant_id: str, webhooks: Webhooks, wanted: NumberRequest, *,
               phone_number: str | None = None, area_code: str | None = None) -> PhoneNumber:
    """Buy `phone_number` (or any number in `area_code`) pointed at `webhooks`, and record it for the tenant."""
    if wanted.agent_id is not None:
        tenant_agent(tenant_id, wanted.agent_id)
    if phone_number is not None and _exists(phone_number):
        raise NumberInUse(phone_number)  # before paying for it
    owned = account.buy(webhooks, phone_number=phone_number, area_code=area_code, friendly_name=wanted.friendly_name)
    return _record_or_undo(tenant_id, owned, wanted, undo=lambda: account.release(owned.sid),
                           undo_text=f"release {owned.phone_number} ({owned.sid}) on Twilio")


def import_number(account: TwilioAccount, tenant_id: str, webhooks: Webhooks, wanted: NumberRequest,
                  phone_number: str) -> PhoneNumber:
    """Take a number the Twilio account already owns into service: point its webhooks here and record it."""
    if wanted.agent_id is not None:
        tenant_agent(tenant_id, wanted.agent_id)
    if _exists(phone_number):
        raise NumberInUse(phone_number)
    before = account.find_owned(phone_number)
    if before is None:
        raise NotOwnedOnTwilio(phone_number)
    owned = account.point(before.sid, webhooks.voice_url, webhooks.status_callback)

    def undo() -> None:
        account.point(before.sid, before.voice_url, before.status_callback, before.voice_method,
                      before.status_callback_method)

    return _record_or_undo(tenant_id, owned, wanted, undo=undo,
                           undo_text=f"restore the webhooks of {phone_number} ({before.sid}) on Twilio")


def assign_number(tenant_id: str, e164: str, agent_id: str | None, friendly_name: str | None = None,
                  rename: bool = False) -> PhoneNumber:
    """Point the number at `agent_id` (None: at nobody); the next call to it reaches that agent."""
    if agent_id is not None:
        tenant_agent(tenant_id, agent_id)
    actions = [PhoneNumber.agent_id.set(agent_id) if agent_id is not None else PhoneNumber.agent_id.remove()]
    if rename:
        actions.append(PhoneNumber.friendly_name.set(friendly_name) if friendly_name
                       else PhoneNumber.friendly_name.remove())
    number = PhoneNumber(e164)
    try:
        number.update(actions=actions, condition=PhoneNumber.tenant_id == tenant_id)
    except UpdateError as error:
        if condition_failed(error):
            raise NumberNotFound(e164) from None
        raise
    return number


def release_number(account: TwilioAccount, tenant_id: str, e164: str) -> None:
    """Stop routing the number and give it back to Twilio."""
    number = get_number(tenant_id, e164)
    try:
        number.delete(condition=PhoneNumber.tenant_id == tenant_id)
    except DeleteError as error:
        if condition_failed(error):
            raise NumberNotFound(e164) from None
        raise
    try:
        sid = number.twilio_sid or _sid_on_twilio(account, e164)
        if sid is not None:
            account.release(sid)
    except TwilioFailure as failure:
        if failure.code == NOT_FOUND:  # Twilio no longer has it: released already, which is what was wanted
            return
        _undo(lambda: number.save(condition=PhoneNumber.e164.does_not_exist()),
              f"put the record of {e164} back", failure)
        raise


def _sid_on_twilio(account: TwilioAccount, e164: str) -> str | None:
    """Numbers recorded by hand (e.g. the demo seed) have no SID: look it up."""
    owned = account.find_owned(e164)
    return owned.sid if owned is not None else None


def _record_or_undo(tenant_id: str, owned: OwnedNumber, wanted: NumberRequest, undo: Callable[[], None],
                    undo_text: str) -> PhoneNumber:
    number = PhoneNumber(owned.phone_number, tenant_id=tenant_id, agent_id=wanted.agent_id, twilio_sid=owned.sid,
                         friendly_name=wanted.friendly_name or owned.friendly_name, created_at=utcnow())
    try:
        number.save(condition=PhoneNumber.e164.does_not_exist())
    except PutError as error:
        _undo(undo, undo_text, error)
        if condition_failed(error):
            raise NumberInUse(owned.phone_number) from None
        raise
    except Exception as error:  # DynamoDB unreachable, throttled…: the Twilio half must not stay behind
        _undo(undo, undo_text, error)
        raise
    return number


def _undo(undo: Callable[[], None], what: str, cause: Exception) -> None:
    try:
        undo()
    except Exception as error:
        logger.error("could not undo a half-done number change: %s by hand", what,
                     extra={"cause": repr(cause), "undo_error": repr(error)})
        raise CompensationFailed(f"{cause}; undoing it failed too, so {what} by hand ({error})", cause) from error


def _exists(e164: str) -> bool:
    try:
        PhoneNumber.get(e164, consistent_read=True, attributes_to_get=["e164"])
    except PhoneNumber.DoesNotExist:
        return False
    return True


