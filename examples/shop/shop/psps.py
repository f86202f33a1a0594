"""The shop's PSP accounts, each behind the official SDK: ``stripe`` and ``Adyen``.

One small contract, :class:`Psp`: ``await charge(payment)`` answers a :class:`ChargeResult`
and never raises; ``await void_late_success(payment, known)`` makes sure nothing of a
payment stays charged at this PSP (answers False to be asked again later). Stripe's SDK
has an async client (``stripe.AIOHTTPClient``, used here: it shares the shop's event loop);
Adyen's blocks, so its calls run on worker threads.

What an answer means for the customer's money, the part that matters for failover:

* approved / declined — the PSP decided; a decline is the customer's, never the PSP's fault.
* error, ``in_doubt=False`` — nothing was charged: the connection was never made, or the PSP
  refused the request before charging (429, 4xx). Safe to try the next PSP.
* timeout, or error with ``in_doubt=True`` — sent, but no answer (read timeout, connection
  lost, a 5xx): the charge may or may not exist. The shop tries the next PSP for the
  customer and hands the payment to the late-success voider (``routing.py``), which voids
  whatever this PSP charged once it answers again.

Every charge carries an idempotency key (``Payment.idempotency_key``, one per order and PSP),
so a retry of the same call — by the SDK, the shop or an operator — never charges twice.
Card numbers go to the SDK and nowhere else: not to logs, metrics or the database.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from shop.config import PspAccount, Settings

Outcome = Literal["approved", "declined", "error", "timeout"]


@dataclass(frozen=True)
class Card:
    number: str
    exp_month: int
    exp_year: int
    cvc: str
    holder: str = "Shop Customer"

    def __repr__(self) -> str:  # never print a PAN
        return f"Card(****{self.number[-4:]})"


@dataclass(frozen=True)
class Payment:
    reference: str  # the order's merchant reference: the key both ledgers match on
    amount_minor: int
    currency: str
    card: Card
    idempotency_key: str


@dataclass(frozen=True)
class ChargeResult:
    outcome: Outcome
    psp_reference: str | None = None
    detail: str = ""  # decline code or error kind (never card data)
    in_doubt: bool = False  # sent, unanswered: a charge may exist


class Psp(Protocol):
    name: str
    kind: str

    async def charge(self, payment: Payment) -> ChargeResult: ...

    async def void_late_success(self, payment: Payment, known: ChargeResult | None) -> bool: ...

    async def close(self) -> None: ...


def _requests_failure(exc: requests.exceptions.RequestException) -> ChargeResult:
    """Not sent at all, timed out waiting, or lost after sending (requests, Adyen's SDK)."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    if isinstance(exc, requests.exceptions.ConnectTimeout) or isinstance(reason, NewConnectionError):
        return ChargeResult("error", detail="connect")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return ChargeResult("timeout", detail="timeout", in_doubt=True)
    return ChargeResult("error", detail="connection_lost", in_doubt=True)


def _aiohttp_failure(exc: BaseException | None) -> ChargeResult:
    """The same for aiohttp (Stripe's async client)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        return ChargeResult("error", detail="connect")
    if isinstance(exc, TimeoutError):
        return ChargeResult("timeout", detail="timeout", in_doubt=True)
    return ChargeResult("error", detail="connection_lost", in_doubt=True)


class StripePsp:
    """PaymentIntents created and confirmed in one call, raw card data (a PCI-SAQ-D shop)."""

    kind = "stripe"

    def __init__(self, account: PspAccount, settings: Settings) -> None:
        """Call from inside the event loop (the HTTP session belongs to it)."""
        import stripe

        self.name = account.name
        self._stripe = stripe
        context = ssl.create_default_context(cafile=settings.stripe_ca_file)
        # No connection cap: while a PSP hangs, its stuck calls must not queue the others.
        self._connector = aiohttp.TCPConnector(limit=0, ssl=context)
        http = stripe.AIOHTTPClient(
            connector=self._connector,
            timeout=aiohttp.ClientTimeout(total=settings.psp_timeout_s,
                                          sock_connect=settings.psp_connect_timeout_s))
        # No SDK retries: a PSP that does not answer in time is failed over at once (the
        # idempotency key would make a retry safe, but the customer would wait for it).
        self.client = stripe.StripeClient(settings.stripe_api_key, http_client=http,
                                          base_addresses={"api": settings.stripe_api_base},
                                          max_network_retries=0)
        self._http = http

    async def charge(self, payment: Payment) -> ChargeResult:
        stripe = self._stripe
        card = payment.card
        params: dict[str, Any] = {
            "amount": payment.amount_minor, "currency": payment.currency.lower(),
            "confirm": True, "capture_method": "automatic",
            "payment_method_data": {"type": "card", "card": {
                "number": card.number, "exp_month": card.exp_month, "exp_year": card.exp_year,
                "cvc": card.cvc}},
            # Stripe files the payment under this reference (reconciliation's key)
            "metadata": {"order_id": payment.reference},
        }
        try:
            intent = await self.client.v1.payment_intents.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": payment.idempotency_key})
        except stripe.CardError as exc:
            error = exc.error
            found = getattr(error, "payment_intent", None) if error is not None else None
            return ChargeResult("declined", psp_reference=getattr(found, "id", None),
                                detail=getattr(error, "decline_code", None) or exc.code or "card_declined")
        except stripe.APIConnectionError as exc:
            return _aiohttp_failure(exc.__cause__)
        except stripe.StripeError as exc:
            status = exc.http_status or 0
            # a 5xx may come after the charge was made; 4xx and 429 are refused up front
            return ChargeResult("error", detail=f"http_{status}", in_doubt=status >= 500)
        except (aiohttp.ClientError, TimeoutError) as exc:  # while reading the body
            return _aiohttp_failure(exc)
        if intent.status == "succeeded":
            return ChargeResult("approved", psp_reference=intent.id)
        # requires_payment_method (refused), requires_action (3-D Secure: this shop has
        # no redirect flow), canceled: not paid
        return ChargeResult("declined", psp_reference=intent.id, detail=intent.status)

    async def void_late_success(self, payment: Payment, known: ChargeResult | None) -> bool:
        intents = self.client.v1.payment_intents
        try:
            if known is not None and known.outcome == "approved" and known.psp_reference:
                found = [await intents.retrieve_async(known.psp_reference)]
            else:
                query = f"metadata['order_id']:'{payment.reference}'"
                found = list((await intents.search_async(params={"query": query})).data)
            for intent in found:
                if intent.status == "succeeded":
                    await self.client.v1.refunds.create_async(
                        params={"payment_intent": intent.id, "reason": "duplicate"},
                        options={"idempotency_key": f"void-{payment.idempotency_key}"})
                elif intent.status in ("requires_capture", "requires_confirmation",
                                       "requires_payment_method", "requires_action"):
                    await intents.cancel_async(intent.id)
        except (self._stripe.StripeError, aiohttp.ClientError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


class AdyenPsp:
    """Adyen Checkout ``/payments`` with raw card fields (scheme), automatic capture."""

    kind = "adyen"

    def __init__(self, account: PspAccount, settings: Settings, executor: Executor) -> None:
        import Adyen

        self.name = account.name
        self.executor = executor
        self.merchant_account = settings.adyen_merchant_account
        if settings.adyen_ca_file:
            # the SDK calls requests.request(): REQUESTS_CA_BUNDLE is how it picks a CA
            os.environ["REQUESTS_CA_BUNDLE"] = settings.adyen_ca_file
        self.adyen = Adyen.Adyen()
        client = self.adyen.client
        client.xapikey = settings.adyen_api_key
        client.platform = "test"
        client.http_timeout = (settings.psp_connect_timeout_s, settings.psp_timeout_s)
        self.payments = self.adyen.checkout.payments_api
        self.modifications = self.adyen.checkout.modifications_api
        for api in (self.payments, self.modifications):
            api.baseUrl = settings.adyen_checkout_url  # the endpoint override

    async def charge(self, payment: Payment) -> ChargeResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._charge, payment)

    def _charge(self, payment: Payment) -> ChargeResult:
        from Adyen.exceptions import AdyenAPIResponseError

        card = payment.card
        body = {
            "merchantAccount": self.merchant_account, "reference": payment.reference,
            "amount": {"value": payment.amount_minor, "currency": payment.currency},
            "paymentMethod": {"type": "scheme", "number": card.number,
                              "expiryMonth": f"{card.exp_month:02d}",
                              "expiryYear": str(card.exp_year), "cvc": card.cvc,
                              "holderName": card.holder},
            "shopperInteraction": "Ecommerce",
        }
        try:
            result = self.payments.payments(body, idempotency_key=payment.idempotency_key)
        except AdyenAPIResponseError as exc:
            status = int(getattr(exc, "status_code", 0) or 0)
            return ChargeResult("error", detail=f"http_{status}", in_doubt=status >= 500)
        except requests.exceptions.RequestException as exc:
            return _requests_failure(exc)
        doc = result.message if isinstance(result.message, dict) else {}
        code = str(doc.get("resultCode", ""))
        psp_reference = str(doc.get("pspReference") or result.psp or "") or None
        if code == "Authorised":
            return ChargeResult("approved", psp_reference=psp_reference)
        if code in ("Refused", "Cancelled"):
            return ChargeResult("declined", psp_reference=psp_reference,
                                detail=str(doc.get("refusalReason", code)))
        return ChargeResult("error", psp_reference=psp_reference, detail=f"result_{code}",
                            in_doubt=True)

    async def void_late_success(self, payment: Payment, known: ChargeResult | None) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._void, payment, known)

    def _void(self, payment: Payment, known: ChargeResult | None) -> bool:
        from Adyen.exceptions import AdyenError

        try:
            if known is not None and known.outcome == "approved" and known.psp_reference:
                # captured already: a reversal cancels or refunds, whichever applies
                self.modifications.refund_or_cancel_payment(
                    {"merchantAccount": self.merchant_account}, known.psp_reference)
            else:  # no pspReference known: Adyen's technical cancel by our reference
                self.modifications.cancel_authorised_payment(
                    {"merchantAccount": self.merchant_account,
                     "paymentReference": payment.reference,
                     "reference": f"void-{payment.reference}"})
        except (AdyenError, requests.exceptions.RequestException):
            return False
        return True

    async def close(self) -> None:
        pass


def make_psp(account: PspAccount, settings: Settings, executor: Executor) -> Psp:
    if account.kind == "stripe":
        return StripePsp(account, settings)
    return AdyenPsp(account, settings, executor)
