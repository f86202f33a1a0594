"""Adyen's result vocabulary: refusal reasons, their test triggers, and the unified codes.

Adyen answers a refused payment with HTTP 200, ``resultCode`` (Refused, Error, Cancelled)
and a ``refusalReason`` / numeric ``refusalReasonCode``
(https://docs.adyen.com/development-resources/refusal-reasons). In its test environment a
merchant asks for a given reason by sending the reason's trigger as ``holderName`` or its
code as ``additionalData.RequestedTestAcquirerResponseCode``
(https://docs.adyen.com/development-resources/testing/result-codes). :data:`REFUSALS` is
that table, with the unified code each reason maps to; the gateway side maps every code in
it, and the simulator answers each trigger with its own reason.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str  # refusalReasonCode (and RequestedTestAcquirerResponseCode)
    reason: str  # refusalReason
    result: str  # resultCode: Authorised | Refused | Error | Cancelled
    trigger: str  # the holderName that asks for it in the test environment
    unified: str  # the unified code (stack/errors.py)


_D = "declined."
REFUSALS: tuple[Refusal, ...] = (
    Refusal("0", "Unknown", "Error", "UNKNOWN", "error.unknown"),
    Refusal("1", "", "Authorised", "APPROVED", "approved"),
    Refusal("2", "Refused", "Refused", "DECLINED", _D + "do_not_honor"),
    Refusal("3", "Referral", "Refused", "REFERRAL", _D + "do_not_honor"),
    Refusal("4", "Acquirer Error", "Error", "ERROR", "error.provider_5xx"),
    Refusal("5", "Blocked Card", "Refused", "BLOCK_CARD", _D + "fraud"),
    Refusal("6", "Expired Card", "Refused", "CARD_EXPIRED", _D + "expired_card"),
    Refusal("7", "Invalid Amount", "Refused", "INVALID_AMOUNT", _D + "invalid_data"),
    Refusal("8", "Invalid Card Number", "Refused", "INVALID_CARD", _D + "invalid_data"),
    Refusal("9", "Issuer Unavailable", "Refused", "ISSUER_UNAVAILABLE", _D + "issuer_unavailable"),
    Refusal("10", "Not supported", "Refused", "NOT_SUPPORTED", _D + "not_supported"),
    Refusal("11", "3D Not Authenticated", "Refused", "NOT_3D_AUTHENTICATED", _D + "do_not_honor"),
    Refusal("12", "Not enough balance", "Refused", "NOT_ENOUGH_BALANCE",
            _D + "insufficient_funds"),
    Refusal("14", "Acquirer Fraud", "Refused", "ACQUIRER_FRAUD", _D + "fraud"),
    Refusal("15", "Cancelled", "Cancelled", "CANCELLED", _D + "do_not_honor"),
    Refusal("16", "Shopper Cancelled", "Cancelled", "SHOPPER_CANCELLED", _D + "do_not_honor"),
    Refusal("17", "Invalid Pin", "Refused", "INVALID_PIN", _D + "invalid_data"),
    Refusal("18", "Pin tries exceeded", "Refused", "PIN_TRIES_EXCEEDED", _D + "invalid_data"),
    Refusal("19", "Pin validation not possible", "Refused", "PIN_VALIDATION_NOT_POSSIBLE",
            _D + "do_not_honor"),
    Refusal("20", "FRAUD", "Refused", "FRAUD", _D + "fraud"),
    Refusal("21", "Not Submitted", "Refused", "NOT_SUBMITTED", _D + "do_not_honor"),
    Refusal("22", "FRAUD-CANCELLED", "Cancelled", "FRAUD-CANCELLED", _D + "fraud"),
    Refusal("23", "Transaction Not Permitted", "Refused", "TRANSACTION_NOT_PERMITTED",
            _D + "not_supported"),
    Refusal("24", "CVC Declined", "Refused", "CVC_DECLINED", _D + "invalid_data"),
    Refusal("25", "Restricted Card", "Refused", "RESTRICTED_CARD", _D + "do_not_honor"),
    Refusal("26", "Revocation Of Auth", "Refused", "REVOCATION_OF_AUTH", _D + "do_not_honor"),
    Refusal("27", "Declined Non Generic", "Refused", "DECLINED_NON_GENERIC", _D + "do_not_honor"),
    Refusal("28", "Withdrawal amount exceeded", "Refused", "WITHDRAWAL_AMOUNT_EXCEEDED",
            _D + "limit_exceeded"),
    Refusal("29", "Withdrawal count exceeded", "Refused", "WITHDRAWAL_COUNT_EXCEEDED",
            _D + "limit_exceeded"),
    Refusal("31", "Issuer Suspected Fraud", "Refused", "ISSUER_SUSPECTED_FRAUD", _D + "fraud"),
    Refusal("32", "AVS Declined", "Refused", "AVS_DECLINED", _D + "invalid_data"),
    Refusal("33", "Card requires online pin", "Refused", "CARD_REQUIRES_ONLINE_PIN",
            _D + "do_not_honor"),
    Refusal("34", "No checking account available on Card", "Refused",
            "NO_CHECKING_ACCOUNT_AVAILABLE_ON_CARD", _D + "do_not_honor"),
    Refusal("35", "No savings account available on Card", "Refused",
            "NO_SAVINGS_ACCOUNT_AVAILABLE_ON_CARD", _D + "do_not_honor"),
    Refusal("36", "Mobile pin required", "Refused", "MOBILE_PIN_REQUIRED", _D + "do_not_honor"),
    Refusal("37", "Contactless fallback", "Refused", "CONTACTLESS_FALLBACK", _D + "do_not_honor"),
    Refusal("38", "Authentication required", "Refused", "AUTHENTICATION_REQUIRED",
            _D + "do_not_honor"),
    Refusal("39", "RReq not received from DS", "Refused", "RREQ_NOT_RECEIVED",
            _D + "do_not_honor"),
    Refusal("40", "Current AID is in Penalty Box.", "Refused", "PENALTY_BOX",
            _D + "do_not_honor"),
    Refusal("41", "CVM Required Restart Payment", "Refused", "CVM_REQUIRED",
            _D + "do_not_honor"),
    Refusal("42", "3DS Authentication Error", "Refused", "3DS_AUTHENTICATION_ERROR",
            _D + "do_not_honor"),
)

BY_CODE = {r.code: r for r in REFUSALS}
BY_TRIGGER = {r.trigger: r for r in REFUSALS}
# What the simulator answers for a unified code decided without a trigger (decline mix,
# paystab's generic test cards).
CANONICAL: dict[str, Refusal] = {
    _D + "do_not_honor": BY_CODE["2"],
    _D + "expired_card": BY_CODE["6"],
    _D + "invalid_data": BY_CODE["8"],
    _D + "issuer_unavailable": BY_CODE["9"],
    _D + "not_supported": BY_CODE["10"],
    _D + "insufficient_funds": BY_CODE["12"],
    _D + "fraud": BY_CODE["20"],
    _D + "limit_exceeded": BY_CODE["28"],
    "error.provider_5xx": BY_CODE["4"],
    "error.unknown": BY_CODE["0"],
}


def requested_refusal(holder_name: object, requested_code: object) -> Refusal | None:
    """The refusal a test request asks for: ``RequestedTestAcquirerResponseCode`` first,
    then ``holderName``; None when it asks for nothing."""
    if isinstance(requested_code, int | str) and str(requested_code) in BY_CODE:
        return BY_CODE[str(requested_code)]
    if isinstance(holder_name, str):
        return BY_TRIGGER.get(holder_name.strip().upper())
    return None


def refusal_for(code: str) -> Refusal:
    """The canonical refusal that renders unified ``code``."""
    return CANONICAL.get(code) or BY_CODE["2"]


# Adyen Checkout's brand names for the schemes paystab routes on.
SCHEME_BRANDS = {"visa": "visa", "mastercard": "mc", "amex": "amex", "jcb": "jcb"}
# paymentMethod.type ↔ paystab method (wallet types are the wallet's own name).
ASYNC_TYPES = {"konbini": "econtext_stores", "bank_transfer": "bank_transfer_JP"}
TYPE_METHODS = {v: k for k, v in ASYNC_TYPES.items()} | {"econtext_seven_eleven": "konbini"}
WALLET_TYPES = {"paypay": "paypay", "kakaopay": "kakaopay", "grabpay": "grabpay_SG"}
TYPE_WALLETS = {v: k for k, v in WALLET_TYPES.items()} | {"grabpay_MY": "grabpay",
                                                          "grabpay_PH": "grabpay"}
