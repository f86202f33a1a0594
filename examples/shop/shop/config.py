"""The shop's settings, all from the environment (twelve-factor style).

==========================  ================================================================
SHOP_LISTEN                 host:port to serve on (default 127.0.0.1:8080)
SHOP_METRICS_LISTEN         host:port of a metrics-only server on its own thread (optional;
                            /metrics is on SHOP_LISTEN too): a scrape is answered at once
                            even while the checkout's event loop is busy
SHOP_DATABASE_URL           postgresql://user:pass@host:port/db (the orders table is created
                            when missing)
SHOP_PSPS                   the card PSP accounts in priority order, NAME:KIND, kind stripe or
                            adyen (default card-alpha:stripe,card-bravo:adyen): the first
                            enabled one is the primary, the next ones take over
SHOP_PSP_TIMEOUT_S          seconds to wait for a PSP's answer (default 1.0)
SHOP_PSP_CONNECT_TIMEOUT_S  seconds to connect to a PSP (default 0.5)
SHOP_ADMIN_TOKEN            bearer token for /internal/*; required when SHOP_LISTEN is not
                            loopback (on loopback, /internal/* answers loopback callers only)
STRIPE_API_BASE             Stripe's API base (default https://api.stripe.com)
STRIPE_API_KEY              the secret key (sk_test_...)
STRIPE_CA_FILE              CA bundle to trust for STRIPE_API_BASE (optional)
ADYEN_CHECKOUT_URL          Adyen Checkout's base, version included
                            (default https://checkout-test.adyen.com/v71)
ADYEN_API_KEY               the API key
ADYEN_MERCHANT_ACCOUNT      the merchant account (default ShopECOM)
ADYEN_CA_FILE               CA bundle to trust for ADYEN_CHECKOUT_URL (optional)
==========================  ================================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

KINDS = ("stripe", "adyen")


class ConfigError(ValueError):
    """A setting the shop cannot start with (the message names the variable)."""


@dataclass(frozen=True)
class PspAccount:
    name: str  # as the shop's metrics, switch and orders table call it
    kind: str  # stripe | adyen


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    metrics_listen: tuple[str, int] | None
    database_url: str
    psps: tuple[PspAccount, ...]
    psp_timeout_s: float
    psp_connect_timeout_s: float
    admin_token: str | None
    stripe_api_base: str
    stripe_api_key: str
    stripe_ca_file: str | None
    adyen_checkout_url: str
    adyen_api_key: str
    adyen_merchant_account: str
    adyen_ca_file: str | None

    @property
    def loopback(self) -> bool:
        return self.host in ("127.0.0.1", "::1", "localhost")


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "")
    try:
        value = float(text) if text else default
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number of seconds") from None
    if not 0 < value <= 120:
        raise ConfigError(f"{name}={text!r}: expected seconds between 0 and 120")
    return value


def _psps(text: str) -> tuple[PspAccount, ...]:
    accounts = []
    for item in text.split(","):
        name, _, kind = item.strip().partition(":")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or kind not in KINDS:
            raise ConfigError(f"SHOP_PSPS: {item.strip()!r} is not NAME:KIND with KIND one of "
                              f"{', '.join(KINDS)}")
        accounts.append(PspAccount(name, kind))
    if len({a.name for a in accounts}) != len(accounts):
        raise ConfigError("SHOP_PSPS names a PSP twice")
    return tuple(accounts)


def _adyen_url(url: str) -> str:
    # Adyen's endpoints carry the API version; a bare host gets the one this shop speaks.
    url = url.rstrip("/")
    return url if re.search(r"/v\d+$", url) else url + "/v71"


def _listen(env: Mapping[str, str], name: str, default: str) -> tuple[str, int]:
    host, sep, port = env.get(name, default).rpartition(":")
    if not sep or not port.isdigit() or not int(port) < 65536:
        raise ConfigError(f"{name} must be HOST:PORT, e.g. {default}")
    return host.strip("[]"), int(port)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    host, port = _listen(env, "SHOP_LISTEN", "127.0.0.1:8080")
    metrics = _listen(env, "SHOP_METRICS_LISTEN", "127.0.0.1:9464") \
        if env.get("SHOP_METRICS_LISTEN") else None
    database_url = env.get("SHOP_DATABASE_URL", "")
    if not database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("SHOP_DATABASE_URL must be a postgresql:// URL")
    settings = Settings(
        host=host, port=port, metrics_listen=metrics, database_url=database_url,
        psps=_psps(env.get("SHOP_PSPS", "card-alpha:stripe,card-bravo:adyen")),
        psp_timeout_s=_seconds(env, "SHOP_PSP_TIMEOUT_S", 1.0),
        psp_connect_timeout_s=_seconds(env, "SHOP_PSP_CONNECT_TIMEOUT_S", 0.5),
        admin_token=env.get("SHOP_ADMIN_TOKEN") or None,
        stripe_api_base=env.get("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/"),
        stripe_api_key=env.get("STRIPE_API_KEY", ""),
        stripe_ca_file=env.get("STRIPE_CA_FILE") or None,
        adyen_checkout_url=_adyen_url(env.get("ADYEN_CHECKOUT_URL",
                                              "https://checkout-test.adyen.com/v71")),
        adyen_api_key=env.get("ADYEN_API_KEY", ""),
        adyen_merchant_account=env.get("ADYEN_MERCHANT_ACCOUNT", "ShopECOM"),
        adyen_ca_file=env.get("ADYEN_CA_FILE") or None,
    )
    if not settings.loopback and settings.admin_token is None:
        raise ConfigError("SHOP_LISTEN is not loopback: set SHOP_ADMIN_TOKEN to protect /internal/*")
    kinds = {a.kind for a in settings.psps}
    if "stripe" in kinds and not settings.stripe_api_key:
        raise ConfigError("STRIPE_API_KEY is empty")
    if "adyen" in kinds and not settings.adyen_api_key:
        raise ConfigError("ADYEN_API_KEY is empty")
    return settings
